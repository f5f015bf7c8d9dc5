/* influx.c — libcurl client for InfluxDB's write endpoints. */
#include "influx.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libdeflate.h>

#include "arena.h"
#include "buf.h"
#include "json.h"
#include "log.h"

struct gw_influx {
    CURL *curl;                 /* owned: one handle keeps the connection alive */
    struct curl_slist *headers; /* owned */
    char *url;                  /* owned */
    int gzip;
    struct libdeflate_compressor *z; /* owned: reused across writes */
    gw_buf_t zbuf;              /* owned: compressed body */
    gw_buf_t resp;              /* owned: response body (capped) */
    double retry_after;         /* from the last response's headers */
    char curl_err[CURL_ERROR_SIZE];
};

#define RESP_CAP 8192

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    gw_influx_t *c = ud;
    size_t len = size * n;
    size_t room = RESP_CAP - c->resp.len;
    /* Keep the head of the answer only: the error is there. */
    gw_buf_append(&c->resp, p, len < room ? len : room);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    gw_influx_t *c = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";

    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        char tmp[64];
        size_t k = len - (sizeof(name) - 1);
        char *end;
        double v;
        if (k >= sizeof(tmp))
            k = sizeof(tmp) - 1;
        memcpy(tmp, p + sizeof(name) - 1, k);
        tmp[k] = 0;
        /* Seconds only; an HTTP-date is rare from InfluxDB and ignored. */
        v = strtod(tmp, &end);
        if (end != tmp && v >= 0)
            c->retry_after = v;
    }
    return len;
}

/* Build the write URL with every parameter escaped. */
static char *build_url(CURL *curl, const gw_config_t *cfg)
{
    const char *scheme = cfg->monitoring.use_ssl ? "https" : "http";
    const char *host = cfg->monitoring.host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    gw_buf_t b = {0};
    char *e1 = NULL, *e2 = NULL;
    int rc;

    if (cfg->monitoring.version == 2) {
        e1 = curl_easy_escape(curl, cfg->monitoring.organization, 0);
        e2 = curl_easy_escape(curl, cfg->monitoring.bucket, 0);
        if (!e1 || !e2)
            goto fail;
        rc = gw_buf_printf(&b, "%s://%s%s%s:%d/api/v2/write?org=%s&bucket=%s&precision=ns", scheme,
                           v6 ? "[" : "", host, v6 ? "]" : "", cfg->monitoring.port, e1, e2);
    } else {
        e1 = curl_easy_escape(curl, cfg->monitoring.database, 0);
        e2 = curl_easy_escape(curl, cfg->monitoring.rp, 0);
        if (!e1 || !e2)
            goto fail;
        rc = gw_buf_printf(&b, "%s://%s%s%s:%d/write?db=%s%s%s&precision=ns", scheme, v6 ? "[" : "",
                           host, v6 ? "]" : "", cfg->monitoring.port, e1, *e2 ? "&rp=" : "", e2);
    }
    if (rc)
        goto fail;
    curl_free(e1);
    curl_free(e2);
    return b.data;
fail:
    curl_free(e1);
    curl_free(e2);
    gw_buf_free(&b);
    return NULL;
}

gw_influx_t *gw_influx_create(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_influx_t *c = calloc(1, sizeof(*c));
    char auth[1024];
    long timeout_ms = (long)(cfg->monitoring.timeout * 1000);

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        snprintf(err, errlen, "curl_easy_init failed");
        goto fail;
    }
    c->url = build_url(c->curl, cfg);
    if (!c->url) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->headers = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8");
    /* No "Expect: 100-continue": it costs a round trip per batch. */
    c->headers = curl_slist_append(c->headers, "Expect:");
    if (cfg->monitoring.version == 2 && cfg->monitoring.token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Token %s", cfg->monitoring.token);
        c->headers = curl_slist_append(c->headers, auth);
    }
    c->gzip = cfg->monitoring.gzip;
    if (c->gzip)
        c->headers = curl_slist_append(c->headers, "Content-Encoding: gzip");
    if (!c->headers) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "luagw");
    if (cfg->monitoring.version == 1 && cfg->monitoring.user[0]) {
        curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c->curl, CURLOPT_USERNAME, cfg->monitoring.user);
        curl_easy_setopt(c->curl, CURLOPT_PASSWORD, cfg->monitoring.password);
    }
    if (cfg->monitoring.use_ssl) {
        /* Verification is libcurl's default; tls_verify: false turns it off
         * (the sender logs that once at start). */
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, cfg->monitoring.tls_verify ? 1L : 0L);
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, cfg->monitoring.tls_verify ? 2L : 0L);
        if (cfg->monitoring.tls_ca[0])
            curl_easy_setopt(c->curl, CURLOPT_CAINFO, cfg->monitoring.tls_ca);
    }
    return c;
