/* buf.h — growable byte buffer (owned memory) and string slices (borrowed). */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed slice of bytes: not NUL-terminated, never freed through this. */
typedef struct {
    const char *p; /* borrowed */
    size_t n;
} gw_str_t;

#define GW_STR_LIT(s) ((gw_str_t){(s), sizeof(s) - 1})

static inline int gw_str_eq(gw_str_t a, gw_str_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline int gw_str_cmp(gw_str_t a, gw_str_t b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c)
        return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

/* A growable buffer. Zero-initialise to start; gw_buf_free() releases it. */
typedef struct {
    char *data; /* owned */
    size_t len;
    size_t cap;
} gw_buf_t;

/* Slow path of gw_buf_reserve: grow so that len + extra fits. 0 or -ENOMEM. */
int gw_buf_grow(gw_buf_t *b, size_t extra);

/* Make room for extra more bytes. Returns 0, or -ENOMEM (buffer unchanged). */
static inline int gw_buf_reserve(gw_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    return gw_buf_grow(b, extra);
}

static inline int gw_buf_append(gw_buf_t *b, const void *p, size_t n)
{
    if (gw_buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int gw_buf_putc(gw_buf_t *b, char c)
{
    if (gw_buf_reserve(b, 1))
        return -1;
    b->data[b->len++] = c;
    return 0;
}

/* printf-style append. Returns 0 or -1 (ENOMEM / format error). */
int gw_buf_printf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Release the memory; the buffer is left zeroed and reusable. */
void gw_buf_free(gw_buf_t *b);

#endif
