/* fuzz/roundtrip.h — shared by the harnesses: CHECK (abort with a message,
 * which libFuzzer reports as a crash) and the round-trip properties:
 *  - what gw_lp_encode writes for a point parses back to the same point
 *    (gw_lp_parse);
 *  - the line it writes for InfluxDB 1.x (GW_LP_NO_UINT) is one that
 *    influxd stores exactly as that point (fuzz/influx_model.h);
 *  - for line protocol, a line the parser accepts is one that influxd,
 *    sent the same body, stores exactly as the parsed point (lp_source).
 * Known and documented differences are left out: `u` integers (luagw takes
 * them, 1.x refuses them), CRLF line ends (luagw takes them), and a point
 * with exactly 100 * 2^k tags, which influxd 1.6.7 answers with 500 every
 * time (a poison point, which delivery isolates). */
#ifndef FUZZ_ROUNDTRIP_H
#define FUZZ_ROUNDTRIP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/lineproto.h"
#include "influx_model.h"

#define CHECK(c, ...)                                                              \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #c);            \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            abort();                                                               \
        }                                                                          \
    } while (0)

static inline void same_point(const gw_point_t *a, const gw_point_t *b, const char *line, size_t n)
{
    CHECK(gw_str_eq(a->series, b->series), "series differs after round trip: %.*s", (int)n, line);
    CHECK(a->time_ns == b->time_ns, "time differs: %.*s", (int)n, line);
    CHECK(a->ntags == b->ntags, "tag count %u vs %u: %.*s", a->ntags, b->ntags, (int)n, line);
    CHECK(a->nfields == b->nfields, "field count %u vs %u: %.*s", a->nfields, b->nfields, (int)n, line);
    for (uint32_t i = 0; i < a->ntags; i++) {
        CHECK(gw_str_eq(a->tags[i].key, b->tags[i].key), "tag key %u: %.*s", i, (int)n, line);
        CHECK(gw_str_eq(a->tags[i].val, b->tags[i].val), "tag value %u: %.*s", i, (int)n, line);
    }
    for (uint32_t i = 0; i < a->nfields; i++) {
        const gw_field_t *fa = &a->fields[i];
        int j = gw_point_find_field(b, fa->key);
        CHECK(j >= 0, "field %u lost: %.*s", i, (int)n, line);
        const gw_field_t *fb = &b->fields[j];
        CHECK(fa->type == fb->type, "field %u type %d vs %d: %.*s", i, fa->type, fb->type, (int)n, line);
        switch (fa->type) {
        case GW_FIELD_FLOAT:
            CHECK(memcmp(&fa->v.f, &fb->v.f, sizeof(double)) == 0 || (fa->v.f == 0 && fb->v.f == 0),
                  "float %.17g vs %.17g: %.*s", fa->v.f, fb->v.f, (int)n, line);
            break;
        case GW_FIELD_INT: CHECK(fa->v.i == fb->v.i, "int: %.*s", (int)n, line); break;
        case GW_FIELD_UINT: CHECK(fa->v.u == fb->v.u, "uint: %.*s", (int)n, line); break;
        case GW_FIELD_BOOL: CHECK(fa->v.b == fb->v.b, "bool: %.*s", (int)n, line); break;
        case GW_FIELD_STRING: CHECK(gw_str_eq(fa->v.s, fb->v.s), "string: %.*s", (int)n, line); break;
        default: CHECK(0, "bad field type %d", fa->type);
        }
    }
}

/* The tags influxd stores of p (those with a value): 100 * 2^k of them
 * make influxd 1.6.7 panic on the line (500). */
static inline int influx_poison(const gw_point_t *p)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < p->ntags; i++)
        n += p->tags[i].val.n > 0;
    while (n >= 200 && n % 2 == 0)
        n /= 2;
    return n == 100;
}

/* Might line s..s+n hold a `u` integer (a digit, u, then a delimiter)? Its
 * field may be gone from the point (a field named time is dropped). */
static inline int may_have_uint(const char *s, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (s[i] == 'u' && s[i - 1] >= '0' && s[i - 1] <= '9' &&
            (i + 1 == n || s[i + 1] == ',' || s[i + 1] == ' '))
            return 1;
    return 0;
}

/* The line gw_lp_encode writes for InfluxDB 1.x must be stored by influxd
 * exactly as p. */
