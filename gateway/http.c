/* http.c — ingest over HTTP with libmicrohttpd, see http.h. */
#include <netinet/in.h> /* before microhttpd.h: it needs sockaddr_in */

#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <libdeflate.h>

#include "clock.h"
#include "conns.h"
#include "deadletter.h"
#include "dispatch.h"
#include "inflight.h"
#include "lineproto.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "prom.h"
#include "query.h"
#include "script.h"
#include "spool.h"
#include "status.h"
#include "utf8.h"
#include "version.h"

enum route {
    R_NONE = 0,
    R_POINTS,   /* POST /v1/points */
    R_WRITE_V1, /* POST /write */
    R_WRITE_V2, /* POST /api/v2/write */
    R_PING,
    R_HEALTH,
    R_METRICS,  /* GET /metrics: Prometheus */
    R_DEBUG,    /* POST /v1/debug/transform */
    R_READ,     /* /api/v2/query: 404 saying where to query */
    R_QUERY,    /* GET, POST /query: passed through (query.h) */
    R_STATUS,   /* GET /status: the page (status.h) */
    R_STATUS_JSON, /* GET /status.json: what it shows */
};

struct gw_http {
    struct MHD_Daemon **daemons; /* owned: one single-threaded daemon per worker */
    int ndaemons;
    int listen_fd;               /* owned */
    int wake[2];                 /* owned: pipe that stops the acceptor */
    gw_conns_t *conns;           /* owned: who may connect (conns.h) */
    gw_inflight_t *inflight;     /* owned: memory of requests in progress (inflight.h) */
    pthread_t acceptor;
    int acceptor_ok;
    int key_ok;
    const gw_config_t *cfg; /* borrowed */
    gw_outputs_t *outs;     /* borrowed */
    pthread_key_t key;      /* each worker thread's gw_pipeline_t */
    unsigned lp_flags;
    atomic_int draining;    /* set by gw_http_drain: ingest answers 503 */
    atomic_int leaving;     /* set by gw_http_leave: /health answers 503 */
    char *tls_cert;         /* owned: PEM text of listen.tls_cert, NULL = plain HTTP */
    char *tls_key;          /* owned: PEM text of listen.tls_key */
};

/* Bytes over the body limit that are read and discarded to deliver a 413. */
#define DRAIN_MAX ((size_t)16 << 20)

/* Seconds a probe-only connection (conns.h) lives from its accept: enough
 * for a probe's request and answer, too little for a slow client to hold. */
#define PROBE_SECONDS 2.0

/* Points /v1/debug/transform takes in one body, and answers for (what
 * the scripts make of them, stored or rejected): its answer is about 300
 * bytes per point besides the point's line, so this bounds it. */
#define DEBUG_MAX_POINTS 10000

/* Memory the debug transform's answer takes per point of the body, while
 * it is built: the answer and the trace's record of the point (trace.h),
 * with room for long lines. */
#define DEBUG_POINT_COST ((size_t)4096)

/* A request that may take more than this to process gives its worker's
 * buffers back when it ends (they are made again at the next request), so
 * what a worker keeps between requests stays below it. */
#define WORKER_KEEP_BYTES ((size_t)32 << 20)

/* Allocations from this size up are mapped apart and unmapped when freed,
 * rather than left in malloc's per-thread arenas (glibc otherwise raises
 * the threshold with each large block freed, up to 32 MiB): what a large
 * body, its inflation or its processing took goes back to the system when
 * the request ends, whichever worker took it. Not lower: a block mapped
 * anew faults in every page on each request (at 128 KiB, 2 MiB bodies took
 * a quarter more CPU); the rest is given back by malloc_trim (http.c,
 * inflight.h's gw_inflight_ebbed). */
#define MMAP_FROM_BYTES ((size_t)4 << 20)

/* One request in progress; freed by on_completed. */
typedef struct {
    enum route route;
    gw_buf_t body;    /* owned: the raw body */
    size_t expect;    /* the most the body takes: its Content-Length, else max_body_bytes */
    size_t received;  /* body bytes read so far, kept or not */
    size_t held;      /* bytes held in h->inflight for it: on_completed gives them back */
    int too_large;    /* body grew past max_body_bytes: answer 413 */
    int no_room;      /* GW_INFLIGHT_FULL or _TOO_BIG: the body is read and dropped, answer 503 or 413 */
    int release;      /* its processing was large: give the worker's buffers back at the end */
    gw_access_t *access;       /* owned reference: the routes and tokens it began with */
    const gw_tenant_t *tenant; /* borrowed from access: its token, NULL without one */
    gw_query_t *query; /* owned reference: a /query in progress (query.h) */
} req_t;

static const struct {
    const char *path;
    enum route route;
    const char *methods; /* allowed, for 405's Allow header */
} routes[] = {
    {"/v1/points", R_POINTS, "POST"},
    {"/write", R_WRITE_V1, "POST"},
    {"/api/v2/write", R_WRITE_V2, "POST"},
    {"/ping", R_PING, "GET, HEAD"},
    {"/health", R_HEALTH, "GET, HEAD"},
    {"/metrics", R_METRICS, "GET, HEAD"},
    {"/v1/debug/transform", R_DEBUG, "POST"},
    {"/query", R_QUERY, "GET, POST"},
    {"/api/v2/query", R_READ, ""},
    {"/status", R_STATUS, "GET, HEAD"},
    {"/status.json", R_STATUS_JSON, "GET, HEAD"},
};

/* ------------------------------------------------------------------ answers */

/* The socket context of a connection admitted only for probes (conns.h). */
static char probe_mark;

static int probe_only(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci && ci->socket_context == &probe_mark;
}

/* Add the headers of every answer to r, queue it and let go of it. A
 * probe-only connection is closed after its answer. */
static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
                             const char *ctype)
{
    enum MHD_Result rc;

    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Influxdb-Version", GW_INFLUX_COMPAT_VERSION);
    MHD_add_response_header(r, "X-Luagw-Version", GW_VERSION);
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (probe_only(c))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body,
                              size_t len, const char *ctype)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    return r ? queue(c, status, r, ctype) : MHD_NO;
}

/* What an answer says when its own JSON cannot be made (out of memory). */
static const char nomem_json[] = "{\"error\":\"out of memory while answering\"}";

/* The JSON text of obj (consumed), malloc'd; NULL on ENOMEM. For the 2.x
 * endpoint (and the query paths, which 2.x clients ask too) an error is
 * also given as {"code", "message"}, which 2.x clients read. */
static char *json_text(unsigned status, json_t *obj, enum route route)
{
    char *text;

    if ((route == R_WRITE_V2 || route == R_READ) && json_object_get(obj, "error")) {
        json_object_set_new(obj, "code", json_string(status == 413 ? "request too large"
                                                     : status == 401 ? "unauthorized"
                                                     : status == 404 ? "not found"
                                                     : status == 503 ? "unavailable"
                                                     : status >= 500 ? "internal error"
                                                                     : "invalid"));
        json_object_set(obj, "message", json_object_get(obj, "error"));
    }
    text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return text;
}

/* Answer status with a JSON body holding obj (consumed). */
static enum MHD_Result answer_json(struct MHD_Connection *c, unsigned status, json_t *obj,
                                   enum route route)
{
    char *text = json_text(status, obj, route);
    enum MHD_Result rc;

    if (!text)
        return answer(c, 500, nomem_json, sizeof(nomem_json) - 1, "application/json");
    rc = answer(c, status, text, strlen(text), "application/json");
    free(text);
    return rc;
}

/* {"error": message}: the message made safe to echo (utf8.h), whatever of
 * the client's it holds. NULL on ENOMEM. */
