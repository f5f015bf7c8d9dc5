/* json_lex.h — the JSON tokenizer's pieces: white space, strings, numbers.
 *
 * gateway/json.c reads a body with them; json_lex.c and json_time.h use
 * only the types. What runs for every token (white space, a string without
 * escapes, a number, keeping a string in the arena) is inline. What is rare
 * (escapes, UTF-8 beyond ASCII, strtod, errors) is out of line but static
 * here too, on purpose: with the lexers' callees in json.c's unit the
 * compiler knows which registers each call clobbers, and the JSON parse
 * costs about 55 instructions a point less than with them in another file
 * (bench-replay; docs/performance.md). json_lex.c has what json.c calls
 * only on cold paths: number texts and the message of a body that is not
 * JSON.
 *
 * The rules are jansson's, which json.c used first, kept exactly: UTF-8 as
 * jansson reads it (no overlong forms, no surrogates, nothing above
 * U+10FFFF); white space is space, tab, newline and return only; no raw
 * control characters in strings; no lone surrogate escapes; no real number
 * that overflows a double.
 *
 * Errors: a lexer that meets something that is not JSON records why and
 * where in its gw_json_lex_t (the first error only) and returns NULL; so
 * does one that runs out of memory (err = -ENOMEM). Strings it returns are
 * slices of the body, or in the arena (unescaped, or kept with keep_str). */
#ifndef GW_JSON_LEX_H
#define GW_JSON_LEX_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "arena.h"
#include "point.h"

/* Strings smaller than a quarter of this share a slab (alloc_str). */
#define STR_SLAB 4096

/* Where a value must start, and does not. */
#define WANT_VALUE "expected a value (an object, array, string, number, true, false or null)"

/* The lexer's state, for one body. */
typedef struct {
    const char *body; /* borrowed */
    size_t len;
    const char *tok;  /* borrowed: start of the token being handled */
    gw_arena_t *a;    /* borrowed: where strings go */
    char *slab;       /* borrowed (arena): where the next string goes */
    char *slab_end;
    int str_nul;      /* a string read since the last reset holds a NUL byte (from \u0000) */
    int err;          /* -ENOMEM, or 1: a body error, described by why at why_at */
    const char *why;  /* borrowed (static): what is wrong */
    size_t why_at;    /* and the byte offset where */
} gw_json_lex_t;

/* A number token, classified, and its digits as lex_number read them. */
typedef struct {
    const char *t; /* borrowed: the JSON text, in the body */
    size_t n;
    int is_int;    /* no fraction or exponent */
    int big;       /* an integer beyond int64: only t is meaningful */
    int64_t i;     /* is_int && !big */
    double d;      /* !is_int, once !pending */
    int pending;   /* d is still to be read (real_of) */
    uint64_t ip;   /* the integer part: exact when nd <= 19, else wrapped */
    uint64_t m;    /* all digits as one integer: exact when nd + nf <= 19 */
    uint32_t nd;   /* digits before the point */
    uint32_t nf;   /* digits after it */
    int32_t ex;    /* the exponent (its magnitude capped near 10^6) */
} gw_json_num_t;

/* ---- out of line: json_lex.c -------------------------------------------- */

/* A decimal integer text as uint64. 0, or -1 when negative or too big. */
int gw_json_text_u64(gw_str_t t, uint64_t *out);

/* The shortest text that reads back as the same double: 1.5 -> "1.5",
 * 0.1 -> "0.1" (not "0.10000000000000001"), 1e3 -> "1000". Its length. */
size_t gw_json_real_text(double d, char *buf, size_t size);

/* The body error of a body that is not JSON, in res: what (why) and where,
 * the line and column (in characters) of byte why_at, and the text from
 * there, echoed safely (utf8.h). */
void gw_json_body_error(const char *body, size_t len, gw_result_t *res, const char *why, size_t why_at);

/* ---- errors ----------------------------------------------------------------- */

/* Stop the lex at p: the body is not JSON, for the reason why (the first
 * such call wins). Returns NULL. */
static __attribute__((cold, noinline, unused)) const char *bad_at(gw_json_lex_t *lx, const char *p, const char *why)
{
    if (!lx->err) {
        lx->err = 1;
        lx->why = why;
        lx->why_at = (size_t)(p - lx->body);
    }
    return NULL;
}

/* Stop the lex at p, where a string whose opening quote is at q stops being
 * one: the end of the body (the error is then placed at q), a raw control
 * character or a byte that is not UTF-8. Returns NULL. */