static inline void influx_roundtrip(gw_point_t *p, gw_buf_t *out)
{
    char err[256], why[512];
    int rc;

    out->len = 0;
    if (gw_lp_encode(out, p, GW_LP_NO_UINT, err, sizeof(err)) || influx_poison(p))
        return;
    rc = im_check_encoded(out->data, out->len, p, why, sizeof(why));
    CHECK(rc == 0, "influxd would not store the encoded line as the point: %s: %.*s", why,
          (int)out->len, out->data);
}

/* Encode p; when the encoder takes it, the line must parse back to p. */
static inline void roundtrip(gw_point_t *p, gw_arena_t *a2, gw_buf_t *out)
{
    static gw_points_t back;
    gw_result_t res2;
    char err[256];

    out->len = 0;
    int rc = gw_lp_encode(out, p, 0, err, sizeof(err));
    CHECK(rc == 0 || rc == 1, "encode returned %d", rc);
    if (rc)
        return;
    CHECK(out->len > 0 && out->data[out->len - 1] == '\n', "encoded line does not end in newline");
    memset(&res2, 0, sizeof(res2));
    back.n = 0;
    gw_arena_reset(a2);
    CHECK(gw_lp_parse(out->data, out->len, 1, 0, a2, &back, &res2) == 0, "reparse ENOMEM");
    CHECK(back.n == 1 && res2.rejected == 0, "encoded line does not parse back (%u points, %s): %.*s",
          back.n, res2.err_msg, (int)out->len, out->data);
    same_point(p, &back.v[0], out->data, out->len);
    influx_roundtrip(p, out);
}

/* A line-protocol point p, parsed from body (ns, now_ns for lines without a
 * time): influxd, sent that body, must store exactly p from p's line. Its
 * line starts after the (src - 1)th newline: the parser counts every one. */
static inline void lp_source(const char *body, size_t len, const gw_point_t *p, int64_t now_ns,
                             gw_arena_t *a)
{
    size_t start = 0, end;
    gw_point_t stored;
    const char *reason;
    char why[512];
    int rc;

    for (uint32_t line = 1; line < p->src; line++) {
        const char *nl = memchr(body + start, '\n', len - start);
        CHECK(nl, "point of line %u past the body", p->src);
        start = (size_t)(nl - body) + 1;
    }
    end = im_line_end(body, len, start);
    if (memchr(body + start, '\r', end - start) || may_have_uint(body + start, end - start) ||
        influx_poison(p))
        return;
    rc = im_parse_line(body + start, end - start, now_ns, a, &stored, &reason);
    CHECK(rc == IM_STORED, "luagw accepted line %u, influxd: %s: %s: %.*s", p->src,
          im_outcome_name(rc), reason, (int)(end - start), body + start);
    CHECK(im_same_point(&stored, p, why, sizeof(why)) == 0,
          "line %u: influxd would store it otherwise: %s: %.*s", p->src, why, (int)(end - start),
          body + start);
}

/* The body of a parser harness: parse an exact-size copy of data (so a
 * read past the end is caught) with parse, then round-trip every point it
 * accepted; with lp_now set (line protocol, in ns, lines without a time at
 * lp_now), also check each against influxd's reading of its source line.
 * parse returns 0 or -ENOMEM, like gw_lp_parse and gw_json_parse. */
typedef int (*fuzz_parse_fn)(const char *body, size_t len, gw_arena_t *a, gw_points_t *out,
                             gw_result_t *res);

static inline void fuzz_parse_roundtrip(const uint8_t *data, size_t size, fuzz_parse_fn parse,
                                        int64_t lp_now)
{
    static gw_arena_t *a, *a2;
    static gw_points_t pts;
    gw_result_t res;
    gw_buf_t out = {0};
    char *body = malloc(size ? size : 1);

    if (!a) {
        a = gw_arena_create(65536);
        a2 = gw_arena_create(65536);
    }
    memcpy(body, data, size);
    memset(&res, 0, sizeof(res));
    pts.n = 0;
    CHECK(parse(body, size, a, &pts, &res) == 0, "parse ENOMEM");
    for (uint32_t i = 0; i < pts.n; i++) {
        if (lp_now) {
            gw_arena_reset(a2);
            lp_source(body, size, &pts.v[i], lp_now, a2);
        }
        roundtrip(&pts.v[i], a2, &out);
    }
    gw_buf_free(&out);
    gw_arena_reset(a);
    free(body);
}

#endif