static json_t *error_obj(const char *fmt, va_list ap)
{
    char raw[1024], msg[512];

    vsnprintf(raw, sizeof(raw), fmt, ap);
    return json_pack("{s:s}", "error", gw_utf8_echo(msg, sizeof(msg), raw, strlen(raw)));
}

static enum MHD_Result answer_error(struct MHD_Connection *c, unsigned status, enum route route,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result answer_error(struct MHD_Connection *c, unsigned status, enum route route,
                                    const char *fmt, ...)
{
    va_list ap;
    json_t *o;

    va_start(ap, fmt);
    o = error_obj(fmt, ap);
    va_end(ap);
    return answer_json(c, status, o, route);
}

/* Client text for a message, made safe to echo and cut to fit buf. */
#define ECHO(buf, s) gw_utf8_echo((buf), sizeof(buf), (s), strlen(s))

/* A request refused for want of memory (inflight.h), needing need bytes in
 * all: 503 while others hold the room (the client retries), 413 when it
 * alone needs more than listen.max_inflight_bytes. Nothing of it is taken. */
static enum MHD_Result answer_no_room(gw_http_t *h, struct MHD_Connection *c, enum route route, int why,
                                      size_t need)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
    size_t limit = h->cfg->max_inflight_bytes;

    gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http: request refused for want of memory",
                   "limit=\"listen.max_inflight_bytes\" need=%zu status=%d", need,
                   why == GW_INFLIGHT_TOO_BIG ? 413 : 503);
    if (why == GW_INFLIGHT_TOO_BIG)
        return answer_error(c, 413, route,
                            "body: taking it in needs about %zu MiB of memory, more than listen.max_inflight_bytes "
                            "(%zu) holds for all requests: send smaller bodies",
                            (need >> 20) + 1, limit);
    return answer_error(c, 503, route,
                        "requests in progress hold all of listen.max_inflight_bytes (%zu): nothing of this body "
                        "was accepted, retry later",
                        limit);
}

/* 405, with the methods the path allows. */
static enum MHD_Result answer_405(struct MHD_Connection *c, enum route route, const char *method,
                                  const char *url, const char *allowed)
{
    char m[64], u[256], msg[400], *text;
    struct MHD_Response *r;

    snprintf(msg, sizeof(msg), "method %s not allowed on %s (allowed: %s)", ECHO(m, method), ECHO(u, url),
             allowed);
    text = json_text(405, json_pack("{s:s}", "error", msg), route);
    r = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(sizeof(nomem_json) - 1, (void *)nomem_json, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Allow", allowed);
    return queue(c, text ? 405 : 500, r, "application/json");
}

/* ------------------------------------------------------------------ workers */

static void worker_free(void *p)
{
    gw_pipeline_destroy(p);
}

/* This thread's pipeline, created on first use (NULL on ENOMEM). */
static gw_pipeline_t *worker(gw_http_t *h)
{
    gw_pipeline_t *w = pthread_getspecific(h->key);
    if (!w) {
        w = gw_pipeline_create(h->lp_flags);
        if (w)
            gw_pipeline_configure(w, h->cfg);
        if (w && pthread_setspecific(h->key, w)) {
            gw_pipeline_destroy(w);
            w = NULL;
        }
    }
    return w;
}

/* ------------------------------------------------------------------ ingest */

/* Where an inflation takes its memory from (inflight.h): a request's hold,
 * of which base bytes are not the inflation's. */
typedef struct {
    gw_inflight_t *a; /* borrowed */
    size_t *held;     /* borrowed: the request's hold */
    size_t base;
    int why;          /* GW_INFLIGHT_* of the take that failed */
} inflate_room_t;

/* What gunzip returns besides 0: the result would exceed its limit, the
 * data is corrupt, the memory for it was refused (room->why says how). */
enum { INFLATE_LARGE = 1, INFLATE_CORRUPT = -1, INFLATE_NO_ROOM = 2 };

/* Decompress one gzip member (or zlib stream) of in, from *at, appending
 * to out without going beyond limit + 1 bytes; *at moves past it. Every
 * byte of out that may be written is first taken from ctx.
 * libdeflate decompresses whole buffers only: it is tried with a guess of
 * the size (gzip's trailer states it, mod 2^32 and maybe falsely; zlib
 * gives none: 4x) doubled until it fits. 0 or INFLATE_*. */
static int inflate_member(struct libdeflate_decompressor *d, int gzip, const gw_buf_t *in, size_t *at,
                          gw_buf_t *out, size_t limit, inflate_room_t *ctx)
{
    const unsigned char *src = (const unsigned char *)in->data + *at;
    size_t n = in->len - *at, used = 0, got = 0, room = limit + 1 - out->len, want, need;
    enum libdeflate_result r;

    want = gzip && n >= 18 ? (size_t)src[n - 4] | (size_t)src[n - 3] << 8 | (size_t)src[n - 2] << 16 |
                                 (size_t)src[n - 1] << 24
                           : n * 4;
    if (want < 65536)
        want = 65536;
    for (;;) {
        if (want > room)
            want = room;
        need = ctx->base + out->len + want;
        ctx->why = gw_inflight_take(ctx->a, ctx->held, need, need);
        if (ctx->why != GW_INFLIGHT_OK)
            return INFLATE_NO_ROOM;
        if (gw_buf_reserve(out, want))
            return INFLATE_CORRUPT;
        r = gzip ? libdeflate_gzip_decompress_ex(d, src, n, out->data + out->len, want, &used, &got)
                 : libdeflate_zlib_decompress_ex(d, src, n, out->data + out->len, want, &used, &got);
        if (r == LIBDEFLATE_SUCCESS)
            break;
        if (r != LIBDEFLATE_INSUFFICIENT_SPACE)
            return INFLATE_CORRUPT;
        if (want == room)
            return INFLATE_LARGE;
        want *= 2;
    }
    out->len += got;
    *at += used;
    return out->len > limit ? INFLATE_LARGE : 0;
}

/* Decompress a gzip (every member, as InfluxDB's Go reader does) or zlib
 * body into out, at most limit bytes, its memory taken from ctx. Returns 0
 * or INFLATE_*. libdeflate: about 3x zlib's inflate. */
static int gunzip(const gw_buf_t *in, gw_buf_t *out, size_t limit, inflate_room_t *ctx)
{
    const unsigned char *b = (const unsigned char *)in->data;
    int gzip = in->len >= 2 && b[0] == 0x1f && b[1] == 0x8b, rc;
    size_t at = 0;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();

    if (!d)
        return INFLATE_CORRUPT;
    do {
        rc = inflate_member(d, gzip, in, &at, out, limit, ctx);
    } while (rc == 0 && gzip && in->len - at >= 2 && b[at] == 0x1f && b[at + 1] == 0x8b);
    if (rc == 0 && at != in->len)
        rc = INFLATE_CORRUPT; /* trailing bytes that are not another member */
    libdeflate_free_decompressor(d);
    return rc;
}

static json_t *result_json(const gw_result_t *res, const char *prefix)
{
    json_t *o = json_object();

    if (res->has_error) {
        char msg[400], safe[400];
        if (res->err_kind == GW_WHERE_LINE) {
            snprintf(msg, sizeof(msg), "%sline %u: %s", prefix, res->err_where, res->err_msg);
            json_object_set_new(o, "line", json_integer(res->err_where));
        } else if (res->err_kind == GW_WHERE_INDEX) {
            snprintf(msg, sizeof(msg), "%sindex %u: %s", prefix, res->err_where, res->err_msg);
            json_object_set_new(o, "index", json_integer(res->err_where));
        } else {
            snprintf(msg, sizeof(msg), "%s%s", prefix, res->err_msg);
        }
        /* Parsers quote what they refused, which may not be UTF-8. */
        json_object_set_new(o, "error", json_string(ECHO(safe, msg)));
    }
    json_object_set_new(o, "accepted", json_integer(res->accepted));
    json_object_set_new(o, "rejected", json_integer(res->rejected));
    return o;
}

/* A body that starts with gzip's magic bytes and was not inflated (or was,
 * and is gzip again) is no line protocol (the second byte is no UTF-8 a
 * series may start with) and no JSON: 415 saying what to send. 0, or 1
 * once the answer is queued (in *ret). */
static int refuse_gzipped(struct MHD_Connection *c, const req_t *r, const char *body, size_t len,
                          enum MHD_Result *ret)
{
    if (len < 2 || (unsigned char)body[0] != 0x1f || (unsigned char)body[1] != 0x8b)
        return 0;
    *ret = answer_error(c, 415, r->route,
                        "body looks gzip-compressed: send Content-Encoding: gzip with it (and compress it once)");
    return 1;
}

/* What ingest and the debug transform do first: ?precision= of a line-
 * protocol body into in->ns_per_unit, and the body itself or, with
 * Content-Encoding: gzip, its inflation into *inflated (the caller frees
 * it, and gives back the memory taken for it: inflight.h). 0 with *body and
 * *len set, or 1 once an error answer is queued (its result in *ret). */
static int prepare_body(gw_http_t *h, struct MHD_Connection *c, req_t *r, gw_ingest_t *in, gw_buf_t *inflated,
                        const char **body, size_t *len, enum MHD_Result *ret)
{
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *prec = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "precision");
    inflate_room_t room = {.a = h->inflight, .held = &r->held, .base = r->held};
    int rc;

    *body = r->body.data ? r->body.data : "";
    *len = r->body.len;
    if (in->format == GW_FMT_LINEPROTO && prec && gw_lp_precision(prec, &in->ns_per_unit)) {
        char p[40];
        *ret = answer_error(c, 400, r->route, "precision: unknown value \"%s\" (use ns, us, ms, s, m or h)",
                            ECHO(p, prec));
        return 1;
    }
    if (!enc || strcasecmp(enc, "gzip") != 0)
        return refuse_gzipped(c, r, *body, *len, ret);
    rc = gunzip(&r->body, inflated, h->cfg->listen.max_body_bytes, &room);
    if (rc == INFLATE_LARGE)
        *ret = answer_error(c, 413, r->route, "body: larger than listen.max_body_bytes (%zu) after gzip inflation",
                            h->cfg->listen.max_body_bytes);
    else if (rc == INFLATE_NO_ROOM)
        *ret = answer_no_room(h, c, r->route, room.why, r->held + inflated->cap);
    else if (rc == INFLATE_CORRUPT)
        *ret = answer_error(c, 400, r->route, "body: invalid gzip data");
    if (rc)
        return 1;
    *body = inflated->data ? inflated->data : "";
    *len = inflated->len;
    return refuse_gzipped(c, r, *body, *len, ret);
}