static __attribute__((cold, noinline, unused)) const char *string_error(gw_json_lex_t *lx, const char *q, const char *p)
{
    if (p == lx->body + lx->len)
        return bad_at(lx, q, "unterminated string (no closing quote before the end of the body)");
    if ((unsigned char)*p < 0x20)
        return bad_at(lx, p, "control character in a string (write it as an escape, such as \\n or \\u0001)");
    return bad_at(lx, p, "invalid UTF-8 in a string");
}

static inline int no_memory(gw_json_lex_t *lx)
{
    lx->err = -ENOMEM;
    return 0;
}

/* ---- strings ---------------------------------------------------------------- */

/* A new slab for a string of n bytes (see alloc_str). NULL on ENOMEM. */
static __attribute__((noinline, unused)) char *new_slab(gw_json_lex_t *lx, size_t n)
{
    char *p;

    if (n > STR_SLAB / 4)
        return gw_arena_alloc(lx->a, n); /* a big string gets its own */
    if (!(p = gw_arena_alloc(lx->a, STR_SLAB)))
        return NULL;
    lx->slab = p + n;
    lx->slab_end = p + STR_SLAB;
    return p;
}

/* Room for n bytes of string in the arena. Strings need no alignment, so
 * they are packed into slabs taken from the arena, a bump of their own: one
 * arena call per slab instead of one per string. NULL on ENOMEM. */
static inline char *alloc_str(gw_json_lex_t *lx, size_t n)
{
    char *d = lx->slab;

    if ((size_t)(lx->slab_end - d) < n)
        return new_slab(lx, n);
    lx->slab = d + n;
    return d;
}

/* Copy n bytes (n > 0) into the arena. 0 or -ENOMEM. */
static inline int dup_str(gw_json_lex_t *lx, const char *p, size_t n, gw_str_t *out)
{
    char *d = alloc_str(lx, n);

    if (!d)
        return -ENOMEM;
    memcpy(d, p, n);
    *out = (gw_str_t){d, n};
    return 0;
}

/* Make *s, which a point keeps, outlive the body: a slice of the body is
 * copied into the arena (json.h promises that); a string unescaped into the
 * arena, or a literal, stays where it is. 0 or -ENOMEM. */
static inline int keep_str(gw_json_lex_t *lx, gw_str_t *s)
{
    size_t n = s->n;

    if ((uintptr_t)s->p - (uintptr_t)lx->body >= lx->len)
        return 0;
    if (n == 0) {
        *s = (gw_str_t){"", 0};
        return 0;
    }
#ifdef __SSE2__
    /* Most keys and values are short: one 16-byte move, when the body and
     * the slab both have 16 bytes there, instead of a call to memcpy. */
    if (n <= 16 && lx->body + lx->len - s->p >= 16 && lx->slab_end - lx->slab >= 16) {
        char *d = lx->slab;
        _mm_storeu_si128((__m128i *)(void *)d, _mm_loadu_si128((const __m128i *)(const void *)s->p));
        lx->slab = d + n;
        s->p = d;
        return 0;
    }
#endif
    return dup_str(lx, s->p, n, s);
}

/* Length of the UTF-8 sequence whose lead byte (>= 0x80) is at s, as
 * jansson reads UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF. 0 when invalid or cut short by e. */
static __attribute__((noinline, unused)) size_t utf8_len(const unsigned char *s, const unsigned char *e)
{
    unsigned c = s[0];
    uint32_t cp;
    size_t k;

    if (c >= 0xc2 && c <= 0xdf) {
        k = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(e - s) <= k)
        return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return k + 1;
}

static inline const char *skip_ws(const char *p, const char *e)
{
    if (p < e && (unsigned char)*p > ' ')
        return p; /* the common case: no white space */
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* The first byte at or after p that ends a plain run of string: a quote, a
 * backslash, a control character or a byte >= 0x80; or e. Sixteen bytes at
 * a time with SSE2 (the x86-64 baseline) while that many are left, so
 * nothing is read past e. */
static inline const char *str_stop(const char *p, const char *e)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);

    while (e - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* A signed compare: bytes >= 0x80 are negative, so below 0x20 too. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, space));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits)
            return p + __builtin_ctz(bits);
        p += 16;
    }
#endif
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
            break;
    }
    return p;
}

