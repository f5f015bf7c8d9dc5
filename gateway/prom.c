/* prom.c — Prometheus text format for GET /metrics.
 *
 * Everything read here is a relaxed atomic (metrics.h) or taken from the
 * modules that own it (queue depth, spool, script errors); scraping takes no
 * lock on the ingest path. Names follow Prometheus conventions: *_total for
 * counters, base units (seconds, bytes). */
#include "prom.h"

#include <errno.h>
#include <stdlib.h>

#include "memo.h"
#include "metrics.h"
#include "script.h"
#include "spool.h"
#include "utf8.h"
#include "version.h"

/* A label value: \\, " and newline escaped as the format wants, and any
 * byte that is not part of valid UTF-8 (series names are the clients')
 * written as the text \xHH, since one invalid byte makes a scraper refuse
 * the whole page. */
static void put_label_value(gw_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;

    while (p < e) {
        size_t k = gw_utf8_char(p, e);
        if (*p == '\\' || *p == '"')
            gw_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            gw_buf_printf(b, "\\n");
        else if (k == 0)
            gw_buf_printf(b, "\\\\x%02x", *p);
        else
            gw_buf_append(b, (const char *)p, k);
        p += k ? k : 1;
    }
}

static void head(gw_buf_t *b, const char *name, const char *type, const char *help)
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(gw_buf_t *b, const char *name, const char *type, const char *help, unsigned long long v)
{
    head(b, name, type, help);
    gw_buf_printf(b, "%s %llu\n", name, v);
}

typedef struct {
    gw_buf_t *b;
    int k;             /* GW_S_* */
    const char *name;
    double scale;      /* 0: integer counter */
} series_ctx_t;

static void series_line(const gw_series_slot_t *s, void *ud)
{
    series_ctx_t *x = ud;
    unsigned long long v = atomic_load_explicit(&s->v[x->k], memory_order_relaxed);

    gw_buf_printf(x->b, "%s{series=\"", x->name);
    put_label_value(x->b, s->name, s->len);
    if (x->scale)
        gw_buf_printf(x->b, "\"} %.9g\n", (double)v * x->scale);
    else
        gw_buf_printf(x->b, "\"} %llu\n", v);
}

static void hist(gw_buf_t *b, const char *name, const char *help, gw_hist_t *h)
{
    unsigned long long cum = 0;

    head(b, name, "histogram", help);
    for (int i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            gw_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], cum);
        else
            gw_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    gw_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name,
                  (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6, name, cum);
}

/* Script failures per series and kind (script.h). */
static void script_errors(gw_buf_t *b)
{
    gw_script_stats_t st;

    head(b, "luagw_script_errors_total", "counter",
         "script calls that failed, per series and kind (error, timeout, memory)");
    if (gw_script_stats_snapshot(&st))
        return;
    for (size_t i = 0; i < st.n; i++)
        for (int k = 0; k < GW_SCRIPT_FAIL_KINDS; k++) {
            gw_buf_printf(b, "luagw_script_errors_total{series=\"");
            put_label_value(b, st.series[i].series, strlen(st.series[i].series));
            gw_buf_printf(b, "\",kind=\"%s\"} %llu\n", gw_script_fail_name(k),
                          (unsigned long long)st.series[i].count[k]);
        }
    gw_script_stats_free(&st);
}

/* The memo cache of memo(f) scripts, all workers (memo.h). */
static void script_memo(gw_buf_t *b)
{
    gw_memo_stats_t st;

    gw_memo_stats(&st);
    head(b, "luagw_script_memo_total", "counter",
         "points of memo(f) scripts: answered from the cache (hit), run and remembered (miss), run because their "
         "shape is uncacheable (uncacheable)");
    gw_buf_printf(b, "luagw_script_memo_total{result=\"hit\"} %llu\n", (unsigned long long)st.hits);
    gw_buf_printf(b, "luagw_script_memo_total{result=\"miss\"} %llu\n", (unsigned long long)st.misses);
    gw_buf_printf(b, "luagw_script_memo_total{result=\"uncacheable\"} %llu\n", (unsigned long long)st.uncacheable);
    scalar(b, "luagw_script_memo_evictions_total", "counter",
           "memo cache entries evicted to make room (scripts.memo_entries)", st.evictions);
    head(b, "luagw_script_memo_verify_total", "counter",
         "memo hits run anyway to check them (scripts.memo_verify), by outcome");
    gw_buf_printf(b, "luagw_script_memo_verify_total{result=\"match\"} %llu\n",
                  (unsigned long long)(st.verified - st.mismatches));
    gw_buf_printf(b, "luagw_script_memo_verify_total{result=\"mismatch\"} %llu\n", (unsigned long long)st.mismatches);
}

/* The HTTP server's connections (conns.h). */
static void connections(gw_buf_t *b, const gw_conns_stats_t *st)
{
    scalar(b, "luagw_http_connections_accepted_total", "counter", "client connections accepted, refused ones included",
           st->accepted);
    scalar(b, "luagw_http_connections", "gauge", "client connections open, probe-only ones included", st->open);
    scalar(b, "luagw_http_probe_connections", "gauge",
           "connections beyond listen.max_connections that may ask only /ping, /health, /metrics", st->probes);
    head(b, "luagw_http_connections_closed_total", "counter",
         "connections closed by a limit: at accept (refused, refused_per_client), or probe-only ones past their "
         "time (expired) or making room (evicted)");
    gw_buf_printf(b, "luagw_http_connections_closed_total{reason=\"refused\"} %llu\n",
                  (unsigned long long)(st->refused - st->refused_client));
    gw_buf_printf(b, "luagw_http_connections_closed_total{reason=\"refused_per_client\"} %llu\n",
                  (unsigned long long)st->refused_client);
    gw_buf_printf(b, "luagw_http_connections_closed_total{reason=\"expired\"} %llu\n",
                  (unsigned long long)st->expired);
    gw_buf_printf(b, "luagw_http_connections_closed_total{reason=\"evicted\"} %llu\n",
                  (unsigned long long)st->evicted);
}