static size_t count_points(int format, const char *p, size_t n, size_t cap);
static void worker_release(gw_http_t *h);

/* A body refused whole whose first byte says it is of the other format
 * (JSON starts with '{' or '['; line protocol seldom does, and is then
 * read as such): res's message becomes what to do, then why. */
static void hint_format(gw_result_t *res, int format, const char *body, size_t len)
{
    const char *hint = NULL;
    char msg[2 * sizeof(res->err_msg) + 128];
    size_t i = 0;
    int json;

    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len)
        return;
    json = body[i] == '{' || body[i] == '[';
    if (format == GW_FMT_LINEPROTO && json)
        hint = "body looks like JSON: POST it to /v1/points with Content-Type: application/json; as line protocol";
    else if (format == GW_FMT_JSON && !json)
        hint = "body looks like line protocol: POST it to /write or /api/v2/write; as JSON";
    if (!hint)
        return;
    if (res->err_kind == GW_WHERE_BODY)
        snprintf(msg, sizeof(msg), "%s, %s", hint, res->err_msg);
    else
        snprintf(msg, sizeof(msg), "%s, %s %u: %s", hint, res->err_kind == GW_WHERE_LINE ? "line" : "index",
                 res->err_where, res->err_msg);
    i = strlen(msg) < sizeof(res->err_msg) ? strlen(msg) : sizeof(res->err_msg) - 1;
    memcpy(res->err_msg, msg, i); /* cut: answers cut it between characters */
    res->err_msg[i] = '\0';
    res->err_kind = GW_WHERE_BODY;
}

/* Before a body (len bytes, as the pipeline will read it) is parsed: one
 * with more points than listen.max_points is refused (413), and the memory
 * its processing may take, plus extra, is taken from the account
 * (inflight.h; 503 or 413 without it). 0, or 1 once an answer is queued
 * (in *ret). */
static int reserve_work(gw_http_t *h, struct MHD_Connection *c, req_t *r, int format, const char *body,
                        size_t len, size_t extra, enum MHD_Result *ret)
{
    uint32_t max = h->cfg->listen.max_points;
    size_t most, n, cost = gw_inflight_cost(format == GW_FMT_JSON, body, len, &most) + extra;
    int rc;

    if (most > max && (n = count_points(format, body, len, SIZE_MAX)) > max) {
        *ret = answer_error(c, 413, r->route, "body: %zu points, more than listen.max_points (%u)", n, max);
        return 1;
    }
    rc = gw_inflight_take(h->inflight, &r->held, r->held + cost, r->held + cost);
    if (rc != GW_INFLIGHT_OK) {
        *ret = answer_no_room(h, c, r->route, rc, r->held + cost);
        return 1;
    }
    r->release |= cost > WORKER_KEEP_BYTES;
    return 0;
}

/* Run a prepared body (len bytes) through this worker's pipeline, queue
 * what it accepts and answer. */
static enum MHD_Result ingest_body(gw_http_t *h, struct MHD_Connection *c, req_t *r, const gw_ingest_t *in,
                                   const char *body, size_t len, gw_dispatch_t *d)
{
    gw_result_t res;
    gw_pipeline_t *w;
    const char *lines;
    const uint32_t *ends;
    uint32_t npoints;
    size_t nbytes;
    enum MHD_Result ret;
    int rc;

    memset(&res, 0, sizeof(res));
    w = worker(h);
    if (!w)
        return answer_error(c, 500, r->route, "out of memory");
    rc = gw_pipeline_run(w, in, body, len, &res);
    if (rc == GW_PIPELINE_TOO_LARGE)
        return answer_error(c, 413, r->route, "%s", res.err_msg);
    if (rc)
        return answer_error(c, 500, r->route, "out of memory while processing the body");
    lines = gw_pipeline_output(w, &nbytes, &ends, &npoints);
    rc = gw_dispatch_push(d, lines, nbytes, ends, npoints);
    GW_COUNT(requests, 1);
    GW_COUNT(points_received, (uint64_t)res.accepted + res.rejected);
    if (rc) {
        unsigned status;
        json_t *why = gw_dispatch_refusal(d, rc, npoints, nbytes, &status);
        GW_COUNT(points_refused, npoints);
        return answer_json(c, status, why, r->route);
    }
    GW_COUNT(points_accepted, res.accepted);
    GW_COUNT(points_rejected, res.rejected);
    gw_pipeline_count_accepted(w);
    if (!res.has_error)
        return answer(c, 204, "", 0, NULL);
    if (!res.accepted)
        hint_format(&res, in->format, body, len);
    ret = answer_json(c, 400, result_json(&res, res.accepted ? "partial write: " : ""), r->route);
    return ret;
}

