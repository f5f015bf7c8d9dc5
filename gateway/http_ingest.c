/* http_ingest.c — a request body's way in (http_int.h): ?precision= and
 * gzip (libdeflate), the memory its processing may take (inflight.h),
 * this worker thread's pipeline (pipeline.h: parse, limits, scripts,
 * declarations, encode) with the request's dispatch (dispatch.h: its
 * token, database and routes; req for scripts), the outputs' buffer, and
 * the answer. The debug transform takes the same steps with the pipeline
 * traced, and queues nothing. */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libdeflate.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "clock.h"
#include "dispatch.h"
#include "lineproto.h"
#include "metrics.h"
#include "script.h"

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

void http_worker_free(void *p)
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

/* Is the media type (before any ';' parameters) application/json? */
int http_is_json_type(const char *ct)
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

/* A body that starts with gzip's magic bytes and was not inflated (or was,
 * and is gzip again) is no line protocol (the second byte is no UTF-8 a
 * series may start with) and no JSON: 415 saying what to send. 0, or 1
 * once the answer is queued (in *ret). */
static int refuse_gzipped(struct MHD_Connection *c, const req_t *r, const char *body, size_t len,
                          enum MHD_Result *ret)
{
    if (len < 2 || (unsigned char)body[0] != 0x1f || (unsigned char)body[1] != 0x8b)
        return 0;
    *ret = http_answer_error(c, 415, r->route,
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
        *ret = http_answer_error(c, 400, r->route, "precision: unknown value \"%s\" (use ns, us, ms, s, m or h)",
                                 ECHO(p, prec));
        return 1;
    }
    if (!enc || strcasecmp(enc, "gzip") != 0)
        return refuse_gzipped(c, r, *body, *len, ret);
    rc = gunzip(&r->body, inflated, h->cfg->listen.max_body_bytes, &room);
    if (rc == INFLATE_LARGE)
        *ret = http_answer_error(c, 413, r->route, "body: larger than listen.max_body_bytes (%zu) after gzip inflation",
                                 h->cfg->listen.max_body_bytes);
    else if (rc == INFLATE_NO_ROOM)
        *ret = http_answer_no_room(h, c, r->route, room.why, r->held + inflated->cap);
    else if (rc == INFLATE_CORRUPT)
        *ret = http_answer_error(c, 400, r->route, "body: invalid gzip data");
    if (rc)
        return 1;
    *body = inflated->data ? inflated->data : "";
    *len = inflated->len;
    return refuse_gzipped(c, r, *body, *len, ret);
}

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
        *ret = http_answer_error(c, 413, r->route, "body: %zu points, more than listen.max_points (%u)", n, max);
        return 1;
    }
    rc = gw_inflight_take(h->inflight, &r->held, r->held + cost, r->held + cost);
    if (rc != GW_INFLIGHT_OK) {
        *ret = http_answer_no_room(h, c, r->route, rc, r->held + cost);
        return 1;
    }
    r->release |= cost > WORKER_KEEP_BYTES;
    return 0;
}

/* A push the outputs' buffer refused (dispatch.h): 503, 413 or 500 with
 * {"error", "outputs_full"}. */
static enum MHD_Result answer_refusal(struct MHD_Connection *c, const req_t *r, const gw_dispatch_t *d, int rc,
                                      uint32_t npoints, size_t nbytes)
{
    gw_buf_t msg = {0}, b;
    gw_jsonw_t w;
    unsigned status = gw_dispatch_refusal(d, rc, npoints, nbytes, &msg);
    enum MHD_Result ret;

    http_json_begin(&w, &b);
    gw_jsonw_member_string(&w, "error", msg.data ? msg.data : "");
    gw_dispatch_put_full(d, rc, &w);
    ret = http_answer_json(c, status, &w, r->route, msg.data ? msg.data : "");
    gw_buf_free(&msg);
    return ret;
}

/* Run a prepared body (len bytes) through this worker's pipeline, hand
 * what it accepts to the outputs (d) and answer. */