/* The four hex digits at p, or -1. */
static __attribute__((unused)) int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int x = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (x < 0)
            return -1;
        v = v * 16 + x;
    }
    return v;
}

/* One \u escape (or a surrogate pair of them) at p, before q, as UTF-8 at
 * *d. Returns the position past it, or NULL (recorded). jansson refuses
 * lone surrogates; \u0000 is noted in lx->str_nul, for the point. */
static __attribute__((unused)) const char *unescape_u(gw_json_lex_t *lx, const char *p, const char *q, char **d)
{
    char *o = *d;
    int cp = q - p >= 6 ? hex4(p + 2) : -1, lo;

    if (cp < 0)
        return bad_at(lx, p, "invalid escape: \\u takes four hex digits");
    p += 6;
    lx->str_nul |= cp == 0;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = hex4(p + 2)) < 0xdc00 ||
            lo > 0xdfff)
            return bad_at(lx, p - 6, "invalid Unicode escape: a high surrogate (\\uD800 to \\uDBFF) "
                                     "not followed by a low one (\\uDC00 to \\uDFFF)");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return bad_at(lx, p - 6, "invalid Unicode escape: a low surrogate (\\uDC00 to \\uDFFF) "
                                 "without a high one before it");
    }
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    *d = o;
    return p;
}

/* The rest of a string that holds escapes: s is its first byte, p its
 * first backslash. Unescaped into the arena, checked as lex_string checks.
 * Returns the position past the closing quote, or NULL (recorded). */
static __attribute__((noinline, unused)) const char *unescape(gw_json_lex_t *lx, const char *s, const char *p,
                                                              gw_str_t *out)
{
    static const char simple[256] = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
                                     ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'};
    const char *e = lx->body + lx->len, *q = p;
    char *d, *d0;
    size_t k;

    /* The closing quote is the first one no backslash escapes; the text up
     * to it bounds the unescaped size. */
    while (q < e && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= e)
        return string_error(lx, s - 1, e);
    if (!(d0 = alloc_str(lx, (size_t)(q - s)))) {
        no_memory(lx);
        return NULL;
    }
    memcpy(d0, s, (size_t)(p - s));
    d = d0 + (p - s);
    while (p < q) {
        if (*p == '\\') {
            /* p + 1 < q: the scan above stepped over the escaped byte. */
            unsigned char c = (unsigned char)p[1];
            if (c == 'u') {
                if (!(p = unescape_u(lx, p, q, &d)))
                    return NULL;
            } else if (simple[c]) {
                *d++ = simple[c];
                p += 2;
            } else {
                return bad_at(lx, p, "invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)");
            }
            continue;
        }
        const char *r = str_stop(p, q);
        memcpy(d, p, (size_t)(r - p));
        d += r - p;
        p = r;
        if (p == q || *p == '\\')
            continue;
        if (!(k = utf8_len((const unsigned char *)p, (const unsigned char *)q)))
            return string_error(lx, s - 1, p);
        memcpy(d, p, k);
        d += k;
        p += k;
    }
    *out = (gw_str_t){d0, (size_t)(d - d0)};
    return q + 1;
}

/* Read the string whose opening quote is at p: *out is its text, a slice of
 * the body when it holds no escapes, else unescaped into the arena. Returns
 * the position past its closing quote, or NULL (recorded). */
static inline const char *lex_string(gw_json_lex_t *lx, const char *p, gw_str_t *out)
{
    const char *s = ++p, *e = lx->body + lx->len;
    size_t k;

    for (;;) {
        p = str_stop(p, e);
        if (p < e && *p == '"') {
            *out = (gw_str_t){s, (size_t)(p - s)};
            return p + 1;
        }
        if (p < e && *p == '\\')
            return unescape(lx, s, p, out);
        /* the end, a control character or a byte >= 0x80 */
        if (p == e || !(k = utf8_len((const unsigned char *)p, (const unsigned char *)e)))
            return string_error(lx, s - 1, p);
        p += k;
    }
}

/* ---- numbers ---------------------------------------------------------------- */

/* num's double, as strtod would give it, when that takes one exact
 * operation: a mantissa below 2^53 (exact in a double) and a power of ten up
 * to 10^22 (exact too), so that the one multiplication or division rounds
 * correctly (Clinger's fast path). The common case: 0.0123, 1700000000.5,
 * 1.5e3. Returns 0, or -1 for strtod to do. */