/* The request's dispatch (dispatch.h): the database it names (?db= and
 * ?rp= on /write and /v1/points, ?bucket= on /api/v2/write) for its token.
 * 0, or -1 when the token may not write there (why: answer 403). */
static int begin_dispatch(gw_http_t *h, struct MHD_Connection *c, req_t *r, gw_dispatch_t *d, char *why,
                          size_t whylen)
{
    int v2 = r->route == R_WRITE_V2;
    const char *db = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, v2 ? "bucket" : "db");
    const char *rp = v2 ? NULL : MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "rp");

    return gw_dispatch_begin(d, r->access, h->outs, r->tenant, db, rp, why, whylen);
}

/* What scripts see as req: the token's name, the client's address (into
 * client), the database the points go to, the path. */
static const gw_script_req_t *script_req(struct MHD_Connection *c, const req_t *r, const gw_dispatch_t *d,
                                         char client[INET6_ADDRSTRLEN], gw_script_req_t *out)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    const char *path = r->route == R_POINTS     ? "/v1/points"
                       : r->route == R_WRITE_V2 ? "/api/v2/write"
                       : r->route == R_DEBUG    ? "/v1/debug/transform"
                                                : "/write";

    client[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, client, INET6_ADDRSTRLEN);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, client, INET6_ADDRSTRLEN);
    *out = (gw_script_req_t){
        .token = {r->tenant ? r->tenant->name : NULL, r->tenant && r->tenant->name ? strlen(r->tenant->name) : 0},
        .client = {*client ? client : NULL, strlen(client)},
        .db = d->db,
        .rp = d->rp,
        .path = {path, strlen(path)},
    };
    return out;
}

/* POST /v1/points, /write, /api/v2/write once the body is in: inflate it,
 * take the memory its processing needs, ingest it; then give back all but
 * the raw body's memory. */
static enum MHD_Result ingest(gw_http_t *h, struct MHD_Connection *c, req_t *r)
{
    gw_ingest_t in = {.format = r->route == R_POINTS ? GW_FMT_JSON : GW_FMT_LINEPROTO,
                      .ns_per_unit = 1,
                      .now_ns = gw_clock_wall_ns()};
    gw_buf_t inflated = {0};
    size_t body_held = r->held, len;
    const char *body;
    enum MHD_Result ret;
    gw_dispatch_t d;
    gw_script_req_t sreq;
    char why[512], client[INET6_ADDRSTRLEN];

    if (begin_dispatch(h, c, r, &d, why, sizeof(why)))
        return answer_error(c, 403, r->route, "%s", why);
    in.hooks = &d.hooks;
    in.req = script_req(c, r, &d, client, &sreq);
    if (!prepare_body(h, c, r, &in, &inflated, &body, &len, &ret) &&
        !reserve_work(h, c, r, in.format, body, len, 0, &ret))
        ret = ingest_body(h, c, r, &in, body, len, &d);
    gw_dispatch_end(&d);
    gw_buf_free(&inflated);
    gw_inflight_keep(h->inflight, &r->held, body_held);
    if (r->release)
        worker_release(h);
    return ret;
}

/* /health's "connections": what conns.h counts. */
static json_t *connections_json(gw_http_t *h)
{
    gw_conns_stats_t st;

    gw_conns_stats(h->conns, &st);
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "open", (json_int_t)st.open, "limit",
                     (json_int_t)h->cfg->listen.max_connections, "probe_only", (json_int_t)st.probes, "refused",
                     (json_int_t)st.refused, "refused_per_client", (json_int_t)st.refused_client);
}

/* /health's "inflight": the memory of requests in progress (inflight.h). */
static json_t *inflight_json(gw_http_t *h)
{
    gw_inflight_stats_t st;

    gw_inflight_stats(h->inflight, &st);
    return json_pack("{s:I, s:I, s:I, s:I}", "bytes", (json_int_t)st.held, "limit", (json_int_t)st.limit, "peak",
                     (json_int_t)st.peak, "refused", (json_int_t)(st.full + st.too_big));
}

/* /health's "scripts": the failures of script calls (script.h), in total
 * and per series with the last one. */
static json_t *scripts_json(void)
{
    gw_script_stats_t st;
    json_t *o, *series;

    if (gw_script_stats_snapshot(&st))
        return json_null();
    o = json_pack("{s:{s:I, s:I, s:I}}", "total", "errors", (json_int_t)st.total[GW_SCRIPT_FAIL_ERROR], "timeouts",
                  (json_int_t)st.total[GW_SCRIPT_FAIL_TIMEOUT], "memory", (json_int_t)st.total[GW_SCRIPT_FAIL_MEMORY]);
    series = json_object();
    for (size_t i = 0; i < st.n; i++) {
        const gw_script_stat_t *s = &st.series[i];
        char stamp[32], name[512], msg[512];
        gw_clock_utc(stamp, sizeof(stamp), s->last_ns);
        json_object_set_new(series, gw_utf8_echo(name, sizeof(name), s->series, strlen(s->series)),
                            json_pack("{s:I, s:I, s:I, s:{s:s, s:s, s:s}}", "errors",
                                      (json_int_t)s->count[GW_SCRIPT_FAIL_ERROR], "timeouts",
                                      (json_int_t)s->count[GW_SCRIPT_FAIL_TIMEOUT], "memory",
                                      (json_int_t)s->count[GW_SCRIPT_FAIL_MEMORY], "last", "script", s->last_script,
                                      "message", ECHO(msg, s->last_message), "at", stamp));
    }
    json_object_set_new(o, "series", series);
    gw_script_stats_free(&st);
    return o;
}

static enum MHD_Result health(gw_http_t *h, struct MHD_Connection *c)
{
    int ok = GW_GET(healthy) != 0, multi = gw_outputs_count(h->outs) > 1;
    uint64_t held, held_bytes, spool_bytes;
    /* 401/403/404 from InfluxDB: nothing gets through until someone fixes
     * the configuration, so say "fail", not "warn". */
    json_int_t refusing = (json_int_t)GW_GET(influx_refusing);
    json_t *o;

