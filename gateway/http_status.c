/* http_status.c — what the HTTP server tells about the gateway
 * (http_int.h): GET /health as JSON (InfluxDB, buffer and spool, points,
 * dead letters, each output, connections, memory of requests, script
 * failures, and what is wrong in words) and GET /metrics in Prometheus
 * text (prom.c). */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "deadletter.h"
#include "metrics.h"
#include "prom.h"
#include "script.h"
#include "spool.h"
#include "status.h"
#include "version.h"

/* /health's "connections": what conns.h counts. */
static void connections_json(gw_http_t *h, gw_jsonw_t *w)
{
    gw_conns_stats_t st;

    gw_conns_stats(h->conns, &st);
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "open", st.open);
    gw_jsonw_member_int(w, "limit", h->cfg->listen.max_connections);
    gw_jsonw_member_uint(w, "probe_only", st.probes);
    gw_jsonw_member_uint(w, "refused", st.refused);
    gw_jsonw_member_uint(w, "refused_per_client", st.refused_client);
    gw_jsonw_end(w);
}

/* /health's "inflight": the memory of requests in progress (inflight.h). */
static void inflight_json(gw_http_t *h, gw_jsonw_t *w)
{
    gw_inflight_stats_t st;

    gw_inflight_stats(h->inflight, &st);
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "bytes", st.held);
    gw_jsonw_member_uint(w, "limit", st.limit);
    gw_jsonw_member_uint(w, "peak", st.peak);
    gw_jsonw_member_uint(w, "refused", st.full + st.too_big);
    gw_jsonw_end(w);
}

/* /health's "scripts": the failures of script calls (script.h), in total
 * and per series with the last one; null when no snapshot can be taken. */
static void scripts_json(gw_jsonw_t *w)
{
    static const char *const kinds[GW_SCRIPT_FAIL_KINDS] = {"errors", "timeouts", "memory"};
    gw_script_stats_t st;

    if (gw_script_stats_snapshot(&st)) {
        gw_jsonw_null(w);
        return;
    }
    gw_jsonw_begin_object(w);
    gw_jsonw_key(w, "total");
    gw_jsonw_begin_object(w);
    for (int k = 0; k < GW_SCRIPT_FAIL_KINDS; k++)
        gw_jsonw_member_uint(w, kinds[k], st.total[k]);
    gw_jsonw_end(w);
    gw_jsonw_key(w, "series");
    gw_jsonw_begin_object(w);
    for (size_t i = 0; i < st.n; i++) {
        const gw_script_stat_t *s = &st.series[i];
        char stamp[32], name[512], msg[512];

        gw_clock_utc(stamp, sizeof(stamp), s->last_ns);
        gw_jsonw_key(w, ECHO(name, s->series));
        gw_jsonw_begin_object(w);
        for (int k = 0; k < GW_SCRIPT_FAIL_KINDS; k++)
            gw_jsonw_member_uint(w, kinds[k], s->count[k]);
        gw_jsonw_key(w, "last");
        gw_jsonw_begin_object(w);
        gw_jsonw_member_string(w, "script", s->last_script);
        gw_jsonw_member_string(w, "message", ECHO(msg, s->last_message));
        gw_jsonw_member_string(w, "at", stamp);
        gw_jsonw_end(w);
        gw_jsonw_end(w);
    }
    gw_jsonw_end(w);
    gw_jsonw_end(w);
    gw_script_stats_free(&st);
}

/* What /health finds wrong, in words; any of it makes the answer 503. */
typedef struct {
    char upstream[160]; /* InfluxDB's trouble, or "" */
    const char *local[2]; /* this instance's: full, draining (NULL-terminated) */
    long long refusing;   /* 401/403/404 from InfluxDB, or 0 */
    int reachable;
    uint64_t points, bytes, spool_bytes; /* held by the outputs, summed */
} health_t;

/* Several outputs: what counts is whether every route has one that takes
 * points (an HA pair with one member down is fine). */
