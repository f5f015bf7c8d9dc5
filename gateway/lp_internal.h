/* lp_internal.h — what the line-protocol parser (lp_parse.c) and encoder
 * (lp_encode.c) share, and no other file includes.
 *
 * The byte classes both scan with: one table, and scanners that test 16
 * bytes at a time (SSE2) or 8 (SWAR), inline because they are the hot
 * loops of both. InfluxDB's own limits on times and series keys. And the
 * rules for names InfluxDB 1.x reads back as written (lp_names.c), so
 * that the parser refuses what the encoder would refuse, in the same words. */
#ifndef GW_LP_INTERNAL_H
#define GW_LP_INTERNAL_H

#include "lineproto.h"

#include <stdint.h>
#include <string.h>

/* InfluxDB keeps the two lowest and the highest int64 nanoseconds for itself
 * (models/time.go: MinNanoTime, MaxNanoTime) and answers 400 for them, so
 * they are refused here, at ingest, where the line number is known. */
#define TIME_MIN (INT64_MIN + 2)
#define TIME_MAX (INT64_MAX - 1)

/* InfluxDB refuses series keys (measurement, tags and a field key) longer
 * than this (models.MaxKeyLength). */
#define MAX_KEY_LEN 65535

/* How much of an offending token a message quotes (gw_lp_show). */
#define SHOW_MAX 40

/* ------------------------------------------------------------------ */
/* Character classes */

enum {
    C_MEAS_STOP = 0x01,  /* ends a measurement: , space; \ and NUL (to look at) */
    C_KEY_STOP = 0x02,   /* ends a tag key, tag value or field key: , space =; \ and NUL */
    C_MEAS_ESC = 0x04,   /* after a backslash, does not end a measurement; the encoder
                            escapes these in one */
    C_KEY_ESC = 0x08,    /* ... a tag key or value; what unescapeTag unescapes there */
    C_STR_ESC = 0x10,    /* what a backslash escapes in string field values */
    C_VAL_STOP = 0x20,   /* ends a number, boolean or timestamp */
    C_NL = 0x40,         /* a newline: no name may hold one */
    C_SPACE = 0x80,      /* ends a timestamp */
    C_NAME_UNESC = 0x100, /* what InfluxDB's escape.Unescape takes a backslash off when it
                            reads a measurement or a field key; what a field key is
                            written with */
    C_NUL = 0x200,       /* refused in every name and string value */
    C_ODD = 0x400,       /* what only gw_lp_bad_name can judge in a name: \ newline NUL */
    C_HIGH = 0x800,      /* not ASCII: a series or field key holding one must be UTF-8 */
};

static const uint16_t cls[256] = {
    [' '] = C_MEAS_STOP | C_KEY_STOP | C_MEAS_ESC | C_KEY_ESC | C_VAL_STOP | C_SPACE | C_NAME_UNESC,
    [','] = C_MEAS_STOP | C_KEY_STOP | C_MEAS_ESC | C_KEY_ESC | C_VAL_STOP | C_NAME_UNESC,
    ['='] = C_KEY_STOP | C_KEY_ESC | C_NAME_UNESC,
    ['\\'] = C_MEAS_STOP | C_KEY_STOP | C_STR_ESC | C_ODD,
    ['"'] = C_STR_ESC | C_NAME_UNESC,
    ['\n'] = C_NL | C_ODD,
    ['\0'] = C_MEAS_STOP | C_KEY_STOP | C_NUL | C_ODD,
    [0x80 ... 0xFF] = C_HIGH,
};

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* What InfluxDB's skipWhitespace skips at the start of a line and before
 * the field set and the timestamp. */
static inline int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\0';
}

/* The bytes that belong to some class. */
static const char specials[] = {' ', ',', '=', '\\', '"', '\n', '\0'};
#define NSPECIALS sizeof(specials)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* High bit set in the bytes of w equal to c. Bytes after the first match
 * may be flagged spuriously (borrow), so only the lowest flag is used. */
static inline uint64_t byte_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

/* Flags for the bytes of w in class c; c is a constant at every call, so
 * the loop unrolls and the tests of cls[] fold away. */
static inline uint64_t class_mask(uint64_t w, unsigned c)
{
    uint64_t m = c & C_HIGH ? w & HIGHS : 0;
#pragma GCC unroll 8
    for (size_t i = 0; i < NSPECIALS; i++)
        if (cls[(unsigned char)specials[i]] & c)
            m |= byte_eq(w, (unsigned char)specials[i]);
    return m;
}
#else
#define SWAR 0
#endif

