/* pipeline.c — parse → limits → scripts → limits → declarations → encode,
 * per worker. */
#include "pipeline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json.h"
#include "lineproto.h"
#include "metrics.h"
#include "schema.h"
#include "script.h"
#include "status.h"
#include "trace.h"
#include "typecheck.h"

/* InfluxDB refuses a point whose series key (measurement and tags,
 * escaped) and a field key, with 4 bytes between, are longer than this
 * (models.MaxKeyLength). The line-protocol parser checks what it reads;
 * scripts and JSON bodies can build such a point, and it is checked here
 * unescaped: a lower bound, which never refuses a point InfluxDB takes. */
#define INFLUX_MAX_KEY 65535

/* Per-series counts of one request, added to the shared counters once per
 * series at its end. Bodies often change series at every point; an atomic
 * add per point on counters every worker adds to, after a hash lookup of
 * the name, was 5% of luagw's time under load. */
#define TALLY_MAX 16
typedef struct {
    gw_series_slot_t *slot; /* borrowed */
    uint64_t n;
    int scripted; /* its series has scripts: it takes a share of their time */
} tally_t;

struct gw_pipeline {
    gw_arena_t *arena;  /* owned: the current request's strings and arrays */
    gw_points_t points; /* owned: reused across requests */
    gw_buf_t out;       /* owned: encoded lines of the last run */
    uint32_t *ends;     /* owned: end offset of each encoded line */
    gw_series_slot_t **slots; /* owned array: each encoded line's series counters (borrowed) */
    uint32_t ends_cap;
    uint32_t nout;
    unsigned lp_flags;
    gw_limits_t limits;   /* 0 = no limit */
    uint32_t max_tags, max_fields; /* the limits' counts, UINT32_MAX for none */
    size_t clean_line_max;         /* a clean line this long holds no name beyond the limits */
    size_t encoded_max;            /* nor an encoded line this long, nor a series key beyond InfluxDB's */
    gw_script_t *scripts; /* owned: this worker's Lua state (follows the published set) */
    const gw_schema_t *schema; /* borrowed: pinned declarations; NULL = the published ones */
    gw_typecheck_t *types; /* owned: the field types of the current request */
    gw_trace_t *trace;    /* owned: made for the first traced run */
    int tracing;          /* in a traced run: record every outcome, count nothing */
    tally_t tally[TALLY_MAX]; /* the current request's points per series */
    uint32_t ntally;
};

gw_pipeline_t *gw_pipeline_create(unsigned lp_flags)
{
    gw_pipeline_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->arena = gw_arena_create(256 * 1024);
    w->scripts = gw_script_create(NULL);
    w->types = gw_typecheck_create();
    if (!w->arena || !w->scripts || !w->types) {
        gw_arena_destroy(w->arena);
        gw_script_destroy(w->scripts);
        gw_typecheck_destroy(w->types);
        free(w);
        return NULL;
    }
    w->lp_flags = lp_flags;
    gw_pipeline_set_limits(w, &(gw_limits_t){0});
    return w;
}

int gw_pipeline_pin_scripts(gw_pipeline_t *w, gw_script_set_t *set)
{
    gw_script_t *s = gw_script_create(set);

    if (!s)
        return -ENOMEM;
    gw_script_destroy(w->scripts);
    w->scripts = s;
    return 0;
}

void gw_pipeline_pin_schema(gw_pipeline_t *w, const gw_schema_t *schema)
{
    w->schema = schema;
}

void gw_pipeline_configure(gw_pipeline_t *w, const gw_config_t *cfg)
{
    gw_limits_t lim = {.max_points = cfg->listen.max_points,
                       .max_line_bytes = cfg->listen.max_line_bytes,
                       .max_tags = cfg->listen.max_tags,
                       .max_fields = cfg->listen.max_fields,
                       .max_key_bytes = cfg->listen.max_key_bytes,
                       .max_value_bytes = cfg->listen.max_value_bytes};

    gw_pipeline_set_limits(w, &lim);
    w->lp_flags = cfg->monitoring.version == 1 ? GW_LP_NO_UINT : 0;
}

void gw_pipeline_set_limits(gw_pipeline_t *w, const gw_limits_t *lim)
{
    w->limits = *lim;
    w->max_tags = lim->max_tags ? lim->max_tags : UINT32_MAX;
    w->max_fields = lim->max_fields ? lim->max_fields : UINT32_MAX;
    w->clean_line_max = SIZE_MAX;
    if (lim->max_key_bytes)
        w->clean_line_max = lim->max_key_bytes;
    if (lim->max_value_bytes && lim->max_value_bytes < w->clean_line_max)
        w->clean_line_max = lim->max_value_bytes;
    /* A line holds its series key, a field key and at least 4 bytes more
     * (" ", "=", a value, "\n"). */
    w->encoded_max = w->clean_line_max < INFLUX_MAX_KEY ? w->clean_line_max : INFLUX_MAX_KEY;
}

