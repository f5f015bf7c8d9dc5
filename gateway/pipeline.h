/* pipeline.h — the per-worker hot path: parse a body into points, run the
 * series scripts (their own issue: the hook is marked in pipeline.c), check
 * each point and encode it once into line protocol.
 *
 * Each libmicrohttpd worker thread owns one gw_pipeline_t (its arena, point
 * array and output buffer, later its Lua state), so nothing here locks. */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "point.h"

typedef enum { GW_FMT_LINEPROTO = 0, GW_FMT_JSON } gw_format_t;

typedef struct gw_pipeline gw_pipeline_t;

typedef struct {
    int format;          /* gw_format_t */
    int64_t ns_per_unit; /* line protocol timestamp precision */
    int64_t now_ns;      /* time of receipt: for points without a time */
} gw_ingest_t;

/* Create a worker's pipeline. lp_flags go to gw_lp_encode (GW_LP_NO_UINT for
 * InfluxDB 1.x). NULL on ENOMEM. Free with gw_pipeline_destroy. */
gw_pipeline_t *gw_pipeline_create(unsigned lp_flags);

/* Run one body through the pipeline. Afterwards the accepted points' lines
 * are available from gw_pipeline_output until the next run; res counts
 * accepted and rejected points and keeps the first error.
 * Returns 0, or -ENOMEM (res then says nothing useful). */
int gw_pipeline_run(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len,
                    gw_result_t *res);

/* POST /v1/debug/transform: parse body, run the scripts and answer what
 * became of each point as JSON (see gw_script_debug_json) appended to json.
 * Nothing is queued. Returns 0, or -ENOMEM. */
int gw_pipeline_debug(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, gw_buf_t *json);

/* The encoded lines of the last run: *len bytes, *npoints points, and
 * (*ends)[i] the offset just past point i's line. Borrowed from w. */
const char *gw_pipeline_output(gw_pipeline_t *w, size_t *len, const uint32_t **ends,
                               uint32_t *npoints);

/* Current time as Unix nanoseconds. */
int64_t gw_now_ns(void);

void gw_pipeline_destroy(gw_pipeline_t *w);

#endif
