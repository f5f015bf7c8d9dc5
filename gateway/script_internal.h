/* script_internal.h — what the files of the script engine share; nothing
 * outside them includes it (script.h is their contract with the rest).
 *
 * The engine, one concept a file:
 *   script_set.c    script sets: the files read once, the chain of scripts
 *                   of each series and the table that finds it; reference
 *                   counting; the published set and its generation
 *   script_state.c  a worker's Lua states: built from a set (sandbox,
 *                   driver, each script's top level run once), checked,
 *                   replaced when a newer set is published or a state
 *                   cannot be used any more, freed; the guarded call
 *   script_env.c    the C functions of the sandbox (log.*, os.date,
 *                   os.time) and the message handler beneath every call
 *   script_run.c    one request: chains looked up in C, the memo cache
 *                   asked first for memoized chains (memo.h), the driver
 *                   called per other point, each failure handled, numbers
 *                   typed, the results merged back into the request's points
 *   script_stats.c  failures counted per series (with the last message),
 *                   logged at a bounded rate; a snapshot for /health and
 *                   /metrics
 *   script.lua      the Lua half (compiled in as bytecode): the sandbox
 *                   environments, loading, the per-point driver
 *
 * Ownership follows the structs' comments. A gw_script_t and its states
 * belong to one thread (the first that runs it); sets are immutable once
 * loaded (but for each file's line, written by the set's first state,
 * before the set is shared) and shared by reference. */
#ifndef GW_SCRIPT_INTERNAL_H
#define GW_SCRIPT_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <lua.h>

#include "log.h"
#include "memo.h"
#include "script.h"
#include "script_guard.h"

#define MAX_EMIT 1000                     /* points one point may become */
#define INIT_BUDGET_NS (1000 * 1000000LL) /* a script's top level: at least 1 s */
#define RETRY_NS (1000 * 1000000LL)       /* a worker whose state failed retries after 1 s */
#define TRIP_TIMEOUTS 3                   /* timeouts of a script in one request before
                                             its other points there are not run */

/* ------------------------------------------------------------------------ */
/* Shared with script.lua (keep the ffi.cdef there in sync; checked at state
 * creation, script_state.c layout_ok) */

enum { REC_PENDING = 0, REC_OK, REC_ERROR, REC_TIMEOUT, REC_MEMORY };

/* A field the driver wrote back as a Lua number; its type is decided in C
 * (script_run.c, resolve_numbers) against the point's original fields. */
#define FIELD_NUMBER 99

typedef struct {
    uint32_t first;   /* first output point in ctl.out */
    uint32_t n;       /* output points */
    uint32_t status;  /* REC_* */
    uint32_t steps;   /* scripts of the chain that ran */
    uint32_t numbers; /* fields written back as FIELD_NUMBER */
    uint32_t full;    /* the outputs were written in full from Lua tables (in their order) */
} gw_script_rec_t;

typedef struct gw_script_ctl {
    gw_point_t *inp;        /* borrowed: the request's points */
    const uint16_t *chain;  /* borrowed: chain id per input point, 0 = none */
    gw_script_rec_t *rec;   /* borrowed: one per input point */
    gw_point_t *out;        /* borrowed: output points (grown by grow) */
    gw_tag_t *tags;         /* borrowed: current tag block (arena) */
    gw_field_t *fields;     /* borrowed: current field block (arena) */
    volatile uint32_t *seq; /* borrowed: the guard's heartbeat */
    int (*grow)(struct gw_script_ctl *c, int what, uint32_t keep_from);
    uint32_t nin, cur, script, nout, committed, outcap;
    uint32_t ntags, tagcap, nfields, fieldcap;
    gw_str_t req[GW_REQ_NFIELDS]; /* borrowed: the request scripts see as req (gw_script_req_t) */
} gw_script_ctl_t;

/* ------------------------------------------------------------------------ */
/* Sets (script_set.c) */

typedef struct {
    char *path;   /* owned: dir/file, as messages and chunk names show it */
    char *source; /* owned */
    size_t len;
    int line;     /* where its function is defined (set by the first state) */
} script_file_t;

typedef struct {
    char *series;        /* owned; NULL for the chain of _all.lua alone */
    uint16_t *ids;       /* owned: 1-based indexes into files */
    const char **paths;  /* owned array of borrowed paths: the files of ids */
    int n;
} chain_t;

typedef struct {
    const char *name; /* borrowed from the chain */
    size_t len;
    uint16_t id;
} slot_t;

struct gw_script_set {
    atomic_int refs;
    script_file_t *files; /* owned */
    int nfiles;
    chain_t *chains;      /* owned; chain id = index + 1 */
    int nchains;
    uint16_t all_chain;   /* chain id of _all.lua alone, 0 = none */
    slot_t *slots;        /* owned: series -> chain id, open addressing */
    uint32_t mask;
    gw_conf_node_t *params; /* owned copy */
    int64_t timeout_ns;
    size_t memory_limit;
    int drop_on_error;
    uint32_t memo_entries;  /* scripts.memo_entries */
    int memo_verify;        /* scripts.memo_verify */
};

/* The chain id of series p (n bytes): its own chain, else _all.lua's, else
 * 0 (no scripts). */