/* Refuse the whole body: nothing of it is accepted. */
static int too_large(gw_result_t *res, int kind, uint32_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int too_large(gw_result_t *res, int kind, uint32_t n, const char *fmt, ...)
{
    va_list ap;

    memset(res, 0, sizeof(*res));
    res->rejected = n;
    res->has_error = 1;
    res->err_kind = kind;
    va_start(ap, fmt);
    vsnprintf(res->err_msg, sizeof(res->err_msg), fmt, ap);
    va_end(ap);
    return GW_PIPELINE_TOO_LARGE;
}

/* The 1-based number of the first line-protocol line longer than max, or 0. */
static uint32_t long_line(const char *body, size_t len, size_t max)
{
    const char *p = body, *end = body + len;
    uint32_t line = 1;

    if (len <= max)
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        if ((size_t)(nl - p) > max)
            return line;
        p = nl + 1;
        line++;
    }
    return 0;
}

/* Which per-point limit p breaks, the first in the point's order: 1 with
 * the reason in err, else 0. */
static __attribute__((noinline)) int limits_why(const gw_limits_t *l, const gw_point_t *p, char *err,
                                                size_t errlen)
{
    const char *what = NULL;
    size_t n = 0, max = 0;

    if (l->max_tags && p->ntags > l->max_tags) {
        snprintf(err, errlen, "%u tags, more than listen.max_tags (%u)", p->ntags, l->max_tags);
        return 1;
    }
    if (l->max_fields && p->nfields > l->max_fields) {
        snprintf(err, errlen, "%u fields, more than listen.max_fields (%u)", p->nfields, l->max_fields);
        return 1;
    }
    if (l->max_key_bytes && p->series.n > l->max_key_bytes)
        what = "series name", n = p->series.n, max = l->max_key_bytes;
    for (uint32_t i = 0; !what && i < p->ntags; i++) {
        if (l->max_key_bytes && p->tags[i].key.n > l->max_key_bytes)
            what = "tag key", n = p->tags[i].key.n, max = l->max_key_bytes;
        else if (l->max_value_bytes && p->tags[i].val.n > l->max_value_bytes)
            what = "tag value", n = p->tags[i].val.n, max = l->max_value_bytes;
    }
    for (uint32_t i = 0; !what && i < p->nfields; i++) {
        if (l->max_key_bytes && p->fields[i].key.n > l->max_key_bytes)
            what = "field key", n = p->fields[i].key.n, max = l->max_key_bytes;
        else if (l->max_value_bytes && p->fields[i].type == GW_FIELD_STRING &&
                 p->fields[i].v.s.n > l->max_value_bytes)
            what = "string field value", n = p->fields[i].v.s.n, max = l->max_value_bytes;
    }
    if (what) {
        snprintf(err, errlen, "a %s of %zu bytes, longer than listen.%s (%zu)", what, n,
                 strstr(what, "value") ? "max_value_bytes" : "max_key_bytes", max);
        return 1;
    }
    snprintf(err, errlen, "series key longer than %d bytes (InfluxDB refuses it)", INFLUX_MAX_KEY);
    return 1;
}

/* Does any name or value of p break a limit, or its series key InfluxDB's?
 * One pass of maxima and a sum: the common answer, no, costs a few
 * instructions an entry; limits_why says which. */
static __attribute__((noinline)) int lengths_over(const gw_limits_t *l, const gw_point_t *p)
{
    size_t maxk = l->max_key_bytes ? l->max_key_bytes : SIZE_MAX;
    size_t maxv = l->max_value_bytes ? l->max_value_bytes : SIZE_MAX;
    size_t key = p->series.n, k = p->series.n, v = 0, fk = 0;

    for (uint32_t i = 0; i < p->ntags; i++) {
        size_t kn = p->tags[i].key.n, vn = p->tags[i].val.n;
        key += 2 + kn + vn;
        k = kn > k ? kn : k;
        v = vn > v ? vn : v;
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        fk = f->key.n > fk ? f->key.n : fk;
        if (f->type == GW_FIELD_STRING && f->v.s.n > v)
            v = f->v.s.n;
    }
    return k > maxk || fk > maxk || v > maxv || key + 4 + fk > INFLUX_MAX_KEY;
}

