/* bodies.c — seed-series bodies, see bodies.h. */
#include "bodies.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A small deterministic generator (xorshift32): same seed, same body. */
static uint32_t next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static const char *const routes[] = {"GET:/version", "POST:/subscribe", "GET:/api/users/{id}",
                                     "PUT:/api/items/{id}", "POST:/v1/notify"};
static const char *const channels[] = {"notify:42", "notify:7", "presence", "jobs:mail"};

char *bench_body(int format, unsigned npoints, unsigned seed, size_t *len)
{
    return bench_body_shapes(format, npoints, seed, 0, len);
}

char *bench_body_shapes(int format, unsigned npoints, unsigned seed, unsigned shapes, size_t *len)
{
    sbuf_t b = {0};
    uint32_t s = seed * 2654435761u + 12345u;
    /* 2023-11-14T22:13:20Z plus a few seconds per body, one µs per point. */
    int64_t t_us = INT64_C(1700000000000000) + (int64_t)seed * 1000000;

    if (!s)
        s = 1;
    b.cap = (size_t)npoints * 200 + 64;
    b.p = malloc(b.cap);
    if (!b.p)
        return NULL;
    if (format == BODY_JSON)
        put(&b, "[");
    for (unsigned i = 0; i < npoints; i++, t_us += 1 + next(&s) % 50) {
        uint32_t r = next(&s);
        const char *route = routes[r % 5];
        unsigned status = (r >> 8) % 10 ? 200 : 404;
        double dur = (double)((r >> 12) % 250000 + 1) / 1e6; /* seconds, µs resolution, never 0 */
        unsigned id = next(&s);
        long long sec = t_us / 1000000, usec = t_us % 1000000;
        char shape[32] = "";

        if (shapes)
            snprintf(shape, sizeof(shape), format == BODY_LP ? ",shape=%u" : ",\"shape\":\"%u\"",
                     (unsigned)(((uint64_t)(seed ? seed - 1 : 0) * npoints + i) % shapes));

        if (format == BODY_LP) {
            switch (i % 5) {
            case 0:
                put(&b, "requests,service=luna-sender%s,route=%s,status_code=%u "
                        "request_id=\"%08x-%04x\",execution_time=%.6g %lld%06lld000\n",
                    shape, route, status, id, i, dur, sec, usec);
                break;
            case 1:
                put(&b, "errors,service=luna-sender%s,route=%s,status_code=500,error_code=%u "
                        "request_id=\"%08x-%04x\" %lld%06lld000\n",
                    shape, route, 10 + (r >> 20) % 5, id, i, sec, usec);
                break;
            case 2:
                put(&b, "subscription_error,service=luna-sender%s,error_code=E%u count=1i %lld%06lld000\n",
                    shape, 40 + (r >> 20) % 4, sec, usec);
                break;
            case 3:
                put(&b, "ws_requests,service=luna-sender%s,account_id=%u "
                        "transport_time=%.6g,request_id=\"%08x-%04x\" %lld%06lld000\n",
                    shape, (r >> 16) % 5000, dur, id, i, sec, usec);
                break;
            default:
                put(&b, "redis_message,service=luna-sender%s,chanel=%s request_id=\"%08x-%04x\" %lld%06lld000\n",
                    shape, channels[(r >> 20) % 4], id, i, sec, usec);
                break;
            }
            continue;
        }
        put(&b, "%s{", i ? "," : "");
        switch (i % 5) {
        case 0:
            put(&b, "\"series\":\"requests\",\"time\":%lld.%06lld,"
                    "\"tags\":{\"service\":\"luna-sender\"%s,\"route\":\"%s\",\"status_code\":%u},"
                    "\"fields\":{\"request_id\":\"%08x-%04x\",\"execution_time\":%.6g}",
                sec, usec, shape, route, status, id, i, dur);
            break;
        case 1:
            put(&b, "\"series\":\"errors\",\"time\":%lld.%06lld,"
                    "\"tags\":{\"service\":\"luna-sender\"%s,\"route\":\"%s\",\"status_code\":500,\"error_code\":%u},"
                    "\"fields\":{\"request_id\":\"%08x-%04x\"}",
                sec, usec, shape, route, 10 + (r >> 20) % 5, id, i);
            break;
        case 2:
            put(&b, "\"series\":\"subscription_error\",\"time\":%lld.%06lld,"
                    "\"tags\":{\"service\":\"luna-sender\"%s,\"error_code\":\"E%u\"},"
                    "\"fields\":{\"count\":1}",
                sec, usec, shape, 40 + (r >> 20) % 4);
            break;
        case 3:
            put(&b, "\"series\":\"ws_requests\",\"time\":%lld.%06lld,"
                    "\"tags\":{\"service\":\"luna-sender\"%s,\"account_id\":%u},"
                    "\"fields\":{\"transport_time\":%.6g,\"request_id\":\"%08x-%04x\"}",
                sec, usec, shape, (r >> 16) % 5000, dur, id, i);
            break;
        default:
            put(&b, "\"series\":\"redis_message\",\"time\":%lld.%06lld,"
                    "\"tags\":{\"service\":\"luna-sender\"%s,\"chanel\":\"%s\"},"
                    "\"fields\":{\"request_id\":\"%08x-%04x\"}",
                sec, usec, shape, channels[(r >> 20) % 4], id, i);
            break;
        }
        put(&b, "}");
    }
    if (format == BODY_JSON)
        put(&b, "]");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
