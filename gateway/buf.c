/* buf.c — growable byte buffer. */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int gw_buf_grow(gw_buf_t *b, size_t extra)
{
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    /* Overflow, or more than any allocator gives (malloc refuses sizes
     * beyond PTRDIFF_MAX): asked of it, a sanitizer's allocator aborts. */
    if (need < b->len || need > PTRDIFF_MAX)
        return -ENOMEM;
    while (cap < need)
        cap = cap <= PTRDIFF_MAX / 2 ? cap * 2 : need;
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int gw_buf_printf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->data ? b->data + b->len : NULL, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= b->cap - b->len) {
        if (gw_buf_reserve(b, (size_t)n + 1))
            return -1;
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
    }
    b->len += (size_t)n;
    return 0;
}

void gw_buf_free(gw_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
