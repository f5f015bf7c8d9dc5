/* fuzz/roundtrip.h — shared by the harnesses: CHECK (abort with a message,
 * which libFuzzer reports as a crash) and the point comparison of the
 * round-trip properties. */
#ifndef FUZZ_ROUNDTRIP_H
#define FUZZ_ROUNDTRIP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/lineproto.h"

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
}

/* The body of a parser harness: parse an exact-size copy of data (so a
 * read past the end is caught) with parse, then round-trip every point it
 * accepted. parse returns 0 or -ENOMEM, like gw_lp_parse and gw_json_parse. */
typedef int (*fuzz_parse_fn)(const char *body, size_t len, gw_arena_t *a, gw_points_t *out,
                             gw_result_t *res);

static inline void fuzz_parse_roundtrip(const uint8_t *data, size_t size, fuzz_parse_fn parse)
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
    for (uint32_t i = 0; i < pts.n; i++)
        roundtrip(&pts.v[i], a2, &out);
    gw_buf_free(&out);
    gw_arena_reset(a);
    free(body);
}

#endif
