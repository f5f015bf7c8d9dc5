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
 * The contract for script authors is in docs/scripts.md. */
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

/* Number of script files in the set, and a one-line summary for logs. */
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

/* Run the scripts over a request's points, in place: a point is changed,
 * dropped or replaced by several (fan-out); points of series without
 * scripts are untouched. New strings and arrays live in a (the request's
 * arena) or in the Lua state, and stay valid until the next run on s.
 * Script errors, overruns and bad return values follow scripts.on_error and
 * are counted and logged, not reported in res (the client did nothing
 * wrong). where_kind is the gw_where_t of the points' src.
 * The caller checks the points against its limits first: a point's counts
 * and sizes are trusted here, and what the scripts return needs checking
 * again. Returns how many points were handed to scripts (0: pts is as it
 * was), or -ENOMEM. */
int gw_script_run(gw_script_t *s, gw_points_t *pts, gw_arena_t *a, gw_result_t *res, int where_kind);

/* POST /v1/debug/transform and the busted harness: parse body (JSON when
 * format is GW_FMT_JSON of pipeline.h, else line protocol scaled by
 * ns_per_unit), run the scripts, check and encode, and write a JSON document
 * into out: {"points": [...], "errors": [...], "rejected": [...]} where each
 * point has series, time, time_ns, tags, fields, types, line, src and the
 * scripts that ran. Nothing is forwarded. Returns 0, or -ENOMEM. */
int gw_script_debug_json(gw_script_t *s, int format, const char *body, size_t len,
                         int64_t ns_per_unit, int64_t now_ns, unsigned lp_flags,
                         gw_arena_t *a, gw_points_t *pts, gw_buf_t *out);

/* For the busted harness (scripts/luagw/harness.lua), which sees only
 * opaque pointers: a worker pinned to the scripts that the config file at
 * path names (NULL with the reason in err), a transform like the debug
 * endpoint's into *json (malloc'd, the caller frees it; 0 or -ENOMEM), and
 * its destructor (NULL is a no-op). */
gw_script_t *gw_script_open(const char *path, char *err, size_t errlen);
int gw_script_transform(gw_script_t *s, int format, const char *body, size_t len, int64_t ns_per_unit,
                        char **json);
void gw_script_close(gw_script_t *s);

/* Script errors counted so far, per series, as a JSON object
 * {"total": {...}, "series": {"<name>": {"errors": n, "timeouts": n,
 * "memory": n}}}; malloc'd text, the caller frees it. NULL on ENOMEM. */
char *gw_script_stats_json(void);

#endif
