/* jsonw.c — JSON text written straight into a buffer, see jsonw.h. */
#include "jsonw.h"

#include "numconv.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* What a string byte needs: copied as is, escaped (" \ and controls), or
 * looked at as the start of a multi-byte character. */
enum { PLAIN = 0, ESCAPE = 1, UTF8 = 2 };

static const unsigned char byte_class[256] = {
    [0x00 ... 0x1f] = ESCAPE,
    ['"'] = ESCAPE,
    ['\\'] = ESCAPE,
    [0x80 ... 0xff] = UTF8,
};

static void fail(gw_jsonw_t *w, int err)
{
    if (!w->err)
        w->err = err;
}

static void put(gw_jsonw_t *w, const char *s, size_t n)
{
    if (!w->err && gw_buf_append(w->out, s, n))
        fail(w, -ENOMEM);
}

static void putc1(gw_jsonw_t *w, char c)
{
    if (!w->err && gw_buf_putc(w->out, c))
        fail(w, -ENOMEM);
}

void gw_jsonw_init(gw_jsonw_t *w, gw_buf_t *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

/* Before a value: the comma after the previous one, and the checks that a
 * value may stand here (after a key in an object; anywhere in an array; once
 * at the top). Returns 0 when the value may be written. */
static int value_start(gw_jsonw_t *w)
{
    uint64_t bit = UINT64_C(1) << w->depth;

    if (w->err)
        return -1;
    if (w->key_open) {
        w->key_open = 0;
        return 0;
    }
    if (w->object & bit || (w->depth == 0 && w->more & bit)) {
        fail(w, -EINVAL);
        return -1;
    }
    if (w->more & bit)
        putc1(w, ',');
    w->more |= bit;
    return w->err ? -1 : 0;
}

/* Write the valid UTF-8 character or the invalid byte at p (before e) in its
 * JSON form; returns the bytes of s it took. Controls, " and \ never reach
 * here as plain ASCII: escape_byte writes them. */
static size_t put_char(gw_jsonw_t *w, const unsigned char *p, const unsigned char *e)
{
    size_t k = gw_utf8_char(p, e);
    static const char hex[] = "0123456789abcdef";

    if (k)
        put(w, (const char *)p, k);
    else {
        char esc[6] = {'\\', '\\', 'x', hex[*p >> 4], hex[*p & 15]};
        put(w, esc, 5);
        k = 1;
    }
    return k;
}

static void escape_byte(gw_jsonw_t *w, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

    switch (c) {
    case '"': put(w, "\\\"", 2); return;
    case '\\': put(w, "\\\\", 2); return;
    case '\n': put(w, "\\n", 2); return;
    case '\r': put(w, "\\r", 2); return;
    case '\t': put(w, "\\t", 2); return;
    case '\b': put(w, "\\b", 2); return;
    case '\f': put(w, "\\f", 2); return;
    default: put(w, esc, 6);
    }
}

/* The text of s between quotes: runs of plain bytes copied at once. */
static void put_text(gw_jsonw_t *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;

    while (p < e && !w->err) {
        const unsigned char *run = p;

        while (p < e && byte_class[*p] == PLAIN)
            p++;
        put(w, (const char *)run, (size_t)(p - run));
        if (p == e)
            break;
        if (byte_class[*p] == ESCAPE)
            escape_byte(w, *p++);
        else
            p += put_char(w, p, e);
    }
}

static void put_quoted(gw_jsonw_t *w, const char *s, size_t n)
{
    putc1(w, '"');
    put_text(w, s, n);
    putc1(w, '"');
}

static void begin(gw_jsonw_t *w, char open, int is_object)
{
    if (value_start(w))
        return;
    if (w->depth >= GW_JSONW_MAX_DEPTH) {
        fail(w, -EINVAL);
        return;
    }
    putc1(w, open);
    w->depth++;
    w->more &= ~(UINT64_C(1) << w->depth);
    if (is_object)
        w->object |= UINT64_C(1) << w->depth;
    else
        w->object &= ~(UINT64_C(1) << w->depth);
}

void gw_jsonw_begin_object(gw_jsonw_t *w)
{
    begin(w, '{', 1);
}

void gw_jsonw_begin_array(gw_jsonw_t *w)
{
    begin(w, '[', 0);
}

void gw_jsonw_end(gw_jsonw_t *w)
{
    if (w->err)
        return;
    if (w->depth == 0 || w->key_open) {
        fail(w, -EINVAL);
        return;
    }
    putc1(w, w->object & UINT64_C(1) << w->depth ? '}' : ']');
    w->depth--;
}

void gw_jsonw_key_n(gw_jsonw_t *w, const char *key, size_t n)
{
    uint64_t bit = UINT64_C(1) << w->depth;

    if (w->err)
        return;
    if (!(w->object & bit) || w->key_open) {
        fail(w, -EINVAL);
        return;
    }
    if (w->more & bit)
        putc1(w, ',');
    w->more |= bit;
    put_quoted(w, key, n);
    putc1(w, ':');
    w->key_open = 1;
}

void gw_jsonw_key(gw_jsonw_t *w, const char *key)
{
    gw_jsonw_key_n(w, key, strlen(key));
}

void gw_jsonw_string_n(gw_jsonw_t *w, const char *s, size_t n)
{
    if (!value_start(w))
        put_quoted(w, s, n);
}

void gw_jsonw_string(gw_jsonw_t *w, const char *s)
{
    if (!s)
        gw_jsonw_null(w);
    else
        gw_jsonw_string_n(w, s, strlen(s));
}

/* How much text a reader decodes from the character at p (before e), and
 * how many bytes of s it takes (*k). */
static size_t decoded_len(const unsigned char *p, const unsigned char *e, size_t *k)
{
    *k = byte_class[*p] == UTF8 ? gw_utf8_char(p, e) : 1;
    if (*k)
        return *k;
    *k = 1;
    return 4; /* \xHH */
}

void gw_jsonw_string_cut(gw_jsonw_t *w, const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    size_t used = 0, cut = 0; /* cut: bytes of s that leave room for "..." */

    if (max < 3) {
        fail(w, -EINVAL);
        return;
    }
    while (p < e) {
        size_t k, len = decoded_len(p, e, &k);

        if (used + len > max)
            break;
        used += len;
        p += k;
        if (used <= max - 3)
            cut = (size_t)(p - (const unsigned char *)s);
    }
    if (p == e) {
        gw_jsonw_string_n(w, s, n);
        return;
    }
    if (value_start(w))
        return;
    putc1(w, '"');
    put_text(w, s, cut);
    put(w, "...\"", 4);
}

static void put_number(gw_jsonw_t *w, int kind, int64_t i, uint64_t u, double d)
{
    size_t n;

    if (value_start(w))
        return;
    if (gw_buf_reserve(w->out, GW_NUM_CHARS)) {
        fail(w, -ENOMEM);
        return;
    }
    char *at = w->out->data + w->out->len;
    n = kind == 'i' ? gw_num_i64(at, i) : kind == 'u' ? gw_num_u64(at, u) : gw_num_double(at, d);
    w->out->len += n;
}

void gw_jsonw_int(gw_jsonw_t *w, int64_t v)
{
    put_number(w, 'i', v, 0, 0);
}

void gw_jsonw_uint(gw_jsonw_t *w, uint64_t v)
{
    put_number(w, 'u', 0, v, 0);
}

void gw_jsonw_double(gw_jsonw_t *w, double v)
{
    if (!isfinite(v))
        gw_jsonw_null(w);
    else
        put_number(w, 'd', 0, 0, v);
}

void gw_jsonw_bool(gw_jsonw_t *w, int v)
{
    if (!value_start(w))
        put(w, v ? "true" : "false", v ? 4 : 5);
}

void gw_jsonw_null(gw_jsonw_t *w)
{
    if (!value_start(w))
        put(w, "null", 4);
}

void gw_jsonw_raw(gw_jsonw_t *w, const char *json, size_t n)
{
    if (!value_start(w))
        put(w, json, n);
}

void gw_jsonw_member_string(gw_jsonw_t *w, const char *key, const char *s)
{
    gw_jsonw_key(w, key);
    gw_jsonw_string(w, s);
}

void gw_jsonw_member_int(gw_jsonw_t *w, const char *key, int64_t v)
{
    gw_jsonw_key(w, key);
    gw_jsonw_int(w, v);
}

void gw_jsonw_member_uint(gw_jsonw_t *w, const char *key, uint64_t v)
{
    gw_jsonw_key(w, key);
    gw_jsonw_uint(w, v);
}

void gw_jsonw_member_double(gw_jsonw_t *w, const char *key, double v)
{
    gw_jsonw_key(w, key);
    gw_jsonw_double(w, v);
}

void gw_jsonw_member_bool(gw_jsonw_t *w, const char *key, int v)
{
    gw_jsonw_key(w, key);
    gw_jsonw_bool(w, v);
}

int gw_jsonw_finish(gw_jsonw_t *w)
{
    if (!w->err && (w->depth || w->key_open || !(w->more & 1)))
        fail(w, -EINVAL);
    if (!w->err && gw_buf_reserve(w->out, 1))
        fail(w, -ENOMEM);
    if (w->err)
        return w->err;
    w->out->data[w->out->len] = '\0';
    return 0;
}