uint16_t gw_script_set_chain(const gw_script_set_t *set, const char *p, size_t n);

/* The path of script id (1-based), or "(scripts)". */
const char *gw_script_set_path(const gw_script_set_t *set, uint32_t id);

/* The generation of the published set (bumped at each publication), and
 * the published set itself, retained (NULL: none), with its generation. */
uint64_t gw_script_published_gen(void);
gw_script_set_t *gw_script_published(uint64_t *gen);

/* ------------------------------------------------------------------------ */
/* Workers and their states (script_state.c) */

typedef struct lstate {
    lua_State *L;
    gw_lalloc_t *alloc;  /* owned */
    int run_ref;         /* the driver's run() */
    int msgh_ref;        /* the message handler */
    int abandon;         /* free without lua_close (interrupted in LuaJIT's C code) */
    uint8_t *memo;       /* owned: per chain id (1..nchains), 1 = memoized (memo.h) */
    struct lstate *next; /* the graveyard */
} lstate_t;

struct gw_script {
    gw_script_set_t *pinned; /* owned reference, or NULL: follow the published set */
    gw_script_set_t *set;    /* owned reference: the set st was built from */
    uint64_t gen;            /* publication generation of set */
    lstate_t *st;            /* owned: NULL until the first run */
    lstate_t *graveyard;     /* owned: replaced states, freed at the next run */
    int64_t retry_at;        /* mono ns: no new state before this */
    char state_err[512];     /* why the last state creation failed */
    gw_guard_t guard;
    gw_script_ctl_t ctl;
    gw_arena_t *arena;       /* borrowed during a run */
    uint16_t *chain;         /* owned, per input point */
    uint8_t *scripted;       /* owned, per input point */
    gw_script_rec_t *rec;    /* owned, per input point */
    uint32_t cap;            /* of chain, scripted, rec */
    gw_point_t *out;         /* owned: ctl.out */
    uint32_t outcap;
    gw_points_t merged;      /* owned: swapped with the caller's array */
    uint8_t *tripped;        /* owned: per script id, timed out in this run */
    int ntripped;
    gw_log_limit_t log_lim;  /* log.* lines of this worker */
    gw_memo_t *memo;         /* owned: NULL until a memoized chain runs */
    const gw_script_set_t *memo_set; /* borrowed, compared only: the set memo was filled by */
    uint64_t memo_gen;       /* and its generation */
    uint8_t *memo_mode;      /* owned, per input point: 0, or 1 + GW_MEMO_* */
    gw_log_limit_t memo_lim; /* memo mismatch lines of this worker */
    const gw_script_trace_t *trace; /* borrowed during a traced run */
    char driver_src[256];    /* script.lua's chunk name: frames to skip in messages */
};

/* Build a state for set: sandbox, driver, scripts loaded and their top
 * levels run. NULL with the reason in err. Must run on the worker's thread. */
lstate_t *gw_script_state_new(gw_script_t *s, gw_script_set_t *set, char *err, size_t errlen);

/* Free a state (NULL is a no-op); an abandoned one without walking its heap. */
void gw_script_state_free(lstate_t *st);

/* Free the states replaced during the last run (their strings were still
 * referenced by its output until now). */
void gw_script_state_reap(gw_script_t *s);

/* Make s->st match the set s should use. 0, or -1 when there are no usable
 * scripts (s->state_err says why when a state could not be built). */
int gw_script_state_ensure(gw_script_t *s);

/* Replace s->st, which cannot be used any more, by a fresh state of the
 * same set; the old one waits for gw_script_state_reap. 0, or -1 (no state
 * now, s->state_err says why). */
int gw_script_state_replace(gw_script_t *s, int abandon);

/* lua_pcall(L, nargs, nres, msgh) under the guard with budget ns per script
 * call. Returns lua_pcall's code, or -GW_GUARD_CLOSE / -GW_GUARD_ABANDON
 * when the call was jumped out of (the state is then unusable). */
int gw_script_pcall(gw_script_t *s, lua_State *L, int nargs, int nres, int msgh, int64_t budget);

/* ------------------------------------------------------------------------ */
/* The sandbox's C functions (script_env.c) */

/* Stack: before [] after [msgh]: the message handler of s's calls. */
void gw_script_env_push_msgh(lua_State *L, gw_script_t *s);

/* Stack: before [] after [c]: a table of the C functions scripts reach
 * (log_info, log_warn, log_error, os_date, os_time), bound to s. */
void gw_script_env_push_c(lua_State *L, gw_script_t *s);

/* ------------------------------------------------------------------------ */
/* Failure accounting (script_stats.c) */

/* Count one failure (GW_SCRIPT_FAIL_*) of a point of series and log it,
 * at most one line per series per second: script is "file:line", dropped
 * says what became of the point (scripts.on_error). */
void gw_script_stats_note(gw_str_t series, int kind, const char *script, const char *msg, int dropped);

/* Copy the n bytes of msg into out for a log value in double quotes:
 * quotes become ', control characters spaces, at most outlen-1 bytes. */
void gw_script_log_clean(char *out, size_t outlen, const char *msg, size_t n);

#endif