static void health_outputs(gw_http_t *h, health_t *hs)
{
    gw_access_t *a = gw_access_acquire();

    hs->reachable = !a || !gw_access_stuck(a, h->outs);
    hs->refusing = 0;
    gw_access_release(a);
    if (!hs->reachable)
        snprintf(hs->upstream, sizeof(hs->upstream), "some route has no output able to take points: see outputs");
}

static void health_check(gw_http_t *h, health_t *hs)
{
    int n = 0, full;

    memset(hs, 0, sizeof(*hs));
    gw_outputs_held(h->outs, &hs->points, &hs->bytes, &hs->spool_bytes);
    if (gw_outputs_count(h->outs) > 1) {
        health_outputs(h, hs);
    } else {
        hs->reachable = GW_GET(healthy) != 0;
        /* 401/403/404 from InfluxDB: nothing gets through until someone
         * fixes the configuration. */
        hs->refusing = (long long)GW_GET(influx_refusing);
        if (hs->refusing)
            snprintf(hs->upstream, sizeof(hs->upstream),
                     "influxdb refuses writes (HTTP %lld): check credentials, database or bucket", hs->refusing);
        else if (!hs->reachable)
            snprintf(hs->upstream, sizeof(hs->upstream),
                     "influxdb unreachable or failing (last status %lld), retrying", (long long)GW_GET(last_status));
    }
    full = gw_outputs_count(h->outs) == 1 && gw_outputs_state(h->outs, 0) == GW_OUT_FULL;
    if (full && hs->spool_bytes)
        hs->local[n++] = "spool full (95% of spool.max_bytes): ingest answers 503";
    else if (full)
        hs->local[n++] = "buffer full (monitoring.buffer_limit or buffer_limit_bytes): ingest answers 503";
    if (n < 2 && (atomic_load(&h->leaving) || atomic_load(&h->draining)))
        hs->local[n++] = "draining: this instance is stopping, send elsewhere";
}

/* /health's counters of InfluxDB, the buffer and the points. */
static void health_counts(gw_http_t *h, const health_t *hs, gw_jsonw_t *w)
{
    gw_jsonw_key(w, "influx");
    gw_jsonw_begin_object(w);
    gw_jsonw_member_bool(w, "reachable", hs->reachable);
    gw_jsonw_member_uint(w, "last_status", GW_GET(last_status));
    gw_jsonw_member_int(w, "refusing", hs->refusing);
    gw_jsonw_end(w);
    gw_jsonw_key(w, "buffer");
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "points", hs->points);
    gw_jsonw_member_uint(w, "limit", h->cfg->monitoring.buffer_limit);
    gw_jsonw_member_uint(w, "bytes", hs->bytes);
    gw_jsonw_member_uint(w, "limit_bytes",
                         *h->cfg->spool.dir ? h->cfg->spool.max_bytes : h->cfg->monitoring.buffer_limit_bytes);
    gw_jsonw_key(w, "spool");
    gw_outputs_spool_json(h->outs, w);
    gw_jsonw_end(w);
    gw_jsonw_key(w, "points");
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "received", GW_GET(points_received));
    gw_jsonw_member_uint(w, "accepted", GW_GET(points_accepted));
    gw_jsonw_member_uint(w, "rejected", GW_GET(points_rejected));
    gw_jsonw_member_uint(w, "refused", GW_GET(points_refused));
    gw_jsonw_member_uint(w, "written", GW_GET(points_written));
    gw_jsonw_member_uint(w, "dropped", GW_GET(points_dropped));
    gw_jsonw_member_uint(w, "overflowed", GW_GET(points_overflowed));
    gw_jsonw_end(w);
}

/* GET /health: 200 when nothing is wrong, else 503 with "problems".
 * "ready": none of them but InfluxDB's, so this instance still takes points
 * (what a load balancer in front of spooling instances checks). */
