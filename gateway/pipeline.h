/* pipeline.h — the one path of a body: parse → limits → scripts → limits →
 * series declarations → encode → the request's field types.
 *
 * Every way in runs this code: the ingest endpoints (http_ingest.c) with
 * gw_pipeline_run, and POST /v1/debug/transform and the busted harness
 * (harness.c) with gw_pipeline_debug, which runs the same phases with a
 * trace (trace.h) that records each point's outcome instead of counting
 * it. So the debug answer's verdict and lines are what /write would answer
 * and store, declarations and limits included.
 *
 * The phases (pipeline.c):
 *   1. parse: line protocol (lineproto.h) or JSON (json.h) into points
 *      borrowing the body or the arena; a line beyond max_line_bytes or
 *      more points than max_points refuse the whole body (413);
 *   2. scripts (script.h): the per-point limits are checked first, since
 *      scripts trust a point's counts and sizes; scripts change, drop and
 *      fan out points;
 *   3. per point: the limits again for what scripts returned, the series
 *      declarations (schema.h), the encoder (gw_lp_encode: InfluxDB's
 *      rules, and the "clean point" fast path for untouched lines), the
 *      lengths on the encoded line, the field types of the request
 *      (typecheck.h: a field another point of it gave another type refuses
 *      the later point, as InfluxDB would). Accepted points' lines end up
 *      back to back in one buffer that the caller queues as is.
 *
 * Each libmicrohttpd worker thread owns one gw_pipeline_t (its arena, point
 * array, output buffer, Lua state and trace), so nothing here locks. */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "point.h"
#include "schema.h"

typedef enum { GW_FMT_LINEPROTO = 0, GW_FMT_JSON } gw_format_t;

typedef struct gw_pipeline gw_pipeline_t;

/* What the caller does to a request's points on their way (dispatch.h):
 * either may be NULL. */
struct gw_arena;
typedef struct {
    void *ud;
    /* On the parsed points, before any script: 0 or -ENOMEM. */
    int (*before)(void *ud, gw_point_t *p, uint32_t n, struct gw_arena *a);
    /* Point p is encoded as line i of the output: 0 keeps it; >0 rejects
     * it (why in err); -ENOMEM. */
    int (*place)(void *ud, const gw_point_t *p, uint32_t i, char *err, size_t errlen);
} gw_ingest_hooks_t;

typedef struct {
    int format;          /* gw_format_t */
    int64_t ns_per_unit; /* line protocol timestamp precision */
    int64_t now_ns;      /* time of receipt: for points without a time */
    const gw_ingest_hooks_t *hooks; /* borrowed; NULL: none */
    const struct gw_script_req *req; /* borrowed: what scripts see as req; NULL: nothing */
} gw_ingest_t;

/* What one body may hold (the listen.max_* keys of the configuration); a
 * field left 0 means no limit. */
typedef struct {
    uint32_t max_points;    /* points in one body: beyond, the run is refused */
    size_t max_line_bytes;  /* one line-protocol line: beyond, the run is refused */
    uint32_t max_tags;      /* per point: beyond, the point is rejected */
    uint32_t max_fields;
    size_t max_key_bytes;   /* series name, tag keys, field keys */
    size_t max_value_bytes; /* tag values, string field values */
} gw_limits_t;

/* gw_pipeline_run: the body breaks a limit of the whole body. */
#define GW_PIPELINE_TOO_LARGE 1
/* gw_pipeline_debug: the scripts made more points than the answer holds. */
#define GW_PIPELINE_TOO_MANY 2

/* Create a worker's pipeline. lp_flags go to gw_lp_encode (GW_LP_NO_UINT for
 * InfluxDB 1.x). NULL on ENOMEM. Free with gw_pipeline_destroy. */
gw_pipeline_t *gw_pipeline_create(unsigned lp_flags);

/* Run the scripts of set (retained) on w from now on rather than the
 * published set (NULL: follow it again): for the fuzzer, which drives
 * pipelines of its own. 0, or -ENOMEM (w keeps its scripts). */
struct gw_script_set;
int gw_pipeline_pin_scripts(gw_pipeline_t *w, struct gw_script_set *set);

/* Check points against the declarations of schema (borrowed: it must
 * outlive w) rather than the published ones (NULL: follow them again): for
 * the harness, which has its own. */
void gw_pipeline_pin_schema(gw_pipeline_t *w, const gw_schema_t *schema);

/* Set w's limits (copied). A new pipeline has none. */
void gw_pipeline_set_limits(gw_pipeline_t *w, const gw_limits_t *lim);

/* Set w's limits and encoder flags as cfg says (listen.max_*; unsigned
 * written as integers for monitoring.version 1). */
void gw_pipeline_configure(gw_pipeline_t *w, const gw_config_t *cfg);

/* Run one body through the pipeline. Afterwards the accepted points' lines
 * are available from gw_pipeline_output until the next run; res counts
 * accepted and rejected points and keeps the first error.
 * Returns 0; GW_PIPELINE_TOO_LARGE when the body breaks max_points or
 * max_line_bytes (nothing is accepted, res->err_msg says which: answer 413);
 * or -ENOMEM (res then says nothing useful). */
int gw_pipeline_run(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len,
                    gw_result_t *res);

/* Run one body as gw_pipeline_run does, counting nothing (no metrics),
 * and append to json what became of each point (trace.h): for POST
 * /v1/debug/transform and the harness. The output of the run is then
 * available as after gw_pipeline_run, but is not meant to be queued.
 * Returns 0 (whatever the verdict, 413 included); GW_PIPELINE_TOO_MANY when
 * more than max_points points came out of the scripts (nothing appended);
 * or -ENOMEM. */
int gw_pipeline_debug(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, uint32_t max_points,
                      gw_buf_t *json);

/* The encoded lines of the last run: *len bytes, *npoints points, and
 * (*ends)[i] the offset just past point i's line. Borrowed from w. */
const char *gw_pipeline_output(gw_pipeline_t *w, size_t *len, const uint32_t **ends,
                               uint32_t *npoints);

/* Count the points of the last run as accepted, per series (/metrics):
 * call once they are queued. */
void gw_pipeline_count_accepted(gw_pipeline_t *w);

void gw_pipeline_destroy(gw_pipeline_t *w);

#endif