    gw_outputs_held(h->outs, &held, &held_bytes, &spool_bytes);
    if (multi) {
        /* Several outputs: what counts is whether every route has one that
         * takes points (an HA pair with one member down is fine). */
        gw_access_t *a = gw_access_acquire();
        ok = !a || !gw_access_stuck(a, h->outs);
        refusing = 0;
        gw_access_release(a);
    }
    o = json_pack(
        "{s:s, s:s, s:s, s:{s:b, s:I}, s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
        "name", "luagw", "version", GW_VERSION, "status", refusing ? "fail" : ok ? "pass" : "warn",
        "influx", "reachable", ok, "last_status", (json_int_t)GW_GET(last_status),
        "buffer", "points", (json_int_t)held, "limit",
        (json_int_t)h->cfg->monitoring.buffer_limit,
        "points", "received", (json_int_t)GW_GET(points_received), "accepted",
        (json_int_t)GW_GET(points_accepted), "rejected", (json_int_t)GW_GET(points_rejected),
        "refused", (json_int_t)GW_GET(points_refused), "written", (json_int_t)GW_GET(points_written),
        "dropped", (json_int_t)GW_GET(points_dropped));
    if (!o)
        return answer(c, 500, nomem_json, sizeof(nomem_json) - 1, "application/json");
    /* Delivery (issue 4): refusals, overflow, spool, dead letters. */
    json_object_set_new(json_object_get(o, "influx"), "refusing", json_integer(refusing));
    json_object_set_new(json_object_get(o, "points"), "overflowed",
                        json_integer((json_int_t)GW_GET(points_overflowed)));
    json_object_set_new(json_object_get(o, "buffer"), "bytes", json_integer((json_int_t)held_bytes));
    json_object_set_new(json_object_get(o, "buffer"), "limit_bytes",
                        json_integer((json_int_t)(*h->cfg->spool.dir ? h->cfg->spool.max_bytes
                                                                     : h->cfg->monitoring.buffer_limit_bytes)));
    json_object_set_new(json_object_get(o, "buffer"), "spool", gw_outputs_spool_json(h->outs));
    json_object_set_new(o, "outputs", gw_outputs_json(h->outs));
    json_object_set_new(o, "dead_letter", gw_deadletter_json());
    json_object_set_new(o, "stopping", json_boolean(atomic_load(&h->leaving) || atomic_load(&h->draining)));
    json_object_set_new(o, "connections", connections_json(h));
    json_object_set_new(o, "inflight", inflight_json(h));
    json_object_set_new(o, "scripts", scripts_json());
    /* What is wrong, in words; any of it makes the answer 503. "ready":
     * none of it but InfluxDB's, so this instance still takes points (what
     * a load balancer in front of spooling instances checks). */
    {
        json_t *problems = json_array();
        size_t upstream;
        char text[160];
        if (refusing) {
            snprintf(text, sizeof(text), "influxdb refuses writes (HTTP %lld): check credentials, database or bucket",
                     (long long)refusing);
            json_array_append_new(problems, json_string(text));
        } else if (!ok && multi) {
            json_array_append_new(problems, json_string("some route has no output able to take points: see outputs"));
        } else if (!ok) {
            snprintf(text, sizeof(text), "influxdb unreachable or failing (last status %lld), retrying",
                     (long long)GW_GET(last_status));
            json_array_append_new(problems, json_string(text));
        }
        upstream = json_array_size(problems);
        if (!multi && gw_outputs_state(h->outs, 0) == GW_OUT_FULL && spool_bytes)
            json_array_append_new(problems, json_string("spool full (95% of spool.max_bytes): ingest answers 503"));
        else if (!multi && gw_outputs_state(h->outs, 0) == GW_OUT_FULL)
            json_array_append_new(problems, json_string("buffer full (monitoring.buffer_limit or buffer_limit_bytes): ingest answers 503"));
        if (atomic_load(&h->leaving) || atomic_load(&h->draining))
            json_array_append_new(problems, json_string("draining: this instance is stopping, send elsewhere"));
        if (json_array_size(problems))
            json_object_set_new(o, "status", json_string("fail"));
        json_object_set_new(o, "ready", json_boolean(json_array_size(problems) == upstream));
        json_object_set_new(o, "problems", problems);
        return answer_json(c, json_array_size(problems) ? 503 : 200, o, R_HEALTH);
    }
}

static const gw_tenant_t *authorized(const gw_access_t *acc, struct MHD_Connection *c, enum route route);

/* Does the request carry a token of the set in force (or is there none)? */
static int let_in(struct MHD_Connection *c, enum route route)
{
    gw_access_t *a = gw_access_acquire();
    int ok = !gw_access_tokens(a) || authorized(a, c, route) != NULL;

    gw_access_release(a);
    return ok;
}

/* GET /metrics: Prometheus text format (prom.c). */
static enum MHD_Result metrics(gw_http_t *h, struct MHD_Connection *c)
{
    gw_buf_t b = {0};
    gw_conns_stats_t st;
    gw_inflight_stats_t in;
    enum MHD_Result rc;

    gw_conns_stats(h->conns, &st);
    gw_inflight_stats(h->inflight, &in);
    if (gw_prom_render(&b, h->outs, &st, &in)) {
        gw_buf_free(&b);
        return answer_error(c, 500, R_METRICS, "out of memory");
    }
    rc = answer(c, 200, b.data, b.len, "text/plain; version=0.0.4; charset=utf-8");
    gw_buf_free(&b);
    return rc;
}

/* Is the media type (before any ';' parameters) application/json? */
static int is_json_type(const char *ct)
{
    size_t n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Points body (n bytes) can hold, counted up to cap + 1: the lines of line
 * protocol that are neither blank nor comments, or the elements of a JSON
 * array (1 for a JSON object). */
static size_t count_points(int format, const char *p, size_t n, size_t cap)
{
    const char *e = p + n;
    size_t k = 0;
    int depth = 0;

    if (format != GW_FMT_JSON) {
        while (p < e && k <= cap) {
            const char *nl = memchr(p, '\n', (size_t)(e - p)), *end = nl ? nl : e;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++;
            k += p < end && *p != '#';
            if (!nl)
                break;
            p = nl + 1;
        }
        return k;
    }
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p == e || *p != '[')
        return 1;
    /* The elements of the array: one where the first begins, one more at
     * each comma of its level. */
    for (p++; p < e && depth >= 0 && k <= cap; p++) {
        if (k == 0 && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != ']')
            k = 1;
        if (*p == '"') {
            for (p++; p < e && *p != '"'; p++)
                p += *p == '\\' && p + 1 < e;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if (*p == ']' || *p == '}') {
            depth--;
        } else if (*p == ',' && depth == 0) {
            k++;
        }
    }
    return k;
}

/* Give back this worker's buffers after an oversized request: its pipeline
 * is made again at its next request, and the C heap returns what it holds
 * free to the system. */
static void worker_release(gw_http_t *h)
{
    gw_pipeline_t *w = pthread_getspecific(h->key);

    if (w && pthread_setspecific(h->key, NULL) == 0)
        gw_pipeline_destroy(w);
    malloc_trim(0);
}

/* POST /v1/debug/transform: a body as the ingest endpoints take it (JSON
 * when the Content-Type is application/json, else line protocol with
 * ?precision=), run through this worker's scripts. Answers 200 with what
 * became of each point (docs/scripts.md); nothing is queued. At most
 * DEBUG_MAX_POINTS points (413 beyond). */
static enum MHD_Result debug_transform(gw_http_t *h, struct MHD_Connection *c, req_t *r)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    gw_ingest_t in = {.format = ct && is_json_type(ct) ? GW_FMT_JSON : GW_FMT_LINEPROTO,
                      .ns_per_unit = 1,
                      .now_ns = gw_clock_wall_ns()};
    gw_buf_t inflated = {0}, json = {0};
    size_t body_held = r->held, len, n;
    const char *body;
    gw_pipeline_t *w;
    enum MHD_Result ret;
    int rc;
    gw_dispatch_t d;
    gw_script_req_t sreq;
    char why[512], client[INET6_ADDRSTRLEN];

    /* The request as ingest sees it: its token (and its tags), its
     * database, its routes, req. */
    if (begin_dispatch(h, c, r, &d, why, sizeof(why)))
        return answer_error(c, 403, r->route, "%s", why);
    in.req = script_req(c, r, &d, client, &sreq);
    in.hooks = &d.hooks;
    if (prepare_body(h, c, r, &in, &inflated, &body, &len, &ret))
        goto done;
    n = count_points(in.format, body, len, DEBUG_MAX_POINTS);
    if (n > DEBUG_MAX_POINTS) {
        ret = answer_error(c, 413, r->route, "body: more than %d points, the most /v1/debug/transform takes",
                           DEBUG_MAX_POINTS);
        goto done;
    }
    if (reserve_work(h, c, r, in.format, body, len, n * DEBUG_POINT_COST, &ret))
        goto done;
    w = worker(h);
    rc = w ? gw_pipeline_debug(w, &in, body, len, DEBUG_MAX_POINTS, &json) : -ENOMEM;
    if (rc == GW_PIPELINE_TOO_MANY)
        ret = answer_error(c, 413, r->route,
                           "body: the scripts made more than %d points of it, the most /v1/debug/transform answers",
                           DEBUG_MAX_POINTS);
    else if (rc)
        ret = answer_error(c, 500, r->route, "out of memory while processing the body");
    else
        ret = answer(c, 200, json.data ? json.data : "{}", json.data ? json.len : 2, "application/json");
done:
    gw_dispatch_end(&d);
    gw_buf_free(&json);
    gw_buf_free(&inflated);
    gw_inflight_keep(h->inflight, &r->held, body_held);
    if (r->release)
        worker_release(h);
    return ret;
}