static enum MHD_Result ingest_body(gw_http_t *h, struct MHD_Connection *c, req_t *r, const gw_ingest_t *in,
                                   const char *body, size_t len, gw_dispatch_t *d)
{
    gw_result_t res;
    gw_pipeline_t *w;
    const char *lines;
    const uint32_t *ends;
    uint32_t npoints;
    size_t nbytes;
    int rc;

    memset(&res, 0, sizeof(res));
    w = worker(h);
    if (!w)
        return http_answer_error(c, 500, r->route, "out of memory");
    rc = gw_pipeline_run(w, in, body, len, &res);
    if (rc == GW_PIPELINE_TOO_LARGE)
        return http_answer_error(c, 413, r->route, "%s", res.err_msg);
    if (rc)
        return http_answer_error(c, 500, r->route, "out of memory while processing the body");
    lines = gw_pipeline_output(w, &nbytes, &ends, &npoints);
    rc = gw_dispatch_push(d, lines, nbytes, ends, npoints);
    GW_COUNT(requests, 1);
    GW_COUNT(points_received, (uint64_t)res.accepted + res.rejected);
    if (rc) {
        GW_COUNT(points_refused, npoints);
        return answer_refusal(c, r, d, rc, npoints, nbytes);
    }
    GW_COUNT(points_accepted, res.accepted);
    GW_COUNT(points_rejected, res.rejected);
    gw_pipeline_count_accepted(w);
    if (!res.has_error)
        return http_answer(c, 204, "", 0, NULL);
    if (!res.accepted)
        hint_format(&res, in->format, body, len);
    return http_answer_result(c, r->route, &res);
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

/* What a request holds while its body is processed: its dispatch, and
 * what its scripts see as req. */
typedef struct {
    gw_dispatch_t d;
    gw_script_req_t sreq;
    char client[INET6_ADDRSTRLEN];
    char why[512];
} request_t;

/* Begin the request's dispatch (dispatch.h) for its token and the database
 * it names (?db= and ?rp= on /write and /v1/points, ?bucket= on
 * /api/v2/write), and give in its hooks and req. 0, or -1 when the token
 * may not write there (rq->why: answer 403). */
static int begin_request(gw_http_t *h, struct MHD_Connection *c, req_t *r, gw_ingest_t *in, request_t *rq)
{
    int v2 = r->route == R_WRITE_V2;
    const char *db = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, v2 ? "bucket" : "db");
    const char *rp = v2 ? NULL : MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "rp");

    if (gw_dispatch_begin(&rq->d, r->access, h->outs, r->tenant, db, rp, rq->why, sizeof(rq->why)))
        return -1;
    in->hooks = &rq->d.hooks;
    in->req = script_req(c, r, &rq->d, rq->client, &rq->sreq);
    return 0;
}

/* Let go of what a request took: its dispatch, the inflated body, all but
 * the raw body's memory, and the worker's buffers after a large one. */
static void end_request(gw_http_t *h, req_t *r, request_t *rq, gw_buf_t *inflated, size_t body_held)
{
    gw_dispatch_end(&rq->d);
    gw_buf_free(inflated);
    gw_inflight_keep(h->inflight, &r->held, body_held);
    if (r->release)
        worker_release(h);
}

/* POST /v1/points, /write, /api/v2/write once the body is in: inflate it,
 * take the memory its processing needs, ingest it; then give back all but
 * the raw body's memory. */
enum MHD_Result http_ingest(gw_http_t *h, struct MHD_Connection *c, req_t *r)
{
    gw_ingest_t in = {.format = r->route == R_POINTS ? GW_FMT_JSON : GW_FMT_LINEPROTO,
                      .ns_per_unit = 1,
                      .now_ns = gw_clock_wall_ns()};
    gw_buf_t inflated = {0};
    size_t body_held = r->held, len;
    const char *body;
    enum MHD_Result ret;
    request_t rq;

    if (begin_request(h, c, r, &in, &rq))
        return http_answer_error(c, 403, r->route, "%s", rq.why);
    if (!prepare_body(h, c, r, &in, &inflated, &body, &len, &ret) &&
        !reserve_work(h, c, r, in.format, body, len, 0, &ret))
        ret = ingest_body(h, c, r, &in, body, len, &rq.d);
    end_request(h, r, &rq, &inflated, body_held);
    return ret;
}

/* POST /v1/debug/transform: a body as the ingest endpoints take it (JSON
 * when the Content-Type is application/json, else line protocol with
 * ?precision=), run through this worker's scripts. Answers 200 with what
 * became of each point (docs/scripts.md); nothing is queued. At most
 * DEBUG_MAX_POINTS points (413 beyond). */
enum MHD_Result http_debug_transform(gw_http_t *h, struct MHD_Connection *c, req_t *r)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    gw_ingest_t in = {.format = ct && http_is_json_type(ct) ? GW_FMT_JSON : GW_FMT_LINEPROTO,
                      .ns_per_unit = 1,
                      .now_ns = gw_clock_wall_ns()};
    gw_buf_t inflated = {0}, json = {0};
    size_t body_held = r->held, len, n;
    const char *body;
    gw_pipeline_t *w;
    enum MHD_Result ret;
    int rc;
    request_t rq;

    /* The request as ingest sees it: its token (and its tags), its
     * database, its routes, req. */
    if (begin_request(h, c, r, &in, &rq))
        return http_answer_error(c, 403, r->route, "%s", rq.why);
    if (prepare_body(h, c, r, &in, &inflated, &body, &len, &ret))
        goto done;
    n = count_points(in.format, body, len, DEBUG_MAX_POINTS);
    if (n > DEBUG_MAX_POINTS) {
        ret = http_answer_error(c, 413, r->route, "body: more than %d points, the most /v1/debug/transform takes",
                                DEBUG_MAX_POINTS);
        goto done;
    }
    if (reserve_work(h, c, r, in.format, body, len, n * DEBUG_POINT_COST, &ret))
        goto done;
    w = worker(h);
    rc = w ? gw_pipeline_debug(w, &in, body, len, DEBUG_MAX_POINTS, &json) : -ENOMEM;
    if (rc == GW_PIPELINE_TOO_MANY)
        ret = http_answer_error(c, 413, r->route,
                                "body: the scripts made more than %d points of it, the most /v1/debug/transform answers",
                                DEBUG_MAX_POINTS);
    else if (rc)
        ret = http_answer_error(c, 500, r->route, "out of memory while processing the body");
    else
        ret = http_answer(c, 200, json.data ? json.data : "{}", json.data ? json.len : 2, "application/json");
done:
    gw_buf_free(&json);
    end_request(h, r, &rq, &inflated, body_held);
    return ret;
}
