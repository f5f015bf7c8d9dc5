/* point.c — point arrays, per-request results, repeated keys. */
#include "point.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

gw_point_t *gw_points_push(gw_points_t *pts)
{
    gw_point_t *p;

    if (pts->n == pts->cap) {
        uint32_t cap = pts->cap ? pts->cap * 2 : 256;
        gw_point_t *v = realloc(pts->v, (size_t)cap * sizeof(*v));
        if (!v)
            return NULL;
        pts->v = v;
        pts->cap = cap;
    }
    p = &pts->v[pts->n++];
    memset(p, 0, sizeof(*p));
    return p;
}

void gw_points_free(gw_points_t *pts)
{
    free(pts->v);
    pts->v = NULL;
    pts->n = pts->cap = 0;
}

void gw_result_reject(gw_result_t *r, int kind, uint32_t where, const char *fmt, ...)
{
    va_list ap;

    r->rejected++;
    /* Keep the error of the earliest line or index: parsers and later
     * stages report in different passes. */
    if (!gw_result_wants_msg(r, where))
        return;
    r->has_error = 1;
    r->err_kind = kind;
    r->err_where = where;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof(r->err_msg), fmt, ap);
    va_end(ap);
}

void gw_result_json(gw_jsonw_t *j, const gw_result_t *res)
{
    if (res->has_error) {
        const char *prefix = res->accepted ? "partial write: " : "";
        char msg[400], safe[400];

        if (res->err_kind == GW_WHERE_LINE) {
            snprintf(msg, sizeof(msg), "%sline %u: %s", prefix, res->err_where, res->err_msg);
            gw_jsonw_member_uint(j, "line", res->err_where);
        } else if (res->err_kind == GW_WHERE_INDEX) {
            snprintf(msg, sizeof(msg), "%sindex %u: %s", prefix, res->err_where, res->err_msg);
            gw_jsonw_member_uint(j, "index", res->err_where);
        } else {
            snprintf(msg, sizeof(msg), "%s%s", prefix, res->err_msg);
        }
        /* Parsers quote what they refused, which may not be UTF-8. */
        gw_jsonw_member_string(j, "error", gw_utf8_echo(safe, sizeof(safe), msg, strlen(msg)));
    }
    gw_jsonw_member_uint(j, "accepted", res->accepted);
    gw_jsonw_member_uint(j, "rejected", res->rejected);
}

/* A key and its place among the items, to find repeated keys by sorting. */
typedef struct {
    gw_str_t key;
    uint32_t i;
} placed_key_t;

static int cmp_placed(const void *a, const void *b)
{
    const placed_key_t *x = a, *y = b;
    int c = gw_str_cmp(x->key, y->key);

    return c ? c : (x->i > y->i) - (x->i < y->i);
}

#define ITEM(v, size, i) ((gw_str_t *)(void *)((char *)(v) + (size_t)(i) * (size)))

/* Mark items[i] dropped: its key pointer, never NULL in a kept item. */
static void drop_item(void *v, size_t size, uint32_t i)
{
    ITEM(v, size, i)->p = NULL;
}

/* Up to this many items, repeats are found pairwise; beyond, by sorting. */
#define KEEP_LINEAR 32

long gw_keep_last(void *items, uint32_t n, size_t size, gw_arena_t *a, gw_compatible_fn ok,
                  uint32_t *bad)
{
    uint32_t kept = 0;
    int any = 0;

    if (n <= KEEP_LINEAR) {
        for (uint32_t i = 0; i < n; i++) {
            for (uint32_t j = i + 1; j < n; j++) {
                if (!gw_str_eq(*ITEM(items, size, i), *ITEM(items, size, j)))
                    continue;
                if (ok && !ok(ITEM(items, size, i), ITEM(items, size, j))) {
                    *bad = j;
                    return -1;
                }
                any = 1;
            }
        }
        if (!any)
            return n;
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t j = i + 1; j < n; j++)
                if (ITEM(items, size, j)->p && gw_str_eq(*ITEM(items, size, i), *ITEM(items, size, j))) {
                    drop_item(items, size, i);
                    break;
                }
    } else {
        placed_key_t *v = gw_arena_alloc(a, (size_t)n * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < n; i++)
            v[i] = (placed_key_t){*ITEM(items, size, i), i};
        qsort(v, n, sizeof(*v), cmp_placed);
        for (uint32_t g = 0, h; g < n; g = h) {
            for (h = g + 1; h < n && gw_str_eq(v[h].key, v[g].key); h++) {
                if (ok && !ok(ITEM(items, size, v[g].i), ITEM(items, size, v[h].i))) {
                    *bad = v[h].i;
                    return -1;
                }
            }
            for (uint32_t x = g; x + 1 < h; x++)
                drop_item(items, size, v[x].i);
            any |= h - g > 1;
        }
        if (!any)
            return n;
    }
    for (uint32_t i = 0; i < n; i++)
        if (ITEM(items, size, i)->p && kept++ != i)
            memcpy(ITEM(items, size, kept - 1), ITEM(items, size, i), size);
    return kept;
}