/* /api/v2/query (Flux): not passed through (InfluxQL's /query is), so 404,
 * saying where the points are read (the configured InfluxDB). */
static enum MHD_Result answer_read_elsewhere(gw_http_t *h, struct MHD_Connection *c, const char *url)
{
    const gw_config_t *cfg = h->cfg;
    const char *host = cfg->monitoring.host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    char e[200], where[600];

    if (cfg->monitoring.version == 2)
        snprintf(where, sizeof(where), "organization \"%s\", bucket \"%s\"", cfg->monitoring.organization,
                 cfg->monitoring.bucket);
    else
        snprintf(where, sizeof(where), "database \"%s\"", cfg->monitoring.database);
    return answer_error(c, 404, R_READ,
                        "path: %s: luagw passes InfluxQL queries through (GET or POST /query), not Flux; "
                        "send Flux to InfluxDB at %s://%s%s%s:%d (%s)",
                        ECHO(e, url), cfg->monitoring.use_ssl ? "https" : "http", v6 ? "[" : "", host,
                        v6 ? "]" : "", cfg->monitoring.port, where);
}

/* GET /status and /status.json (status.h). Without a token when tokens are
 * set, the page answers 401 with a Basic challenge, so that a browser asks
 * for one (the token as the password); ?token= works too. */
static enum MHD_Result status_page(gw_http_t *h, struct MHD_Connection *c, enum route route)
{
    static const char ask[] = "401: this page needs a token: open /status?token=<token>, or give it as the "
                              "password when the browser asks\n";
    struct MHD_Response *r;
    char *json;
    enum MHD_Result rc;

    if (!let_in(c, route)) {
        if (route == R_STATUS_JSON)
            return answer_error(c, 401, route, "unauthorized: send Authorization: Bearer <token> (or ?token=)");
        if (!(r = MHD_create_response_from_buffer(sizeof(ask) - 1, (void *)ask, MHD_RESPMEM_PERSISTENT)))
            return MHD_NO;
        MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"luagw status\", charset=\"UTF-8\"");
        return queue(c, 401, r, "text/plain; charset=utf-8");
    }
    if (route == R_STATUS) {
        r = MHD_create_response_from_buffer(gw_status_html_len, (void *)gw_status_html, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "connect-src 'self'; img-src 'self'");
        return queue(c, 200, r, "text/html; charset=utf-8");
    }
    if (!(json = gw_status_json(h->cfg, h->outs)))
        return answer(c, 500, nomem_json, sizeof(nomem_json) - 1, "application/json");
    rc = answer(c, 200, json, strlen(json), "application/json");
    free(json);
    return rc;
}

/* The route of url, and the methods it allows; R_NONE when unknown. */
static enum route route_of(const char *url, const char **allowed)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(url, routes[i].path) == 0) {
            *allowed = routes[i].methods;
            return routes[i].route;
        }
    return R_NONE;
}

/* A POST to an ingest endpoint or the debug transform: check what the
 * headers tell before reading a byte of the body, then set up *con_cls. */
static enum MHD_Result begin_body(gw_http_t *h, struct MHD_Connection *c, enum route route, void **con_cls)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    size_t n = cl ? strtoull(cl, NULL, 10) : 0, limit = h->cfg->listen.max_body_bytes;
    char e[100];
    req_t *r;
    int room;

    if (atomic_load(&h->draining))
        return answer_error(c, 503, route, "shutting down: nothing of this body was accepted");
    if (route == R_POINTS && ct && !is_json_type(ct))
        return answer_error(c, 415, route, "Content-Type: %s is not supported here, send application/json",
                            ECHO(e, ct));
    if (enc && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "identity") != 0)
        return answer_error(c, 415, route, "Content-Encoding: %s is not supported (use gzip)", ECHO(e, enc));
    /* Far too large: answer before reading (the connection is closed).
     * Somewhat too large: read and discard it first, so that a client
     * that sends its whole body before reading sees the 413. */
    if (n > limit && n - limit > DRAIN_MAX)
        return answer_error(c, 413, route, "body: %zu bytes, larger than listen.max_body_bytes (%zu)", n, limit);
    /* No room for all it announces (inflight.h): a client that waits for
     * 100 Continue is answered now and sends nothing; any other is read to
     * the end first, without keeping a byte, so that it sees the answer. */
    room = n && n <= limit ? gw_inflight_fits(h->inflight, n) : GW_INFLIGHT_OK;
    if (room != GW_INFLIGHT_OK && expect && !strcasecmp(expect, "100-continue"))
        return answer_no_room(h, c, route, room, n);
    r = calloc(1, sizeof(*r));
    if (!r)
        return MHD_NO;
    r->route = route;
    r->expect = cl ? n : limit;
    r->too_large = n > limit;
    r->no_room = room;
    *con_cls = r;
    return MHD_YES;
}

/* Ingest and the debug transform need a token when tokens are set (/ping,
 * /health and /metrics stay open for probes and scrapers); a request
 * holds the routes and tokens in force (dispatch.h) until it ends. */
static enum MHD_Result begin_post(gw_http_t *h, struct MHD_Connection *c, enum route route, void **con_cls)
{
    gw_access_t *access = gw_access_acquire();
    const gw_tenant_t *tenant = NULL;
    enum MHD_Result ret;

    if (!access)
        return answer_error(c, 503, route, "shutting down: nothing of this body was accepted");
    if (gw_access_tokens(access) && !(tenant = authorized(access, c, route))) {
        gw_access_release(access);
        return answer_error(c, 401, route,
                            "unauthorized: send Authorization: Bearer <token> (or Token, Basic, ?u=&p= on /write and /query)");
    }
    ret = begin_body(h, c, route, con_cls);
    if (*con_cls) {
        ((req_t *)*con_cls)->access = access;
        ((req_t *)*con_cls)->tenant = tenant;
    } else {
        gw_access_release(access);
    }
    return ret;
}

/* Let go of what a request body holds: its buffer, and its room. */
static void drop_body(gw_http_t *h, req_t *r)
{
    gw_buf_free(&r->body);
    gw_inflight_keep(h->inflight, &r->held, 0);
}

/* A piece of a request body (n bytes at data) has arrived: kept, with room
 * taken for it first (inflight.h); or, once the body is refused (too large,
 * or no room: answered when all of it is in), read and dropped. A body
 * still coming past max_body_bytes by DRAIN_MAX (one without a
 * Content-Length) is not read any further: the connection is closed. */
static enum MHD_Result on_upload(gw_http_t *h, req_t *r, const char *data, size_t n)
{
    size_t limit = h->cfg->listen.max_body_bytes;

    r->received += n;
    if (!r->too_large && r->received > limit) {
        r->too_large = 1;
        drop_body(h, r);
    }
    if (r->too_large || r->no_room)
        return r->received > limit && r->received - limit > DRAIN_MAX ? MHD_NO : MHD_YES;
    r->no_room = gw_inflight_take(h->inflight, &r->held, r->body.len + n, r->expect);
    if (r->no_room) {
        drop_body(h, r);
        return MHD_YES;
    }
    return gw_buf_append(&r->body, data, n) ? MHD_NO : MHD_YES;
}

