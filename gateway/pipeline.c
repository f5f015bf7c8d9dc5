/* pipeline.c — parse → script → check → encode, per worker. */
#include "pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "json.h"
#include "lineproto.h"
#include "script.h"

struct gw_pipeline {
    gw_arena_t *arena;  /* owned: the current request's strings and arrays */
    gw_points_t points; /* owned: reused across requests */
    gw_buf_t out;       /* owned: encoded lines of the last run */
    uint32_t *ends;     /* owned: end offset of each encoded line */
    uint32_t ends_cap;
    uint32_t nout;
    unsigned lp_flags;
    gw_script_t *scripts; /* owned: this worker's Lua state (follows the published set) */
};

int64_t gw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

gw_pipeline_t *gw_pipeline_create(unsigned lp_flags)
{
    gw_pipeline_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->arena = gw_arena_create(256 * 1024);
    w->scripts = gw_script_create(NULL);
    if (!w->arena || !w->scripts) {
        gw_arena_destroy(w->arena);
        gw_script_destroy(w->scripts);
        free(w);
        return NULL;
    }
    w->lp_flags = lp_flags;
    return w;
}

static int ends_reserve(gw_pipeline_t *w, uint32_t n)
{
    uint32_t *e;
    if (n <= w->ends_cap)
        return 0;
    e = realloc(w->ends, (size_t)n * sizeof(*e));
    if (!e)
        return -ENOMEM;
    w->ends = e;
    w->ends_cap = n;
    return 0;
}

int gw_pipeline_run(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len,
                    gw_result_t *res)
{
    int kind = in->format == GW_FMT_JSON ? GW_WHERE_INDEX : GW_WHERE_LINE;
    char err[256];
    int rc;

    gw_arena_reset(w->arena);
    w->points.n = 0;
    w->out.len = 0;
    w->nout = 0;
    if (in->format == GW_FMT_JSON)
        rc = gw_json_parse(body, len, in->now_ns, w->arena, &w->points, res);
    else
        rc = gw_lp_parse(body, len, in->ns_per_unit, in->now_ns, w->arena, &w->points, res);
    if (rc)
        return rc;

    /* Scripts run here, before the checks below, so that a script can add
     * what a point lacks (fields, for one). */
    rc = gw_script_run(w->scripts, &w->points, w->arena, res, kind);
    if (rc)
        return rc;

    if (ends_reserve(w, w->points.n))
        return -ENOMEM;
    for (uint32_t i = 0; i < w->points.n; i++) {
        gw_point_t *p = &w->points.v[i];

        if (p->nfields == 0) {
            gw_result_reject(res, kind, p->src,
                             "series \"%.*s\": a point needs at least one field (InfluxDB cannot store a point without fields)",
                             (int)(p->series.n > 64 ? 64 : p->series.n), p->series.p);
            continue;
        }
        rc = gw_lp_encode(&w->out, p, w->lp_flags, err, sizeof(err));
        if (rc < 0)
            return rc;
        if (rc > 0) {
            gw_result_reject(res, kind, p->src, "%s", err);
            continue;
        }
        if (w->out.len > UINT32_MAX)
            return -ENOMEM; /* bodies are limited far below 4 GiB */
        w->ends[w->nout++] = (uint32_t)w->out.len;
    }
    res->accepted = w->nout;
    return 0;
}

int gw_pipeline_debug(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, gw_buf_t *json)
{
    w->out.len = 0;
    w->nout = 0;
    return gw_script_debug_json(w->scripts, in->format, body, len, in->ns_per_unit, in->now_ns, w->lp_flags,
                                w->arena, &w->points, json);
}

const char *gw_pipeline_output(gw_pipeline_t *w, size_t *len, const uint32_t **ends,
                               uint32_t *npoints)
{
    *len = w->out.len;
    *ends = w->ends;
    *npoints = w->nout;
    return w->out.data;
}

void gw_pipeline_destroy(gw_pipeline_t *w)
{
    if (!w)
        return;
    gw_script_destroy(w->scripts);
    gw_arena_destroy(w->arena);
    gw_points_free(&w->points);
    gw_buf_free(&w->out);
    free(w->ends);
    free(w);
}
