/* http_answer.c — how the HTTP server answers (http_int.h): the headers
 * every answer carries, JSON bodies written with jsonw.h, errors as
 * {"error"} (and, for InfluxDB 2.x clients, {"code", "message"}), with
 * whatever of the client's they quote made safe to echo (utf8.h). */
#include "http_int.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "version.h"

/* Add the headers of every answer to r, queue it and let go of it. A
 * probe-only connection is closed after its answer. */
enum MHD_Result http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r, const char *ctype)
{
    enum MHD_Result rc;

    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Influxdb-Version", GW_INFLUX_COMPAT_VERSION);
    MHD_add_response_header(r, "X-Luagw-Version", GW_VERSION);
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (http_probe_only(c))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result http_answer(struct MHD_Connection *c, unsigned status, const char *body,
                            size_t len, const char *ctype)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    return r ? http_queue(c, status, r, ctype) : MHD_NO;
}

/* What an answer says when its own JSON cannot be made (out of memory). */
const char http_nomem_json[] = "{\"error\":\"out of memory while answering\"}";
const size_t http_nomem_json_len = sizeof(http_nomem_json) - 1;

/* What the 2.x endpoint's {"code"} says for an error status. */
static const char *error_code(unsigned status)
{
    return status == 413   ? "request too large"
           : status == 401 ? "unauthorized"
           : status == 404 ? "not found"
           : status == 503 ? "unavailable"
           : status >= 500 ? "internal error"
                           : "invalid";
}

/* End the object that w writes (begun with gw_jsonw_begin_object) and make
 * it a response, its buffer handed over. error is the object's "error"
 * member, or NULL: on the 2.x endpoint (and the query paths, which 2.x
 * clients ask too) it is also given as {"code", "message"}, which 2.x
 * clients read. When the document cannot be made, the
 * response is the out-of-memory answer and *status 500. NULL on ENOMEM. */
static struct MHD_Response *json_response(gw_jsonw_t *w, unsigned *status, enum route route, const char *error)
{
    struct MHD_Response *r;

    if ((route == R_WRITE_V2 || route == R_READ) && error) {
        gw_jsonw_member_string(w, "code", error_code(*status));
        gw_jsonw_member_string(w, "message", error);
    }
    gw_jsonw_end(w);
    if (gw_jsonw_finish(w)) {
        gw_buf_free(w->out);
        *status = 500;
        return MHD_create_response_from_buffer(http_nomem_json_len, (void *)http_nomem_json,
                                               MHD_RESPMEM_PERSISTENT);
    }
    r = MHD_create_response_from_buffer(w->out->len, w->out->data, MHD_RESPMEM_MUST_FREE);
    if (!r)
        gw_buf_free(w->out);
    return r;
}

/* Answer status with the object w writes, ended here (see json_response). */
enum MHD_Result http_answer_json(struct MHD_Connection *c, unsigned status, gw_jsonw_t *w, enum route route,
                                 const char *error)
{
    struct MHD_Response *r = json_response(w, &status, route, error);

    return r ? http_queue(c, status, r, "application/json") : MHD_NO;
}

/* Start an answer's object in b (zeroed here). */
void http_json_begin(gw_jsonw_t *w, gw_buf_t *b)
{
    memset(b, 0, sizeof(*b));
    gw_jsonw_init(w, b);
    gw_jsonw_begin_object(w);
}

/* {"error": message}: the message made safe to echo (utf8.h), whatever of
 * the client's it holds, into msg. */
static const char *error_text(char *msg, size_t msglen, const char *fmt, va_list ap)
{
    char raw[1024];

    vsnprintf(raw, sizeof(raw), fmt, ap);
    return gw_utf8_echo(msg, msglen, raw, strlen(raw));
}