enum MHD_Result http_health(gw_http_t *h, struct MHD_Connection *c)
{
    health_t hs;
    gw_buf_t b;
    gw_jsonw_t w;
    int failing;

    health_check(h, &hs);
    failing = hs.upstream[0] || hs.local[0];
    http_json_begin(&w, &b);
    gw_jsonw_member_string(&w, "name", "luagw");
    gw_jsonw_member_string(&w, "version", GW_VERSION);
    gw_jsonw_member_string(&w, "status", failing ? "fail" : "pass");
    health_counts(h, &hs, &w);
    gw_jsonw_key(&w, "outputs");
    gw_outputs_json(h->outs, &w);
    gw_jsonw_key(&w, "dead_letter");
    gw_deadletter_json(&w);
    gw_jsonw_member_bool(&w, "stopping", atomic_load(&h->leaving) || atomic_load(&h->draining));
    gw_jsonw_key(&w, "connections");
    connections_json(h, &w);
    gw_jsonw_key(&w, "inflight");
    inflight_json(h, &w);
    gw_jsonw_key(&w, "scripts");
    scripts_json(&w);
    gw_jsonw_member_bool(&w, "ready", !hs.local[0]);
    gw_jsonw_key(&w, "problems");
    gw_jsonw_begin_array(&w);
    if (hs.upstream[0])
        gw_jsonw_string(&w, hs.upstream);
    for (int i = 0; i < 2 && hs.local[i]; i++)
        gw_jsonw_string(&w, hs.local[i]);
    gw_jsonw_end(&w);
    return http_answer_json(c, failing ? 503 : 200, &w, R_HEALTH, NULL);
}

/* GET /metrics: Prometheus text format (prom.c). */
enum MHD_Result http_metrics(gw_http_t *h, struct MHD_Connection *c)
{
    gw_buf_t b = {0};
    gw_conns_stats_t st;
    gw_inflight_stats_t in;
    enum MHD_Result rc;

    gw_conns_stats(h->conns, &st);
    gw_inflight_stats(h->inflight, &in);
    if (gw_prom_render(&b, h->outs, &st, &in)) {
        gw_buf_free(&b);
        return http_answer_error(c, 500, R_METRICS, "out of memory");
    }
    rc = http_answer(c, 200, b.data, b.len, "text/plain; version=0.0.4; charset=utf-8");
    gw_buf_free(&b);
    return rc;
}

/* GET /status and /status.json (status.h). Without a token when tokens are
 * set, the page answers 401 with a Basic challenge, so that a browser asks
 * for one (the token as the password); ?token= works too. */
enum MHD_Result http_status_page(gw_http_t *h, struct MHD_Connection *c, enum route route)
{
    static const char ask[] = "401: this page needs a token: open /status?token=<token>, or give it as the "
                              "password when the browser asks\n";
    struct MHD_Response *r;
    char *json;
    enum MHD_Result rc;

    if (!http_let_in(c, route)) {
        if (route == R_STATUS_JSON)
            return http_answer_error(c, 401, route, "unauthorized: send Authorization: Bearer <token> (or ?token=)");
        if (!(r = MHD_create_response_from_buffer(sizeof(ask) - 1, (void *)ask, MHD_RESPMEM_PERSISTENT)))
            return MHD_NO;
        MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"luagw status\", charset=\"UTF-8\"");
        return http_queue(c, 401, r, "text/plain; charset=utf-8");
    }
    if (route == R_STATUS) {
        r = MHD_create_response_from_buffer(gw_status_html_len, (void *)gw_status_html, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "connect-src 'self'; img-src 'self'");
        return http_queue(c, 200, r, "text/html; charset=utf-8");
    }
    if (!(json = gw_status_json(h->cfg, h->outs)))
        return http_answer(c, 500, http_nomem_json, http_nomem_json_len, "application/json");
    rc = http_answer(c, 200, json, strlen(json), "application/json");
    free(json);
    return rc;
}
