/* script.h — per-series Lua scripts (LuaJIT): loading, running, limits.
 *
 * Two objects:
 *   gw_script_set_t  what the configuration says: the script files (read and
 *                    checked once), the chain of scripts of each series, the
 *                    params, the limits. Immutable and reference-counted; a
 *                    reload builds a new set and publishes it.
 *   gw_script_t      one worker thread's Lua state, built from a set and
 *                    rebuilt when a newer set is published (checked once per
 *                    request: one atomic load).
 * Scripts get points and give points back: parsing, limits, series
 * declarations and encoding are the pipeline's (pipeline.h), which calls
 * gw_script_run between them. The contract for script authors is in
 * docs/scripts.md; how the engine is split into files, in
 * script_internal.h. */
#ifndef GW_SCRIPT_H
#define GW_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "point.h"

typedef struct gw_script_set gw_script_set_t;
typedef struct gw_script gw_script_t;

/* Load the scripts that cfg->scripts names: every <series>.lua and _all.lua
 * in scripts.dir, and the chains of scripts.series. Each file is compiled and
 * its top level run once in a sandboxed state, under the budget, to check it
 * returns a function. Returns a set holding one reference, or NULL with one
 * line "file:line: what is wrong" in err. Free with gw_script_set_release. */
gw_script_set_t *gw_script_set_load(const gw_config_t *cfg, char *err, size_t errlen);

/* Reference counting; release(NULL) is a no-op. Thread-safe. */
gw_script_set_t *gw_script_set_retain(gw_script_set_t *set);
void gw_script_set_release(gw_script_set_t *set);

/* Number of script files in the set (0 for NULL). */
int gw_script_set_count(const gw_script_set_t *set);

/* Make set the process-wide current set (the publisher's reference is
 * taken over; NULL withdraws scripting). Workers switch to it at their next
 * request; the old set is freed when its last worker has let go. */
void gw_script_set_publish(gw_script_set_t *set);

/* Release the published set (at exit). */
void gw_script_shutdown(void);

/* A worker's engine. pinned NULL follows the published set; otherwise the
 * worker uses pinned (retained) for its whole life (tests, the harness).
 * The Lua state is created lazily, on the thread of the first run, which is
 * the only thread that may use it afterwards. NULL on ENOMEM. */
gw_script_t *gw_script_create(gw_script_set_t *pinned);
void gw_script_destroy(gw_script_t *s);

/* Does this worker have scripts to run (the set it follows holds script
 * files)? Points of a request may reach a script only then. Call on the
 * worker's thread, like gw_script_run. */
int gw_script_ready(gw_script_t *s);

/* The request scripts see as their second argument, req
 * (docs/outputs.md): each a string, p NULL for nil. */
#define GW_REQ_NFIELDS 5
typedef struct gw_script_req {
    gw_str_t token;  /* the token's name */
    gw_str_t client; /* the client's IP address */
    gw_str_t db, rp; /* the database (bucket) and retention policy it writes to */
    gw_str_t path;   /* /write, /api/v2/write, /v1/points */
} gw_script_req_t;

/* The request of the next runs on s (copied; its strings borrowed until
 * then); NULL: every field nil. */
void gw_script_set_req(gw_script_t *s, const gw_script_req_t *req);

/* What a traced run learns from the scripts (trace.c records it for the
 * debug transform and the harness). The callbacks run on the worker's
 * thread, inside gw_script_run; strings are borrowed for the call. */
typedef struct {
    void *ud;
    /* A call failed on input point p: script "file:line", kind "error",
     * "timeout" or "memory", the point dropped (scripts.on_error: drop) or
     * passed on as it came in. */
    void (*failed)(void *ud, const gw_point_t *p, const char *script, const char *kind, const char *msg,
                   int dropped);
    /* Output point k (its index among the points after the run) comes from
     * a point whose chain ran scripts[0..n) (paths, borrowed from the set
     * until the next run on s). Not called for points no script saw. */
    void (*ran)(void *ud, uint32_t k, const char *const *scripts, uint32_t n);
} gw_script_trace_t;

/* Run the scripts over a request's points, in place: a point is changed,
 * dropped or replaced by several (fan-out, up to 1,000); points of series
 * without scripts are untouched. New strings and arrays live in a (the
 * request's arena) or in the Lua state, and stay valid until the next run
 * on s. Script errors, overruns and bad return values follow
 * scripts.on_error and are counted and logged (the client did nothing
 * wrong), and told to trace when given (NULL: not traced).
 * The caller checks the points against its limits first: a point's counts
 * and sizes are trusted here, and what the scripts return needs checking
 * again. Returns how many points were handed to scripts (0: pts is as it
 * was), or -ENOMEM. */
int gw_script_run(gw_script_t *s, gw_points_t *pts, gw_arena_t *a, const gw_script_trace_t *trace);

/* Has series (n bytes) scripts in the set s runs? Call on s's thread. */
int gw_script_covers(const gw_script_t *s, const char *series, size_t n);

/* ------------------------------------------------------------------------ */
/* Failures of script calls, counted per series since start (/health,
 * /metrics, the harness). */

enum { GW_SCRIPT_FAIL_ERROR = 0, GW_SCRIPT_FAIL_TIMEOUT, GW_SCRIPT_FAIL_MEMORY, GW_SCRIPT_FAIL_KINDS };

/* "error", "timeout", "memory". */
const char *gw_script_fail_name(int kind);

typedef struct {
    char *series;                        /* owned by the snapshot; "(other)" past 1,024 series */
    uint64_t count[GW_SCRIPT_FAIL_KINDS];
    char last_script[160];               /* the last failure: "file:line" */
    char last_message[256];              /* its message (as logged: quotes and controls replaced) */
    int64_t last_ns;                     /* its wall-clock time, Unix ns */
} gw_script_stat_t;

typedef struct {
    uint64_t total[GW_SCRIPT_FAIL_KINDS];
    gw_script_stat_t *series; /* owned: in the order series first failed */
    size_t n;
} gw_script_stats_t;

/* A copy of the counters as they are now, into *out; free it with
 * gw_script_stats_free. 0, or -ENOMEM (*out then empty). */
int gw_script_stats_snapshot(gw_script_stats_t *out);
void gw_script_stats_free(gw_script_stats_t *st);

#endif