/* The memory of the HTTP server's requests in progress (inflight.h). */
static void inflight(gw_buf_t *b, const gw_inflight_stats_t *st)
{
    scalar(b, "luagw_http_inflight_bytes", "gauge",
           "memory held by requests in progress: bodies, inflated, being processed", st->held);
    scalar(b, "luagw_http_inflight_limit_bytes", "gauge", "listen.max_inflight_bytes", st->limit);
    scalar(b, "luagw_http_inflight_peak_bytes", "gauge", "most of it held at once since start", st->peak);
    head(b, "luagw_http_inflight_refused_total", "counter",
         "requests refused for want of it: others held the room (full, 503), or one alone needed more than "
         "the limit (too_big, 413)");
    gw_buf_printf(b, "luagw_http_inflight_refused_total{reason=\"full\"} %llu\n", (unsigned long long)st->full);
    gw_buf_printf(b, "luagw_http_inflight_refused_total{reason=\"too_big\"} %llu\n",
                  (unsigned long long)st->too_big);
}

int gw_prom_render(gw_buf_t *b, gw_outputs_t *outs, const gw_conns_stats_t *conns, const gw_inflight_stats_t *in)
{
    static const struct {
        int k;
        const char *name, *help;
        double scale;
    } per_series[] = {
        {GW_S_RECEIVED, "luagw_series_points_received_total", "points that reached the checks, after scripts", 0},
        {GW_S_ACCEPTED, "luagw_series_points_accepted_total", "points queued for InfluxDB", 0},
        {GW_S_REJECTED, "luagw_series_points_rejected_total", "points refused with a 400 (declaration, encoding)", 0},
        {GW_S_WRITTEN, "luagw_series_points_written_total", "points InfluxDB stored (2xx)", 0},
        {GW_S_DROPPED, "luagw_series_points_dropped_total", "points InfluxDB refused for good", 0},
        {GW_S_SCRIPT_NS, "luagw_series_script_seconds_total",
         "time spent in scripts; a request's script time is shared by its points", 1e-9},
    };
    uint64_t held = 0, held_bytes = 0, spool_bytes = 0;

    if (outs)
        gw_outputs_held(outs, &held, &held_bytes, &spool_bytes);
    head(b, "luagw_build_info", "gauge", "version of this luagw");
    gw_buf_printf(b, "luagw_build_info{version=\"%s\",influx_compat=\"%s\"} 1\n", GW_VERSION,
                  GW_INFLUX_COMPAT_VERSION);
    scalar(b, "luagw_requests_total", "counter", "ingest requests answered", GW_GET(requests));
    scalar(b, "luagw_points_received_total", "counter", "points parsed or rejected by the parsers",
           GW_GET(points_received));
    scalar(b, "luagw_points_accepted_total", "counter", "points queued for InfluxDB", GW_GET(points_accepted));
    scalar(b, "luagw_points_rejected_total", "counter", "bad points answered with 400", GW_GET(points_rejected));
    scalar(b, "luagw_points_refused_total", "counter", "points of bodies refused by backpressure (503)",
           GW_GET(points_refused));
    scalar(b, "luagw_points_written_total", "counter", "points InfluxDB stored", GW_GET(points_written));
    scalar(b, "luagw_points_dropped_total", "counter", "points InfluxDB refused for good", GW_GET(points_dropped));
    scalar(b, "luagw_points_overflowed_total", "counter", "points dropped by overflow: drop_oldest",
           GW_GET(points_overflowed));
    scalar(b, "luagw_time_fields_dropped_total", "counter",
           "fields named time, dropped at ingest as InfluxDB drops them", GW_GET(time_fields_dropped));
    scalar(b, "luagw_write_errors_total", "counter", "failed write attempts to InfluxDB (retried)",
           GW_GET(write_errors));
    for (size_t i = 0; i < sizeof(per_series) / sizeof(per_series[0]); i++) {
        series_ctx_t x = {b, per_series[i].k, per_series[i].name, per_series[i].scale};
        head(b, per_series[i].name, "counter", per_series[i].help);
        gw_series_each(series_line, &x);
    }
    script_errors(b);
    script_memo(b);
    hist(b, "luagw_batch_points", "points per write request to InfluxDB", &gw_hist_batch_points);
    hist(b, "luagw_write_duration_seconds", "duration of one write request to InfluxDB", &gw_hist_write_seconds);
    head(b, "luagw_influx_responses_total", "counter",
         "InfluxDB's answers to write requests by HTTP status (0: no answer)");
    for (int s = 0; s < 600; s++) {
        unsigned long long v = atomic_load_explicit(&gw_influx_status[s], memory_order_relaxed);
        if (v)
            gw_buf_printf(b, "luagw_influx_responses_total{code=\"%d\"} %llu\n", s, v);
    }
    scalar(b, "luagw_influx_up", "gauge", "1 while the last write attempt succeeded", GW_GET(healthy) != 0);
    scalar(b, "luagw_buffer_points", "gauge", "points waiting for delivery, over all outputs", held);
    scalar(b, "luagw_buffer_bytes", "gauge", "bytes of those points (with a spool: the spool's on disk)", held_bytes);
    scalar(b, "luagw_spool_bytes", "gauge", "bytes of the spools on disk (0 without a spool)", spool_bytes);
    if (outs && gw_outputs_prom(outs, b))
        return -ENOMEM;
    if (conns)
        connections(b, conns);
    if (in)
        inflight(b, in);
    return b->data ? 0 : -ENOMEM;
}