/* Does p break one of w's per-point limits? 1 with the reason in err,
 * else 0. Inlined: a point the line-protocol parser vouches for, within
 * the limits, costs a few comparisons. */
static inline __attribute__((always_inline)) int over_limits(const gw_pipeline_t *w, const gw_point_t *p,
                                                             char *err, size_t errlen)
{
    if (p->ntags > w->max_tags || p->nfields > w->max_fields)
        return limits_why(&w->limits, p, err, errlen);
    /* Its names and values are slices of one line (point.h): a line within
     * the length limits holds nothing beyond them, and the parser checked
     * its series key. (What a script added to such a point is not in the
     * line: GW_LP_CLEAN_EXTRA.) */
    if ((p->lp_clean & (GW_LP_CLEAN | GW_LP_CLEAN_EXTRA)) == GW_LP_CLEAN &&
        (size_t)(p->lp_tail.p + p->lp_tail.n - p->series.p) <= w->clean_line_max)
        return 0;
    return lengths_over(&w->limits, p) ? limits_why(&w->limits, p, err, errlen) : 0;
}

/* Reject point p (index k after the scripts, UINT32_MAX before them) with
 * err: counted for its series (slot, unless traced), reported in res and
 * recorded by the trace. Apart from the loops, which it would slow. */
static __attribute__((noinline)) void reject(gw_pipeline_t *w, gw_result_t *res, int kind, uint32_t k,
                                             const gw_point_t *p, gw_series_slot_t *slot, const char *err)
{
    if (w->tracing) {
        gw_trace_reject(w->trace, k, p, err);
    } else {
        GW_SERIES_ADD(slot, GW_S_REJECTED, 1);
        gw_status_error(p->series.p, p->series.n, "rejected", err);
    }
    gw_result_reject(res, kind, p->src, "%s", err);
}

/* Reject the points that break a per-point limit and take them out of
 * w->points (counted for their series as received and rejected). */
static void drop_over_limits(gw_pipeline_t *w, gw_result_t *res, int kind, char *err, size_t errlen)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->points.n; i++) {
        gw_point_t *p = &w->points.v[i];
        if (over_limits(w, p, err, errlen)) {
            gw_series_slot_t *slot = NULL;
            if (!w->tracing) {
                slot = gw_series_slot(p->series.p, p->series.n);
                GW_SERIES_ADD(slot, GW_S_RECEIVED, 1);
            }
            reject(w, res, kind, UINT32_MAX, p, slot, err);
            continue;
        }
        if (n != i)
            w->points.v[n] = *p;
        n++;
    }
    w->points.n = n;
}

static int ends_reserve(gw_pipeline_t *w, uint32_t n)
{
    uint32_t *e;
    if (n <= w->ends_cap)
        return 0;
    gw_series_slot_t **sl;
    e = realloc(w->ends, (size_t)n * sizeof(*e));
    if (!e)
        return -ENOMEM;
    w->ends = e;
    sl = realloc(w->slots, (size_t)n * sizeof(*sl));
    if (!sl)
        return -ENOMEM;
    w->slots = sl;
    w->ends_cap = n;
    return 0;
}

/* Add the tallies to the shared counters k (and the script time, when
 * script_ns) and empty them. */
static void tally_flush(tally_t *t, uint32_t *nt, int k, uint64_t script_ns)
{
    for (uint32_t i = 0; i < *nt; i++) {
        GW_SERIES_ADD(t[i].slot, k, t[i].n);
        if (script_ns && t[i].scripted)
            GW_SERIES_ADD(t[i].slot, GW_S_SCRIPT_NS, t[i].n * script_ns);
    }
    *nt = 0;
}

/* The tally of slot, added when new (after a flush when all are taken). */
static tally_t *tally_of(tally_t *t, uint32_t *nt, gw_series_slot_t *slot, int k, uint64_t script_ns)
{
    for (uint32_t i = 0; i < *nt; i++)
        if (t[i].slot == slot)
            return &t[i];
    if (*nt == TALLY_MAX)
        tally_flush(t, nt, k, script_ns);
    t[*nt].slot = slot;
    t[*nt].n = 0;
    t[*nt].scripted = 0;
    return &t[(*nt)++];
}

/* The tally of series name: found among this request's by name (no
 * hashing), else its slot is looked up in the shared table (and, when the
 * scripts took time, whether the series has any: once per series). */