/* GET or POST /query (query.h): the first call starts it and suspends the
 * connection; the call after the resume answers with what InfluxDB sends. */
static enum MHD_Result query(gw_http_t *h, struct MHD_Connection *c, req_t *r, int post)
{
    struct MHD_Response *resp;
    const char *ctype;
    unsigned status;
    char err[600];
    int rc;

    if (!post && !let_in(c, R_QUERY))
        return answer_error(c, 401, R_QUERY, "unauthorized: send Authorization: Bearer <token> (or Token, Basic, ?u=&p=)");
    if (!r->query) {
        /* Tokens limited to some databases: hand the request's token here
         * (gw_target_may_read); today every valid token reads every one. */
        /* Reads go to the first output (outputs:, or monitoring:). */
        rc = gw_query_start(gw_outputs_conf(h->outs, 0)->cfg, c, NULL, post, r->body.data, r->body.len, &r->query, err,
                            sizeof(err));
        drop_body(h, r); /* copied, or not needed */
        return rc ? answer_error(c, (unsigned)rc, R_QUERY, "%s", err) : MHD_YES;
    }
    resp = gw_query_response(r->query, &status, &ctype, err, sizeof(err));
    if (resp)
        return queue(c, status, resp, ctype);
    return status ? answer_error(c, status, R_QUERY, "%s", err) : MHD_YES;
}

/* The first call of a request: answer what needs no body, or begin_post. */
static enum MHD_Result begin(gw_http_t *h, struct MHD_Connection *c, const char *url, const char *method,
                             void **con_cls)
{
    const char *allowed = NULL;
    enum route route = route_of(url, &allowed);
    int probe = route == R_PING || route == R_HEALTH || route == R_METRICS;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* Answered once the request is read, as probes are. */
    int page = route == R_STATUS || route == R_STATUS_JSON || (route == R_QUERY && get);
    char e[200];

    if (probe_only(c)) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            gw_conns_begun(h->conns, ci->connect_fd); /* not idle: keep its place */
        if (!(probe && get))
            return answer_error(c, 503, route,
                                "too many connections (listen.max_connections = %d): this one may only ask "
                                "/ping, /health or /metrics",
                                h->cfg->listen.max_connections);
    }
    if (route == R_NONE)
        return answer_error(c, 404, R_NONE, "path: %s not found", ECHO(e, url));
    if (route == R_READ)
        return answer_read_elsewhere(h, c, url);
    if (probe || page ? !get : strcmp(method, "POST") != 0)
        return answer_405(c, route, method, url, allowed);
    if (!probe && !page)
        return begin_post(h, c, route, con_cls);
    /* Probes are answered once the request is read: libmicrohttpd closes a
     * connection answered earlier, and scrapers and load balancers keep
     * theirs open. */
    if (!(*con_cls = calloc(1, sizeof(req_t))))
        return MHD_NO;
    ((req_t *)*con_cls)->route = route;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    gw_http_t *h = cls;
    req_t *r = *con_cls;
    size_t n;

    if (!r)
        return begin(h, c, url, method, con_cls);
    if (*upload_size) {
        if (r->route == R_PING || r->route == R_HEALTH || r->route == R_METRICS || r->route == R_STATUS ||
            r->route == R_STATUS_JSON || (r->route == R_QUERY && strcmp(method, "POST") != 0)) {
            *upload_size = 0; /* a body sent with GET: read and ignored */
            return MHD_YES;
        }
        n = *upload_size;
        *upload_size = 0;
        return on_upload(h, r, upload, n);
    }
    if (r->too_large)
        return answer_error(c, 413, r->route, "body: larger than listen.max_body_bytes (%zu)",
                            h->cfg->listen.max_body_bytes);
    if (r->no_room)
        return answer_no_room(h, c, r->route, r->no_room, r->received);
    switch (r->route) {
    case R_PING:
        return answer(c, 204, "", 0, NULL);
    case R_HEALTH:
        return health(h, c);
    case R_METRICS:
        return metrics(h, c);
    case R_DEBUG:
        return debug_transform(h, c, r);
    case R_STATUS:
    case R_STATUS_JSON:
        return status_page(h, c, r->route);
    case R_QUERY:
        return query(h, c, r, strcmp(method, "POST") == 0);
    default:
        return ingest(h, c, r);
    }
}

/* A request has ended, answered or not (the client gone, a timeout, the
 * server stopping): all it holds goes. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_t *r = *con_cls;
    if (!r)
        return;
    drop_body(cls, r);
    gw_access_release(r->access);
    gw_query_end(r->query);
    free(r);
    *con_cls = NULL;
    if (gw_inflight_ebbed(((gw_http_t *)cls)->inflight))
        malloc_trim(0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    {
        /* Per-connection trouble (a client resetting, bad requests) repeats. */
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
        gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http", "detail=\"%s\"", msg);
    }
}

/* libmicrohttpd's connection notifications: the account of conns.c. A
 * connection admitted for probes only is marked in its socket context. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    gw_http_t *h = cls;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

    if (!ci)
        return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = gw_conns_started(h->conns, ci->connect_fd) == GW_CONN_PROBE ? &probe_mark : NULL;
    else
        gw_conns_closed(h->conns, ci->connect_fd);
}

/* A connection refused at accept, in the log (at most one line a second). */
static void log_refused(const struct sockaddr_storage *addr, const char *why)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
    char ip[INET6_ADDRSTRLEN] = "?";

    if (addr->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip, sizeof(ip));
    else if (addr->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, ip, sizeof(ip));
    gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http: connection refused", "client=%s limit=\"%s\"", ip, why);
}

/* Admit socket fd (conns.h) and hand it to the next worker, or close it. */
static void hand_off(gw_http_t *h, int fd, const struct sockaddr_storage *addr, socklen_t alen, unsigned *next)
{
    const char *why;

    if (gw_conns_admit(h->conns, fd, (const struct sockaddr *)addr, gw_clock_mono(), &why) == GW_CONN_REFUSED) {
        log_refused(addr, why);
        close(fd);
        return;
    }
    /* On failure libmicrohttpd closes fd itself, without a notification. */
    if (MHD_add_connection(h->daemons[(*next)++ % (unsigned)h->ndaemons], fd, (const struct sockaddr *)addr,
                           alen) != MHD_YES)
        gw_conns_closed(h->conns, fd);
}

/* The acceptor: one listening socket, connections admitted (conns.h) and
 * handed to the worker daemons in turn. libmicrohttpd's own thread pool
 * lets an idle worker accept a burst of connections at once, so a client's
 * whole connection pool could land on one worker and leave the other cores
 * idle. Between accepts it closes the probe-only connections whose time is
 * up. */
static void *acceptor(void *arg)
{
    gw_http_t *h = arg;
    unsigned next = 0;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = h->listen_fd, .events = POLLIN},
                                {.fd = h->wake[0], .events = POLLIN}};
        struct sockaddr_storage addr;
        socklen_t alen = sizeof(addr);
        double wait = gw_conns_expire(h->conns, gw_clock_mono());
        int fd;

        if (poll(pfd, 2, wait < 0 ? -1 : (int)(wait * 1000) + 1) < 0) {
            if (errno == EINTR)
                continue;
            gw_log_error("http: poll failed", "error=\"%s\"", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL; /* gw_http_stop */
        if (!pfd[0].revents)
            continue;
        fd = accept4(h->listen_fd, (struct sockaddr *)&addr, &alen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
                gw_log_limited(&lim, 5.0, GW_LOG_WARN, "http: cannot accept", "error=\"%s\"", strerror(errno));
                poll(NULL, 0, 100); /* let connections close before trying again */
            }
            continue;
        }
        hand_off(h, fd, &addr, alen, &next);
    }
}