#ifdef __SSE2__ /* the x86-64 baseline */
#include <emmintrin.h>
#define VEC 1

/* Bit i set when byte i of v is in class c (constant at every call, so
 * the tests of cls[] fold away): 16 bytes in a dozen instructions. */
static inline __attribute__((always_inline)) unsigned class_bits(__m128i v, unsigned c)
{
    __m128i m = _mm_setzero_si128();
    /* Space (0x20) and NUL are the two bytes b with b & 0xDF == 0: one test
     * for both, as the name scans look for both. */
    int sp_nul = (cls[' '] & c) && (cls[0] & c);

    if (sp_nul)
        m = _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8((char)0xDF)), m);
#pragma GCC unroll 8
    for (size_t i = 0; i < NSPECIALS; i++)
        if ((cls[(unsigned char)specials[i]] & c) && !(sp_nul && (specials[i] == ' ' || !specials[i])))
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(specials[i])));
    /* C_HIGH: the bytes' own high bits. */
    return (unsigned)_mm_movemask_epi8(c & C_HIGH ? _mm_or_si128(m, v) : m);
}
#else
#define VEC 0
#endif

/* The first byte of class c in p..end, or end. Bytes up to lim (>= end,
 * the end of the buffer) may be read: sixteen at a time, this is the
 * parser's inner loop. */
static inline const char *find_class(const char *p, const char *end, const char *lim,
                                     unsigned c)
{
#if VEC
    while (lim - p >= 16) {
        unsigned m = class_bits(_mm_loadu_si128((const __m128i *)p), c);
        if (m) {
            p += __builtin_ctz(m);
            return p < end ? p : end;
        }
        if (end - p <= 16)
            return end;
        p += 16;
    }
#elif SWAR
    (void)lim;
    while (end - p >= 8) {
        uint64_t w, m;
        memcpy(&w, p, 8);
        m = class_mask(w, c);
        if (m)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#else
    (void)lim;
#endif
    while (p < end && !(cls[(unsigned char)*p] & c))
        p++;
    return p;
}
/* Is the run of backslashes that ends right before q (and starts at or
 * after s) odd? Then a backslash pairs with *q. */
static inline int odd_run(const char *s, const char *q)
{
    const char *r = q;

    while (r > s && r[-1] == '\\')
        r--;
    return (q - r) & 1;
}

/* gw_str_eq for keys, which are never empty: the first byte settles most
 * comparisons without a call to memcmp. */
static inline int same_key(gw_str_t a, gw_str_t b)
{
    return a.n == b.n && a.p[0] == b.p[0] && memcmp(a.p, b.p, a.n) == 0;
}

/* Up to this many tags (or fields), duplicates are found pairwise; beyond,
 * by sorting a copy of the keys: a line of 50,000 tags must not cost 10^9
 * comparisons (the hardening specs send such lines). */
#define DUP_LINEAR 32

/* ------------------------------------------------------------------ */
/* Names (lp_names.c) */

/* The kinds of names, by the rules InfluxDB reads them with. */
enum {
    N_SERIES, /* measurement: a delimiter right after a backslash is kept;
                 escape.Unescape takes the backslash off , space = " */
    N_TAG,    /* tag key or value: the same, unescapeTag takes it off , space = */
    N_FIELD,  /* field key: a backslash pairs with any byte (scanFields), and
                 escape.Unescape takes it off , space = " */
};

static inline int is_time(gw_str_t s)
{
    return gw_str_eq(s, GW_STR_LIT("time"));
}

/* A printable, truncated copy of the token s..s+n for a message, in buf
 * (SHOW_MAX + 4 bytes): cut on a UTF-8 boundary, control bytes as '?',
 * "..." if cut. Returns buf. */
const char *gw_lp_show(char *buf, const char *s, size_t n);

/* Why name s of kind k (N_*) cannot be stored faithfully in InfluxDB 1.x,
 * or NULL: a static text that completes "<kind> \"<name>\" ...". */
const char *gw_lp_bad_name(gw_str_t s, int kind);

/* qsort comparison of gw_str_t keys (bytewise, as InfluxDB sorts). */
int gw_lp_cmp_keys(const void *a, const void *b);

/* Sort keys[0..n) and return the first duplicate, or NULL. */
const gw_str_t *gw_lp_sorted_dup(gw_str_t *keys, uint32_t n);

#endif