enum MHD_Result http_answer_error(struct MHD_Connection *c, unsigned status, enum route route,
                                  const char *fmt, ...)
{
    char msg[512];
    gw_buf_t b;
    gw_jsonw_t w;
    va_list ap;

    va_start(ap, fmt);
    error_text(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_json_begin(&w, &b);
    gw_jsonw_member_string(&w, "error", msg);
    return http_answer_json(c, status, &w, route, msg);
}

/* A request refused for want of memory (inflight.h), needing need bytes in
 * all: 503 while others hold the room (the client retries), 413 when it
 * alone needs more than listen.max_inflight_bytes. Nothing of it is taken. */
enum MHD_Result http_answer_no_room(gw_http_t *h, struct MHD_Connection *c, enum route route, int why,
                                    size_t need)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
    size_t limit = h->cfg->listen.max_inflight_bytes;

    gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http: request refused for want of memory",
                   "limit=\"listen.max_inflight_bytes\" need=%zu status=%d", need,
                   why == GW_INFLIGHT_TOO_BIG ? 413 : 503);
    if (why == GW_INFLIGHT_TOO_BIG)
        return http_answer_error(c, 413, route,
                                 "body: taking it in needs about %zu MiB of memory, more than listen.max_inflight_bytes "
                                 "(%zu) holds for all requests: send smaller bodies",
                                 (need >> 20) + 1, limit);
    return http_answer_error(c, 503, route,
                             "requests in progress hold all of listen.max_inflight_bytes (%zu): nothing of this body "
                             "was accepted, retry later",
                             limit);
}

/* 405, with the methods the path allows. */
enum MHD_Result http_answer_405(struct MHD_Connection *c, enum route route, const char *method,
                                const char *url, const char *allowed)
{
    char m[64], u[256], msg[400];
    unsigned status = 405;
    struct MHD_Response *r;
    gw_buf_t b;
    gw_jsonw_t w;

    snprintf(msg, sizeof(msg), "method %s not allowed on %s (allowed: %s)", ECHO(m, method), ECHO(u, url),
             allowed);
    http_json_begin(&w, &b);
    gw_jsonw_member_string(&w, "error", msg);
    if (!(r = json_response(&w, &status, route, msg)))
        return MHD_NO;
    MHD_add_response_header(r, "Allow", allowed);
    return http_queue(c, status, r, "application/json");
}

/* 400 for a body of which some points were refused: {"line" or "index",
 * "error", "accepted", "rejected"}. */
enum MHD_Result http_answer_result(struct MHD_Connection *c, enum route route, const gw_result_t *res)
{
    const char *prefix = res->accepted ? "partial write: " : "";
    char msg[400], safe[400];
    gw_buf_t b;
    gw_jsonw_t w;

    http_json_begin(&w, &b);
    if (res->err_kind == GW_WHERE_LINE) {
        snprintf(msg, sizeof(msg), "%sline %u: %s", prefix, res->err_where, res->err_msg);
        gw_jsonw_member_uint(&w, "line", res->err_where);
    } else if (res->err_kind == GW_WHERE_INDEX) {
        snprintf(msg, sizeof(msg), "%sindex %u: %s", prefix, res->err_where, res->err_msg);
        gw_jsonw_member_uint(&w, "index", res->err_where);
    } else {
        snprintf(msg, sizeof(msg), "%s%s", prefix, res->err_msg);
    }
    /* Parsers quote what they refused, which may not be UTF-8. */
    gw_jsonw_member_string(&w, "error", ECHO(safe, msg));
    gw_jsonw_member_uint(&w, "accepted", res->accepted);
    gw_jsonw_member_uint(&w, "rejected", res->rejected);
    return http_answer_json(c, 400, &w, route, safe);
}

/* /api/v2/query (Flux): not passed through (InfluxQL's /query is), so 404,
 * saying where the points are read (the configured InfluxDB). */
enum MHD_Result http_answer_read_elsewhere(gw_http_t *h, struct MHD_Connection *c, const char *url)
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
    return http_answer_error(c, 404, R_READ,
                             "path: %s: luagw passes InfluxQL queries through (GET or POST /query), not Flux; "
                             "send Flux to InfluxDB at %s://%s%s%s:%d (%s)",
                             ECHO(e, url), cfg->monitoring.use_ssl ? "https" : "http", v6 ? "[" : "", host,
                             v6 ? "]" : "", cfg->monitoring.port, where);
}