/* Bind and listen on cfg->listen. Returns the socket or -1 with err set. */
static int open_listener(const gw_config_t *cfg, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char port[16];
    int fd = -1, one = 1, grc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->listen.port);
    grc = getaddrinfo(cfg->listen.address, port, &hints, &ai);
    if (grc) {
        snprintf(err, errlen, "listen.address %s: %s", cfg->listen.address, gai_strerror(grc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* SO_REUSEADDR only (not SO_REUSEPORT): a second luagw on the same port
     * must fail loudly, not share the traffic. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->listen.address, cfg->listen.port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* The whole of a PEM file, NUL-terminated (libmicrohttpd takes PEM text).
 * NULL with the reason in err. Free with free(). */
static char *read_pem(const char *path, const char *key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    gw_buf_t b = {0};
    size_t n;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open %s: %s", key, path, strerror(errno));
        return NULL;
    }
    do {
        if (gw_buf_reserve(&b, 16384))
            break;
        n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
    } while (n > 0 && b.len < (1 << 20));
    fclose(f);
    if (!b.len || gw_buf_putc(&b, '\0')) {
        snprintf(err, errlen, "%s: %s is empty or unreadable", key, path);
        gw_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---------------------------------------------------------------- access */

static int b64val(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 s into out (at most outlen-1 bytes, NUL-terminated).
 * Length, or -1. */
static long b64decode(const char *s, char *out, size_t outlen)
{
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;

    for (; *s && *s != '='; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (long)n;
}

/* listen.tokens: does the request carry one? Authorization: Bearer T or
 * Token T (InfluxDB 2.x clients), Basic with T as the password (1.x clients
 * given a user and password), ?p=T (1.x query parameters, /write and
 * /query), or ?token=T (the status page, which is opened by a link): the
 * token it names, or NULL. */
static const gw_tenant_t *authorized(const gw_access_t *acc, struct MHD_Connection *c, enum route route)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *p;

    if (a) {
        while (*a == ' ')
            a++;
        if (!strncasecmp(a, "Bearer ", 7) || !strncasecmp(a, "Token ", 6)) {
            a += a[0] == 'B' || a[0] == 'b' ? 7 : 6;
            while (*a == ' ')
                a++;
            return gw_access_find(acc, a, strlen(a));
        }
        if (!strncasecmp(a, "Basic ", 6)) {
            char up[1024], *colon;
            long n = b64decode(a + 6, up, sizeof(up));
            if (n < 0 || !(colon = memchr(up, ':', (size_t)n)))
                return NULL;
            return gw_access_find(acc, colon + 1, (size_t)(up + n - (colon + 1)));
        }
        return NULL;
    }
    if (route == R_WRITE_V1 || route == R_QUERY)
        p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "p");
    else if (route == R_STATUS || route == R_STATUS_JSON)
        p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    else
        p = NULL;
    return p ? gw_access_find(acc, p, strlen(p)) : NULL;
}

/* Who may connect (conns.h): listen.max_connections and the keys beside
 * it, for sockets below the process's limit of open files. */
static gw_conns_limits_t conns_limits(const gw_config_t *cfg)
{
    struct rlimit rl = {0, 0};
    gw_conns_limits_t lim = {.max = cfg->listen.max_connections,
                             .per_client = cfg->conns.per_client,
                             .probes = cfg->conns.probes,
                             .probe_seconds = PROBE_SECONDS,
                             .max_fd = 1 << 20};

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)lim.max_fd)
        lim.max_fd = (int)rl.rlim_cur;
    return lim;
}

gw_http_t *gw_http_start(const gw_config_t *cfg, gw_outputs_t *outs, char *err, size_t errlen)
{
    gw_http_t *h = calloc(1, sizeof(*h));
    /* Each daemon is one worker thread with its own epoll; connections come
     * only from the acceptor (MHD_add_connection needs the ITC). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL}};
    gw_conns_limits_t lim = conns_limits(cfg);

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->outs = outs;
    h->listen_fd = h->wake[0] = h->wake[1] = -1;
    /* Lines are encoded once for every output: unsigned integers as
     * integers when any output is a 1.x, which has none. */
    h->lp_flags = 0;
    for (int i = 0; i < gw_outputs_count(outs); i++)
        if (gw_outputs_conf(outs, i)->cfg->monitoring.version == 1)
            h->lp_flags = GW_LP_NO_UINT;
    if (pthread_key_create(&h->key, worker_free)) {
        snprintf(err, errlen, "pthread_key_create failed");
        free(h);
        return NULL;
    }
    h->key_ok = 1;
    h->daemons = calloc((size_t)cfg->listen.threads, sizeof(*h->daemons));
    if (!h->daemons) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->access.tls_cert[0]) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "listen.tls_cert: this libmicrohttpd was built without TLS");
            goto fail;
        }
        if (!(h->tls_cert = read_pem(cfg->access.tls_cert, "listen.tls_cert", err, errlen)) ||
            !(h->tls_key = read_pem(cfg->access.tls_key, "listen.tls_key", err, errlen)))
            goto fail;
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
    }
    if (!(h->conns = gw_conns_create(&lim)) || !(h->inflight = gw_inflight_create(cfg->max_inflight_bytes))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES);
    h->listen_fd = open_listener(cfg, err, errlen);
    if (h->listen_fd < 0)
        goto fail;
    for (int i = 0; i < cfg->listen.threads; i++) {
        h->daemons[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, h,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, /* first, so it sees every message */
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->listen.connection_timeout,
            /* Bounds the request line and headers; a bigger buffer also
             * hands us bodies in fewer pieces. */
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->listen.max_header_bytes,
            /* Never reached: the acceptor admits fewer (conns.h). */
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw_conns_most(&lim) + 64,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_ARRAY, tls, /* listen.tls_*: key and certificate, or nothing */
            MHD_OPTION_END);
        if (!h->daemons[i]) {
            snprintf(err, errlen, "cannot start HTTP worker %d: %s", i,
                     errno ? strerror(errno) : "libmicrohttpd failed");
            goto fail;
        }
        h->ndaemons++;
    }
    if (pipe2(h->wake, O_CLOEXEC)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&h->acceptor, NULL, acceptor, h)) {
        snprintf(err, errlen, "cannot start the acceptor thread");
        goto fail;
    }
    h->acceptor_ok = 1;
    return h;
fail:
    gw_http_stop(h);
    return NULL;
}

void gw_http_leave(gw_http_t *h)
{
    if (h)
        atomic_store(&h->leaving, 1);
}

void gw_http_drain(gw_http_t *h)
{
    if (h)
        atomic_store(&h->draining, 1);
}

void gw_http_stop(gw_http_t *h)
{
    if (!h)
        return;
    if (h->acceptor_ok) {
        /* Wake the acceptor; it exits before any daemon goes away. */
        if (write(h->wake[1], "x", 1) < 0)
            gw_log_error("http: cannot wake the acceptor", "error=\"%s\"", strerror(errno));
        pthread_join(h->acceptor, NULL);
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    gw_query_stop_all(); /* a connection suspended for a query is resumed first */
    for (int i = 0; i < h->ndaemons; i++)
        MHD_stop_daemon(h->daemons[i]);
    if (h->inflight) {
        gw_inflight_stats_t st;
        gw_inflight_stats(h->inflight, &st);
        if (st.held) /* every request gives back what it took: a bug otherwise */
            gw_log_error("http: memory of requests still held at stop", "bytes=%llu", (unsigned long long)st.held);
    }
    gw_inflight_destroy(h->inflight);
    gw_conns_destroy(h->conns);
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    free(h->daemons);
    if (h->key_ok)
        pthread_key_delete(h->key);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}