static __attribute__((unused)) int fast_real(gw_json_num_t *num)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int32_t e = num->ex - (int32_t)num->nf;
    double d;

    if (num->nd + num->nf > 19 || num->m > ((uint64_t)1 << 53) || e < -22 || e > 22)
        return -1;
    d = (double)num->m;
    d = e < 0 ? d / pow10[-e] : d * pow10[e];
    num->d = num->t[0] == '-' ? -d : d;
    num->pending = 0;
    return 0;
}

/* Could the real number num be beyond a double, 1.8e308? Only when its
 * decimal magnitude (integer digits plus exponent) is near 308. */
static inline int may_overflow(const gw_json_num_t *num)
{
    const char *t = num->t + (num->t[0] == '-');

    return (t[0] == '0' ? 0 : (long)num->nd) + num->ex > 300;
}

/* Read num's double with strtod, which wants a terminated text: a number is
 * short, unless someone writes a thousand digits. 0, or -1 (ENOMEM,
 * recorded). */
static __attribute__((unused)) int strtod_text(gw_json_lex_t *lx, gw_json_num_t *num)
{
    char buf[64], *c = num->n < sizeof(buf) ? buf : malloc(num->n + 1);

    if (!c) {
        no_memory(lx);
        return -1;
    }
    memcpy(c, num->t, num->n);
    c[num->n] = '\0';
    num->d = strtod(c, NULL);
    num->pending = 0;
    if (c != buf)
        free(c);
    return 0;
}

/* num's value as a double, what strtod gives, once: lex_number leaves a
 * real's double pending (strtod is slow, and most reals are only
 * range-checked or kept as text). 0, or -1 (ENOMEM, recorded). */
static __attribute__((noinline, unused)) int real_of(gw_json_lex_t *lx, gw_json_num_t *num)
{
    if (!num->pending || !fast_real(num))
        return 0;
    return strtod_text(lx, num);
}

static inline int is_digit(const char *p, const char *e)
{
    return p < e && (unsigned char)(*p - '0') < 10;
}

/* Read the number at p (a '-' or a digit) into *num, by the JSON grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. An integer is converted
 * here; a real's double is left to real_of, unless it might overflow, which
 * makes the whole body bad. Returns the position past it, or NULL
 * (recorded). */
static inline __attribute__((always_inline)) const char *lex_number(gw_json_lex_t *lx, const char *p,
                                                                    gw_json_num_t *num)
{
    const char *t = p, *e = lx->body + lx->len;
    uint64_t m = 0;
    uint32_t nd = 0, nf = 0;
    int32_t ex = 0;
    int exp = 0, neg = 0;

    p += *p == '-';
    if (!is_digit(p, e))
        return bad_at(lx, t, p == t ? WANT_VALUE : "invalid number: a digit must follow '-'");
    /* m takes every digit: past 19 it wraps, and gw_json_num_t says it is unused. */
    if (*p == '0') {
        p++;
        nd = 1;
    } else {
        const char *d = p;
        for (; is_digit(p, e); p++)
            m = m * 10 + (uint64_t)(*p - '0');
        nd = (uint32_t)(p - d);
    }
    num->ip = m;
    if (p < e && *p == '.') {
        const char *d = ++p;
        for (; is_digit(p, e); p++)
            m = m * 10 + (uint64_t)(*p - '0');
        if (!(nf = (uint32_t)(p - d)))
            return bad_at(lx, t, "invalid number: a digit must follow '.'");
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        exp = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            neg = *p++ == '-';
        if (!is_digit(p, e))
            return bad_at(lx, t, "invalid number: its exponent has no digit");
        for (; is_digit(p, e); p++)
            if (ex < 100000)
                ex = ex * 10 + (*p - '0');
        if (neg)
            ex = -ex;
    }
    num->t = t;
    num->n = (size_t)(p - t);
    num->m = m;
    num->nd = nd;
    num->nf = nf;
    num->ex = ex;
    num->big = 0;
    num->is_int = !nf && !exp;
    if (!num->is_int) {
        num->pending = 1;
        if (may_overflow(num)) {
            if (strtod_text(lx, num))
                return NULL;
            if (__builtin_isinf(num->d))
                return bad_at(lx, lx->tok, "real number overflow");
        }
    } else if (nd > 19 || m > (uint64_t)INT64_MAX + (t[0] == '-')) {
        num->big = 1;
    } else {
        num->i = t[0] == '-' ? (int64_t)(0 - m) : (int64_t)m;
    }
    return p;
}

#endif
