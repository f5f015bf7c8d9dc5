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

/* a and b (n bytes each, n >= w) agree on their first and last w bytes. */
static inline __attribute__((always_inline)) int gw_str_ends_eq_(const char *a, const char *b, size_t n,
                                                                 size_t w)
{
    uint64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;

    memcpy(&x0, a, w);
    memcpy(&y0, b, w);
    memcpy(&x1, a + n - w, w);
    memcpy(&y1, b + n - w, w);
    return x0 == y0 && x1 == y1;
}

/* Equal bytes. Names are mostly short: up to 16 bytes are compared inline
 * with two overlapping loads from each end (never outside either slice), a
 * memcmp call costing more than the comparison itself. */
static inline int gw_str_eq(gw_str_t a, gw_str_t b)
{
    size_t n = a.n;

    if (n != b.n)
        return 0;
    if (n >= 8 && n <= 16)
        return gw_str_ends_eq_(a.p, b.p, n, 8);
    if (n >= 4 && n < 8)
        return gw_str_ends_eq_(a.p, b.p, n, 4);
    if (n < 4) /* p[0], p[n / 2] and p[n - 1] are every byte of 1 to 3 */
        return n == 0 || (a.p[0] == b.p[0] && a.p[n / 2] == b.p[n / 2] && a.p[n - 1] == b.p[n - 1]);
    return memcmp(a.p, b.p, n) == 0;
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