static tally_t *tally_by_name(gw_pipeline_t *w, gw_str_t name, uint64_t script_ns)
{
    tally_t *t;

    for (uint32_t i = 0; i < w->ntally; i++) {
        gw_series_slot_t *s = w->tally[i].slot;
        if (s->len == name.n && memcmp(s->name, name.p, name.n) == 0)
            return &w->tally[i];
    }
    t = tally_of(w->tally, &w->ntally, gw_series_slot(name.p, name.n), GW_S_RECEIVED, script_ns);
    if (script_ns && !t->n)
        t->scripted = gw_script_covers(w->scripts, name.p, name.n);
    return t;
}

void gw_pipeline_count_accepted(gw_pipeline_t *w)
{
    tally_t t[TALLY_MAX];
    uint32_t nt = 0;
    gw_series_slot_t *last = NULL;
    tally_t *cur = NULL;

    for (uint32_t i = 0; i < w->nout; i++) {
        if (w->slots[i] != last) {
            last = w->slots[i];
            cur = tally_of(t, &nt, last, GW_S_ACCEPTED, 0);
        }
        cur->n++;
    }
    tally_flush(t, &nt, GW_S_ACCEPTED, 0);
}

/* Phase 1: the body into w->points (the arena and output emptied first).
 * 0; GW_PIPELINE_TOO_LARGE when it breaks max_line_bytes or max_points
 * (res says which); or -ENOMEM. */
static int parse_body(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, gw_result_t *res)
{
    int rc;

    gw_arena_reset(w->arena);
    gw_typecheck_reset(w->types);
    w->points.n = 0;
    w->out.len = 0;
    w->nout = 0;
    if (in->format != GW_FMT_JSON && w->limits.max_line_bytes) {
        uint32_t line = long_line(body, len, w->limits.max_line_bytes);
        if (line)
            return too_large(res, GW_WHERE_BODY, 0, "line %u: longer than listen.max_line_bytes (%zu)", line,
                             w->limits.max_line_bytes);
    }
    if (in->format == GW_FMT_JSON)
        rc = gw_json_parse(body, len, in->now_ns, w->arena, &w->points, res);
    else
        rc = gw_lp_parse(body, len, in->ns_per_unit, in->now_ns, w->arena, &w->points, res);
    if (rc)
        return rc;
    if (w->tracing)
        gw_trace_parsed(w->trace, res);
    if (w->limits.max_points && w->points.n > w->limits.max_points)
        return too_large(res, GW_WHERE_BODY, w->points.n + res->rejected,
                         "body: %u points, more than listen.max_points (%u)", w->points.n,
                         w->limits.max_points);
    return 0;
}

/* Phase 2: the scripts, with the limits checked before a point reaches
 * one (scripts trust a point's counts and sizes). *checked says whether
 * the points are still the ones checked (no script ran: the checks after
 * need not look at them again; without scripts the limits are checked
 * once, in phase 3); *script_ns the scripts' time per point. 0 or -ENOMEM. */
static int run_scripts(gw_pipeline_t *w, const gw_ingest_t *in, gw_result_t *res, int kind, int *checked,
                       uint64_t *script_ns)
{
    char err[256];
    int64_t t0;
    int rc;

    /* The caller's change before any script (a token's tags). */
    if (in->hooks && in->hooks->before && in->hooks->before(in->hooks->ud, w->points.v, w->points.n, w->arena))
        return -ENOMEM;
    *checked = gw_script_ready(w->scripts);
    if (*checked)
        drop_over_limits(w, res, kind, err, sizeof(err));
    t0 = gw_clock_mono_ns();
    /* req's strings are the request's: forgotten after the run. */
    gw_script_set_req(w->scripts, in->req);
    rc = gw_script_run(w->scripts, &w->points, w->arena, w->tracing ? gw_trace_scripts(w->trace) : NULL);
    gw_script_set_req(w->scripts, NULL);
    if (rc < 0)
        return rc;
    if (rc > 0)
        *checked = 0; /* what the scripts returned */
    /* Shared by the points the scripts saw; counted (phase 3) for the
     * points after them whose series has scripts. */
    *script_ns = rc > 0 ? (uint64_t)(gw_clock_mono_ns() - t0) / (uint64_t)rc : 0;
    return 0;
}

/* Phase 3: each point checked and encoded into w->out, or rejected: the
 * counts (unless checked before the scripts and left alone by them), the
 * series declarations (after the scripts, which may add what a declaration
 * requires; defaults filled in here), the encoder's rules (a point needs a
 * field, names InfluxDB reads back, ...), then the lengths on the encoded
 * line. Per-series counts are tallied here, added once per series at the
 * end; a traced run counts nothing and records each outcome. 0 or -ENOMEM. */