fail:
    gw_influx_destroy(c);
    return NULL;
}

/* gzip body into c->zbuf. 0 or -1. libdeflate, not zlib: 1.6x zlib's speed
 * at level 1 on our batches, and a smaller result (docs/performance.md);
 * the sender thread compresses every batch, so this bounds gzip'd output. */
static int compress_body(gw_influx_t *c, const char *body, size_t len)
{
    size_t n;

    /* Level 1: batches are repetitive text; higher levels cost CPU for
     * little gain. */
    if (!c->z && !(c->z = libdeflate_alloc_compressor(1)))
        return -1;
    c->zbuf.len = 0;
    if (gw_buf_reserve(&c->zbuf, libdeflate_gzip_compress_bound(c->z, len)))
        return -1;
    n = libdeflate_gzip_compress(c->z, body, len, c->zbuf.data, c->zbuf.cap);
    if (!n)
        return -1;
    c->zbuf.len = n;
    return 0;
}

/* Pull the human message out of InfluxDB's JSON error body:
 * 1.x {"error": "..."}, 2.x {"code": "...", "message": "..."}. */
static void extract_error(gw_influx_t *c, char *out, size_t outlen)
{
    const char *body = c->resp.data ? c->resp.data : "";
    gw_arena_t *a = gw_arena_create(4096);
    gw_str_t msg = {body, c->resp.len < outlen ? c->resp.len : outlen - 1};
    gw_str_t s;

    if (a && (gw_json_member_string(body, c->resp.len, "error", a, &s) == 0 ||
              gw_json_member_string(body, c->resp.len, "message", a, &s) == 0))
        msg = s;
    snprintf(out, outlen, "%.*s", (int)(msg.n < outlen ? msg.n : outlen - 1), msg.p);
    gw_arena_destroy(a);
}

/* A failed transfer: did anything answer? A timeout is no answer even after
 * a status line (InfluxDB stopped mid-answer); a status line followed by
 * something libcurl refuses ("Nul byte in header", a cut-off body), or a
 * reply that is not HTTP at all, is an answer that cannot be read. */
static int answer_kind(CURLcode rc, long status)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return GW_ANSWER_NONE;
    if (status > 0 || rc == CURLE_WEIRD_SERVER_REPLY || rc == CURLE_BAD_CONTENT_ENCODING ||
        rc == CURLE_UNSUPPORTED_PROTOCOL)
        return GW_ANSWER_UNREADABLE;
    return GW_ANSWER_NONE;
}

int gw_influx_write(gw_influx_t *c, const char *body, size_t len, gw_influx_answer_t *ans)
{
    CURLcode rc;

    ans->status = 0;
    ans->kind = GW_ANSWER_NONE;
    ans->retry_after = -1;
    ans->error[0] = 0;
    c->resp.len = 0;
    c->retry_after = -1;
    c->curl_err[0] = 0;
    if (c->gzip) {
        if (compress_body(c, body, len)) {
            snprintf(ans->error, sizeof(ans->error), "gzip compression failed");
            return 1;
        }
        body = c->zbuf.data;
        len = c->zbuf.len;
    }
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    rc = curl_easy_perform(c->curl);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &ans->status);
    if (rc != CURLE_OK) {
        ans->kind = answer_kind(rc, ans->status);
        snprintf(ans->error, sizeof(ans->error), "%s", c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
        return 1;
    }
    ans->kind = GW_ANSWER_HTTP;
    ans->retry_after = c->retry_after;
    if (ans->status >= 200 && ans->status < 300)
        return 0;
    extract_error(c, ans->error, sizeof(ans->error));
    return 1;
}

void gw_influx_destroy(gw_influx_t *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->url);
    libdeflate_free_compressor(c->z); /* NULL: no-op */
    gw_buf_free(&c->zbuf);
    gw_buf_free(&c->resp);
    free(c);
}
