/* point.c — point arrays and per-request results. */
#include "point.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