static int check_and_encode(gw_pipeline_t *w, const gw_ingest_t *in, gw_result_t *res, int kind, int checked,
                            uint64_t script_ns)
{
    const gw_schema_t *schema = w->schema ? w->schema : gw_schema_current();
    const int count = !w->tracing;
    gw_series_slot_t *slot = NULL;
    tally_t *tally = NULL;
    char err[256];
    size_t start;
    int rc;

    if (ends_reserve(w, w->points.n))
        return -ENOMEM;
    for (uint32_t i = 0; i < w->points.n; i++) {
        gw_point_t *p = &w->points.v[i];

        if (count && (!slot || p->series.n != slot->len || memcmp(p->series.p, slot->name, p->series.n))) {
            tally = tally_by_name(w, p->series, script_ns);
            slot = tally->slot;
        }
        if (count)
            tally->n++;
        if (!checked && (p->ntags > w->max_tags || p->nfields > w->max_fields)) {
            limits_why(&w->limits, p, err, sizeof(err));
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        rc = gw_schema_apply(schema, p, w->arena, err, sizeof(err));
        if (rc < 0)
            return rc;
        if (rc > 0) {
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        start = w->out.len;
        rc = gw_lp_encode(&w->out, p, w->lp_flags, err, sizeof(err));
        if (rc < 0)
            return rc;
        if (rc > 0) {
            /* A script's addition over a listen limit is named as that
             * limit, as it would be had a client sent it. */
            if (!checked && lengths_over(&w->limits, p))
                limits_why(&w->limits, p, err, sizeof(err));
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        /* Every name and value is in the line, escaped: a line within
         * encoded_max holds none beyond the limits. */
        if (!checked && w->out.len - start > w->encoded_max && lengths_over(&w->limits, p)) {
            w->out.len = start;
            limits_why(&w->limits, p, err, sizeof(err));
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        /* Where the point goes (routes): a point no route takes is rejected. */
        if (in->hooks && in->hooks->place && (rc = in->hooks->place(in->hooks->ud, p, w->nout, err, sizeof(err)))) {
            if (rc < 0)
                return rc;
            w->out.len = start;
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        /* A field another point of this request gave another type: its line is taken back. */
        if ((rc = gw_typecheck_point(w->types, p, w->lp_flags, kind, err, sizeof(err))) < 0)
            return rc;
        if (rc > 0) {
            w->out.len = start;
            reject(w, res, kind, i, p, slot, err);
            continue;
        }
        if (w->out.len > UINT32_MAX)
            return -ENOMEM; /* bodies are limited far below 4 GiB */
        if (w->tracing)
            gw_trace_store(w->trace, i, p, start, w->out.len - start - 1);
        w->slots[w->nout] = slot;
        w->ends[w->nout++] = (uint32_t)w->out.len;
    }
    if (count)
        tally_flush(w->tally, &w->ntally, GW_S_RECEIVED, script_ns);
    res->accepted = w->nout;
    return 0;
}

/* The three phases. */
static int run(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, gw_result_t *res)
{
    int kind = in->format == GW_FMT_JSON ? GW_WHERE_INDEX : GW_WHERE_LINE, checked, rc;
    uint64_t script_ns = 0;

    w->ntally = 0;
    rc = parse_body(w, in, body, len, res);
    if (!rc)
        rc = run_scripts(w, in, res, kind, &checked, &script_ns);
    if (!rc)
        rc = check_and_encode(w, in, res, kind, checked, script_ns);
    return rc;
}

int gw_pipeline_run(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, gw_result_t *res)
{
    return run(w, in, body, len, res);
}

int gw_pipeline_debug(gw_pipeline_t *w, const gw_ingest_t *in, const char *body, size_t len, uint32_t max_points,
                      gw_buf_t *json)
{
    gw_result_t res;
    int rc, status;

    if (!w->trace && !(w->trace = gw_trace_create()))
        return -ENOMEM;
    memset(&res, 0, sizeof(res));
    gw_trace_begin(w->trace, max_points);
    w->tracing = 1;
    rc = run(w, in, body, len, &res);
    w->tracing = 0;
    if (rc < 0)
        return rc;
    status = rc == GW_PIPELINE_TOO_LARGE ? 413 : res.has_error ? 400 : 204;
    rc = gw_trace_write(w->trace, status, &res, w->out.data, json);
    return rc == GW_TRACE_TOO_MANY ? GW_PIPELINE_TOO_MANY : rc;
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
    gw_trace_destroy(w->trace);
    gw_script_destroy(w->scripts);
    gw_typecheck_destroy(w->types);
    gw_arena_destroy(w->arena);
    gw_points_free(&w->points);
    gw_buf_free(&w->out);
    free(w->ends);
    free(w->slots);
    free(w);
}
