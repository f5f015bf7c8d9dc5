/* json.c — JSON ingest for POST /v1/points, see json.h.
 *
 * A streaming parse with our own validating tokenizer: no DOM, no tree. We
 * build the gw_point_t of each array element directly in the arena as its
 * tokens are read. Numbers keep their JSON text, so integer vs float is
 * decided by syntax, int64 and uint64 are exact, and integers beyond int64
 * need no second pass. Strings are read in place in the body, or unescaped
 * into the arena; whatever a point keeps is in the arena (json.h).
 *
 * Why not a library: jansson spent about 87% of a JSON ingest building and
 * freeing its DOM, and YAJL's tokenizer alone cost three times the whole
 * line-protocol parse (bench/json_choice.md has the figures). The grammar is
 * small and fixed (RFC 8259); the tokenizer below reads exactly it.
 *
 * The rules are jansson's, which this file used first, kept exactly:
 *  - UTF-8 as jansson reads it (no overlong forms, no surrogates, nothing
 *    above U+10FFFF); white space is space, tab, newline and return only;
 *    no raw control characters in strings; no lone surrogate escapes; no
 *    real number that overflows a double; nesting at most jansson's 2048
 *    deep.
 *  - A body that is not JSON is rejected as a whole: points already built
 *    are dropped and per-point errors are forgotten. Its message says what
 *    was wrong and where: the line and column (in characters) of the first
 *    byte that is not JSON, and the text there (body_error).
 *  - Time as a number keeps its microseconds exactly and rounds what lies
 *    beyond.
 * One difference, on purpose: jansson skips a raw NUL byte that directly
 * follows a number, true, false or null (a quirk of its lexer's pushback);
 * here any raw NUL is a body error, as it is anywhere else in JSON.
 *
 * What a point may hold is ours, as in line protocol (lineproto.h):
 *  - \u0000 is read, but a NUL byte in a series, tag or field (key or
 *    value) rejects the point;
 *  - a key repeated in "tags" or "fields" takes its last value, as JSON
 *    parsers and InfluxDB do; repeated in the point object itself (two
 *    "series"...) it rejects the point; elsewhere it does not matter;
 *  - a field named time is dropped, counted and logged, as in line
 *    protocol. */
#include "json.h"

#include "hash.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* jansson's JSON_PARSER_MAX_DEPTH: the top-level value is at depth 1. */
#define MAX_DEPTH 2048

#define KEY_SHOW 64 /* bytes of a key or value quoted in an error message */

/* How much a body error quotes of the text where it is: characters, with
 * control characters and bytes that are not UTF-8 written \xHH. */
#define NEAR_SHOW 24

/* Where a value must start, and does not. */
#define WANT_VALUE "expected a value (an object, array, string, number, true, false or null)"

#define NS_PER_SEC 1000000000LL

static int show(size_t n)
{
    return (int)(n > KEY_SHOW ? KEY_SHOW : n);
}

/* Is k the 4- or 6-byte literal w? Loads, never a call: this runs for
 * every key of every point. */
static inline __attribute__((always_inline)) int key_is(gw_str_t k, const char *w, size_t n)
{
    uint32_t a, b;
    uint16_t c, d;

    if (k.n != n)
        return 0;
    memcpy(&a, k.p, 4);
    memcpy(&b, w, 4);
    if (a != b || n == 4)
        return a == b;
    memcpy(&c, k.p + 4, 2);
    memcpy(&d, w + 4, 2);
    return c == d;
}
#define KEY_IS(k, w) key_is((k), (w), sizeof(w) - 1)

/* ---- integer texts and positions ---------------------------------------- */

/* Parse a decimal integer text as uint64. 0, or -1 when negative or too big. */
static int text_to_u64(gw_str_t t, uint64_t *out)
{
    uint64_t u = 0;

    if (t.n == 0 || t.p[0] == '-')
        return -1;
    for (size_t i = 0; i < t.n; i++) {
        if (__builtin_mul_overflow(u, 10, &u) ||
            __builtin_add_overflow(u, (uint64_t)(t.p[i] - '0'), &u))
            return -1;
    }
    *out = u;
    return 0;
}

/* Where byte off of body is: 1-based line, and column in UTF-8 characters
 * (off may be the length: just past the last character). */
static void line_col(const char *body, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\n') {
            ++*line;
            *col = 1;
        } else if ((c & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

/* ---- time --------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), T and Z in
 * either case, up to 9 fractional digits kept exactly. Returns 0; or -1 with
 * *why set; or -2 when valid but outside int64 nanoseconds. */
static int rfc3339_to_ns(const char *s, size_t n, int64_t *ns, const char **why)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, off = 0;
    int64_t frac = 0, t;
    size_t i = 19;

    *why = "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)";
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return -1;
    if (s[i] == '.') {
        int nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd == 9) {
                *why = "more than 9 fractional digits";
                return -1;
            }
            frac = frac * 10 + (s[i] - '0');
        }
        if (nd == 0)
            return -1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    if (i == n)
        return -1;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (n - i != 6 || s[i + 3] != ':' || (oh = digits(s + i + 1, 2)) < 0 ||
            (om = digits(s + i + 4, 2)) < 0)
            return -1;
        if (oh > 23 || om > 59) {
            *why = "offset out of range";
            return -1;
        }
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    if (mo < 1 || mo > 12) {
        *why = "month out of range";
        return -1;
    }
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        *why = "day out of range";
        return -1;
    }
    /* 60 would be a leap second, which Unix time cannot name. */
    if (h > 23 || mi > 59 || sec > 59) {
        *why = "hour, minute or second out of range";
        return -1;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (t < 0 && frac > 0) {
        t++; /* so that t * 10^9 can reach INT64_MIN */
        frac -= NS_PER_SEC;
    }
    if (__builtin_mul_overflow(t, NS_PER_SEC, &t) || __builtin_add_overflow(t, frac, &t))
        return -2;
    *ns = t;
    return 0;
}

/* Unix seconds as a double to nanoseconds, rounded to the microsecond: near
 * today a double is good to about 0.24 µs, so a seventh digit is noise while
 * the first six come back exactly (the error stays below 0.5 µs up to 2^33 s,
 * the year 2242). Returns 0, or -1 when out of range. */
static int real_to_ns(double t, int64_t *ns)
{
    double sec;
    int64_t s, r, frac;

    if (!(t > -9223372037.0 && t < 9223372037.0))
        return -1;
    sec = floor(t);
    s = (int64_t)sec;
    frac = llround((t - sec) * 1e6) * 1000;
    if (s < 0 && frac > 0) {
        s++; /* so that s * 10^9 can reach INT64_MIN */
        frac -= NS_PER_SEC;
    }
    if (__builtin_mul_overflow(s, NS_PER_SEC, &r) || __builtin_add_overflow(r, frac, &r))
        return -1;
    *ns = r;
    return 0;
}

/* What time values int64 nanoseconds can hold, for messages. */
#define TIME_RANGE "out of range (int64 nanoseconds: 1677-09-21 to 2262-04-11)"

/* ---- number texts ------------------------------------------------------- */

/* The shortest text that reads back as the same double: 1.5 -> "1.5",
 * 0.1 -> "0.1" (not "0.10000000000000001"), 1e3 -> "1000". */
static size_t real_text(double d, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return (size_t)n;
}

/* ---- the parse state ---------------------------------------------------- */

/* What the innermost open value is, as a frame on our stack. */
enum {
    F_TOP = 0, /* before the top-level value (fr[0], always there) */
    F_ARRAY,   /* the top-level array: each element is a point */
    F_POINT,   /* a point object */
    F_TAGS,    /* a point's "tags" object */
    F_FIELDS,  /* a point's "fields" object */
    F_SKIP,    /* any other object or array: read, checked, dropped */
};

/* Which key of a point the next value belongs to. */
enum { K_NONE = 0, K_SERIES, K_TIME, K_TAGS, K_FIELDS };

/* Kinds of JSON value, for dispatch and for "null is not a ..." messages. */
enum { V_NULL = 0, V_BOOL, V_NUM, V_STR, V_MAP, V_ARR };

typedef struct {
    uint8_t kind;   /* F_* */
    uint8_t is_map; /* an object: keys[kbase..nkeys) are its keys so far */
    uint32_t kbase;
    uint64_t seen;  /* a bit per key (key_bit): a key whose bit is clear is new */
} frame_t;

/* A number token, classified, and its digits as lex_number read them. */
typedef struct {
    const char *t; /* borrowed: the JSON text, in the body */
    size_t n;
    int is_int;    /* no fraction or exponent */
    int big;       /* an integer beyond int64: only t is meaningful */
    int64_t i;     /* is_int && !big */
    double d;      /* !is_int, once !pending */
    int pending;   /* d is still to be read (see real_of) */
    uint64_t ip;   /* the integer part: exact when nd <= 19, else wrapped */
    uint64_t m;    /* all digits as one integer: exact when nd + nf <= 19 */
    uint32_t nd;   /* digits before the point */
    uint32_t nf;   /* digits after it */
    int32_t ex;    /* the exponent (its magnitude capped near 10^6) */
} num_t;

/* The tags (or fields) of the current point, built in place in the arena:
 * the items from start to cur, in a block with room up to end. */
typedef struct {
    char *start; /* borrowed (arena) */
    char *cur;
    char *end;
} run_t;

/* A growable array of fixed-size items, malloc'd, freed by the parse. */
typedef struct {
    void *v; /* owned */
    uint32_t n;
    uint32_t cap;
} vec_t;

typedef struct {
    const char *body; /* borrowed */
    size_t len;
    const char *tok;  /* borrowed: start of the token being handled */
    gw_arena_t *a;    /* borrowed */
    gw_result_t *res; /* borrowed */
    gw_points_t *out; /* borrowed */
    int64_t now_ns;

    vec_t fr;         /* frame_t: open values, fr[0] is F_TOP */
    frame_t *frame;   /* borrowed: the innermost, &fr[fr.n - 1] */
    vec_t keys;       /* gw_str_t: keys of the open objects (borrow body or arena) */
    run_t tags;       /* gw_tag_t: the current point's tags so far */
    run_t fields;     /* gw_field_t: the current point's fields so far */

    gw_point_t pt;    /* the point being built */
    int rejected;     /* pt is rejected: read the rest of it, keep nothing */
    int has_series;
    int has_time;
    int pkey;         /* K_*: the point key whose value comes next */
    gw_str_t key;     /* the tag or field key whose value comes next (body or arena) */
    int key_again;    /* ... appeared before in its object */
    int drop_field;   /* ... is time: its value is dropped */
    int run_dups;     /* the open "tags" or "fields" object repeats a key */
    uint32_t time_dropped; /* fields named time dropped from the current point */
    int str_nul;      /* a string read since the point began holds a NUL byte (from
                         \u0000): it rejects the point where it lands (a string
                         read without a check rejects its point anyway) */
    uint32_t index;   /* of the point being parsed */
    uint32_t nelem;   /* elements of the top-level array seen */
    int top;          /* V_*: kind of a top-level scalar, -1 when none */

    uint32_t *kset;   /* owned: hash index of the keys of big objects (see key_seen) */
    uint32_t kset_cap;
    uint32_t kset_used;

    char *slab;       /* borrowed (arena): where the next string goes */
    char *slab_end;

    int err;          /* -ENOMEM, or 1: a body error, described later */
    const char *why;  /* borrowed (static): what is wrong */
    size_t why_at;    /* and the byte offset where */
} parse_t;

static __attribute__((noinline)) int vec_grow(vec_t *v, size_t size)
{
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    void *nv = realloc(v->v, (size_t)cap * size);

    if (!nv)
        return -ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

static inline void *vec_push(vec_t *v, size_t size)
{
    if (v->n == v->cap && vec_grow(v, size))
        return NULL;
    return (char *)v->v + (size_t)v->n++ * size;
}

#define FRAME(ps) ((ps)->frame)

/* Room for one more item in r, in a new block (with r's items moved there)
 * when the current one is full. 0 or -ENOMEM. */
static __attribute__((noinline)) int run_grow(parse_t *ps, run_t *r, size_t size)
{
    size_t used = (size_t)(r->cur - r->start), cap = used * 2 > 64 * size ? used * 2 : 64 * size;
    char *b = gw_arena_alloc(ps->a, cap);

    if (!b)
        return -ENOMEM;
    if (used)
        memcpy(b, r->start, used);
    r->start = b;
    r->cur = b + used;
    r->end = b + cap;
    return 0;
}

static inline void *run_push(parse_t *ps, run_t *r, size_t size)
{
    char *p;

    if ((size_t)(r->end - r->cur) < size && run_grow(ps, r, size))
        return NULL;
    p = r->cur;
    r->cur = p + size;
    return p;
}

/* The items of r as an array, NULL when none; and their number. */
static inline void *run_take(const run_t *r, size_t size, uint32_t *n)
{
    *n = (uint32_t)((size_t)(r->cur - r->start) / size);
    return *n ? r->start : NULL;
}

/* Stop the parse at p: the body is not JSON, for the reason why (body_error
 * says where, and quotes the text there). Returns 0, what a handler returns
 * to stop. Cold, like every error path here: kept out of the lexers' code,
 * the JSON parse costs some 45 instructions a point less. */
static __attribute__((cold, noinline)) int body_bad_at(parse_t *ps, const char *p, const char *why)
{
    if (!ps->err) {
        ps->err = 1;
        ps->why = why;
        ps->why_at = (size_t)(p - ps->body);
    }
    return 0;
}

static int body_bad(parse_t *ps, const char *why)
{
    return body_bad_at(ps, ps->tok, why);
}

static int no_memory(parse_t *ps)
{
    ps->err = -ENOMEM;
    return 0;
}

/* Reject the current point (once) and read on. Returns 1, the handler
 * return for "go on". */
__attribute__((format(printf, 2, 3))) static int reject(parse_t *ps, const char *fmt, ...)
{
    char msg[sizeof(ps->res->err_msg)];
    va_list ap;

    ps->rejected = 1;
    if (!gw_result_wants_msg(ps->res, ps->index)) {
        gw_result_reject(ps->res, GW_WHERE_INDEX, ps->index, "%s", "");
        return 1;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_result_reject(ps->res, GW_WHERE_INDEX, ps->index, "%s", msg);
    return 1;
}

/* A name or value of the point holds a NUL byte (\u0000): "tags.k: the
 * value holds a NUL byte...". Out of line: the handlers are inlined many
 * times. Returns 1. */
static __attribute__((noinline)) int reject_nul(parse_t *ps, const char *where, gw_str_t key,
                                                const char *what)
{
    return reject(ps, "%s%.*s: %s holds a NUL byte (\\u0000), which luagw refuses", where,
                  show(key.n), key.p, what);
}

/* "null is not a field value", "an object is not a tag value"... */
static const char *what(int kind)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string",
                                        "an object", "an array"};
    return names[kind];
}

/* ---- strings ------------------------------------------------------------ */

/* Room for n bytes of string in the arena. Strings need no alignment, so
 * they are packed into slabs taken from the arena, a bump of their own: one
 * arena call per STR_SLAB bytes instead of one per string. NULL on ENOMEM. */
#define STR_SLAB 4096

static __attribute__((noinline)) char *new_slab(parse_t *ps, size_t n)
{
    char *p;

    if (n > STR_SLAB / 4)
        return gw_arena_alloc(ps->a, n); /* a big string gets its own */
    if (!(p = gw_arena_alloc(ps->a, STR_SLAB)))
        return NULL;
    ps->slab = p + n;
    ps->slab_end = p + STR_SLAB;
    return p;
}

static inline char *alloc_str(parse_t *ps, size_t n)
{
    char *d = ps->slab;

    if ((size_t)(ps->slab_end - d) < n)
        return new_slab(ps, n);
    ps->slab = d + n;
    return d;
}

/* Copy n bytes (n > 0) into the arena. 0 or -ENOMEM. */
static int dup_str(parse_t *ps, const char *p, size_t n, gw_str_t *out)
{
    char *d = alloc_str(ps, n);

    if (!d)
        return -ENOMEM;
    memcpy(d, p, n);
    *out = (gw_str_t){d, n};
    return 0;
}

/* Make *s, which a point keeps, outlive the body: a slice of the body is
 * copied into the arena (json.h promises that); a string unescaped into the
 * arena, or a literal, stays where it is. 0 or -ENOMEM. */
static inline int keep_str(parse_t *ps, gw_str_t *s)
{
    size_t n = s->n;

    if ((uintptr_t)s->p - (uintptr_t)ps->body >= ps->len)
        return 0;
    if (n == 0) {
        *s = (gw_str_t){"", 0};
        return 0;
    }
#ifdef __SSE2__
    /* Most keys and values are short: one 16-byte move, when the body and
     * the slab both have 16 bytes there, instead of a call to memcpy. */
    if (n <= 16 && ps->body + ps->len - s->p >= 16 && ps->slab_end - ps->slab >= 16) {
        char *d = ps->slab;
        _mm_storeu_si128((__m128i *)(void *)d, _mm_loadu_si128((const __m128i *)(const void *)s->p));
        ps->slab = d + n;
        s->p = d;
        return 0;
    }
#endif
    return dup_str(ps, s->p, n, s);
}

/* Length of the UTF-8 sequence whose lead byte (>= 0x80) is at s, as
 * jansson reads UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF. 0 when invalid or cut short by e. */
static size_t utf8_len(const unsigned char *s, const unsigned char *e)
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

/* body_bad_at for lexers: returns NULL. */
static __attribute__((cold, noinline)) const char *bad_at(parse_t *ps, const char *p, const char *why)
{
    body_bad_at(ps, p, why);
    return NULL;
}

/* Stop the parse at p, where a string whose opening quote is at q stops
 * being one: the end of the body (the error is then placed at q), a raw
 * control character or a byte that is not UTF-8. Returns NULL. */
static __attribute__((cold, noinline)) const char *string_error(parse_t *ps, const char *q, const char *p)
{
    if (p == ps->body + ps->len)
        return bad_at(ps, q, "unterminated string (no closing quote before the end of the body)");
    if ((unsigned char)*p < 0x20)
        return bad_at(ps, p, "control character in a string (write it as an escape, such as \\n or \\u0001)");
    return bad_at(ps, p, "invalid UTF-8 in a string");
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
static int hex4(const char *p)
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
 * lone surrogates; \u0000 is noted in ps->str_nul, for the point. */
static const char *unescape_u(parse_t *ps, const char *p, const char *q, char **d)
{
    char *o = *d;
    int cp = q - p >= 6 ? hex4(p + 2) : -1, lo;

    if (cp < 0)
        return bad_at(ps, p, "invalid escape: \\u takes four hex digits");
    p += 6;
    ps->str_nul |= cp == 0;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = hex4(p + 2)) < 0xdc00 ||
            lo > 0xdfff)
            return bad_at(ps, p - 6, "invalid Unicode escape: a high surrogate (\\uD800 to \\uDBFF) "
                                     "not followed by a low one (\\uDC00 to \\uDFFF)");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return bad_at(ps, p - 6, "invalid Unicode escape: a low surrogate (\\uDC00 to \\uDFFF) "
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
static __attribute__((noinline)) const char *unescape(parse_t *ps, const char *s, const char *p,
                                                      gw_str_t *out)
{
    static const char simple[256] = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
                                     ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'};
    const char *e = ps->body + ps->len, *q = p;
    char *d, *d0;
    size_t k;

    /* The closing quote is the first one no backslash escapes; the text up
     * to it bounds the unescaped size. */
    while (q < e && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= e)
        return string_error(ps, s - 1, e);
    if (!(d0 = alloc_str(ps, (size_t)(q - s)))) {
        no_memory(ps);
        return NULL;
    }
    memcpy(d0, s, (size_t)(p - s));
    d = d0 + (p - s);
    while (p < q) {
        if (*p == '\\') {
            /* p + 1 < q: the scan above stepped over the escaped byte. */
            unsigned char c = (unsigned char)p[1];
            if (c == 'u') {
                if (!(p = unescape_u(ps, p, q, &d)))
                    return NULL;
            } else if (simple[c]) {
                *d++ = simple[c];
                p += 2;
            } else {
                return bad_at(ps, p, "invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)");
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
            return string_error(ps, s - 1, p);
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
static inline const char *lex_string(parse_t *ps, const char *p, gw_str_t *out)
{
    const char *s = ++p, *e = ps->body + ps->len;
    size_t k;

    for (;;) {
        p = str_stop(p, e);
        if (p < e && *p == '"') {
            *out = (gw_str_t){s, (size_t)(p - s)};
            return p + 1;
        }
        if (p < e && *p == '\\')
            return unescape(ps, s, p, out);
        /* the end, a control character or a byte >= 0x80 */
        if (p == e || !(k = utf8_len((const unsigned char *)p, (const unsigned char *)e)))
            return string_error(ps, s - 1, p);
        p += k;
    }
}

/* ---- real numbers ------------------------------------------------------ */

/* num's double, as strtod would give it, when that takes one exact
 * operation: a mantissa below 2^53 (exact in a double) and a power of ten up
 * to 10^22 (exact too), so that the one multiplication or division rounds
 * correctly (Clinger's fast path). The common case: 0.0123, 1700000000.5,
 * 1.5e3. Returns 0, or -1 for strtod to do. */
static int fast_real(num_t *num)
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
static int may_overflow(const num_t *num)
{
    const char *t = num->t + (num->t[0] == '-');

    return (t[0] == '0' ? 0 : (long)num->nd) + num->ex > 300;
}

/* Read num's double with strtod, which wants a terminated text: a number is
 * short, unless someone writes a thousand digits. 0, or -1 (ENOMEM, noted
 * in ps). */
static int strtod_text(parse_t *ps, num_t *num)
{
    char buf[64], *c = num->n < sizeof(buf) ? buf : malloc(num->n + 1);

    if (!c) {
        no_memory(ps);
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

/* num's value as a double, what strtod gives. 0, or -1 (ENOMEM, noted in
 * ps). */
static int real_of(parse_t *ps, num_t *num)
{
    if (!num->pending || !fast_real(num))
        return 0;
    return strtod_text(ps, num);
}

static inline int is_digit(const char *p, const char *e)
{
    return p < e && (unsigned char)(*p - '0') < 10;
}

/* Read the number at p (a '-' or a digit) into *num, by the JSON grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. An integer is converted
 * here; a real's double is left to real_of (strtod is slow, and most reals
 * are only range-checked or kept as text), unless it might overflow, which
 * makes the whole body bad. Returns the position past it, or NULL
 * (recorded). */
static inline __attribute__((always_inline)) const char *lex_number(parse_t *ps, const char *p,
                                                                    num_t *num)
{
    const char *t = p, *e = ps->body + ps->len;
    uint64_t m = 0;
    uint32_t nd = 0, nf = 0;
    int32_t ex = 0;
    int exp = 0, neg = 0;

    p += *p == '-';
    if (!is_digit(p, e))
        return bad_at(ps, t, p == t ? WANT_VALUE : "invalid number: a digit must follow '-'");
    /* m takes every digit: past 19 it wraps, and num_t says it is unused. */
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
            return bad_at(ps, t, "invalid number: a digit must follow '.'");
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        exp = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            neg = *p++ == '-';
        if (!is_digit(p, e))
            return bad_at(ps, t, "invalid number: its exponent has no digit");
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
            if (strtod_text(ps, num))
                return NULL;
            if (isinf(num->d)) {
                body_bad(ps, "real number overflow");
                return NULL;
            }
        }
    } else if (nd > 19 || m > (uint64_t)INT64_MAX + (t[0] == '-')) {
        num->big = 1;
    } else {
        num->i = t[0] == '-' ? (int64_t)(0 - m) : (int64_t)m;
    }
    return p;
}

/* ---- time values ------------------------------------------------------- */

/* Unix seconds written d+.d{1,6} with fewer than 2^33 whole seconds, to
 * nanoseconds, exactly: the common case, and what real_to_ns gives for it
 * (see there). Returns 0, or -1 for anything else. */
static int text_to_ns(const num_t *num, int64_t *ns)
{
    static const int64_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int64_t s = (int64_t)num->ip, us;

    /* Nothing but digits, a point and digits: no exponent. */
    if (num->is_int || num->n != num->nd + num->nf + 1 + (num->t[0] == '-') || num->nd > 10 ||
        num->nf > 6 || s >= ((int64_t)1 << 33))
        return -1;
    us = (int64_t)(num->m - num->ip * (uint64_t)p10[num->nf]) * p10[6 - num->nf];
    *ns = (s * 1000000 + us) * 1000;
    if (num->t[0] == '-')
        *ns = -*ns;
    return 0;
}

static int on_time(parse_t *ps, int kind, num_t *num, const char *s, size_t n)
{
    int64_t *ns = &ps->pt.time_ns;
    const char *why;
    int rc;

    ps->has_time = 1;
    switch (kind) {
    case V_NUM:
        if (num->big)
            return reject(ps, "time: %.*s is " TIME_RANGE, show(num->n), num->t);
        if (num->is_int) {
            if (!__builtin_mul_overflow(num->i, NS_PER_SEC, ns))
                return 1;
            return reject(ps, "time: %" PRId64 " is " TIME_RANGE, num->i);
        }
        if (!text_to_ns(num, ns))
            return 1;
        if (real_of(ps, num))
            return 0;
        if (!real_to_ns(num->d, ns))
            return 1;
        return reject(ps, "time: %.17g is " TIME_RANGE, num->d);
    case V_STR:
        rc = rfc3339_to_ns(s, n, ns, &why);
        if (rc == -2)
            return reject(ps, "time: \"%.*s\" is " TIME_RANGE, show(n), s);
        if (rc)
            return reject(ps, "time: \"%.*s\" is not an RFC 3339 time: %s", show(n), s, why);
        return 1;
    case V_NULL:
        return reject(ps, "time: null is not a time (leave the key out for the time of receipt)");
    default:
        return reject(ps, "time: %s is not a time (Unix seconds or an RFC 3339 string)",
                      what(kind));
    }
}

/* ---- tag and field values ---------------------------------------------- */

static inline __attribute__((always_inline)) int on_tag(parse_t *ps, int kind, num_t *num, const char *s, size_t n, int b)
{
    gw_str_t val;
    gw_tag_t *t;
    char buf[32];

    switch (kind) {
    case V_STR:
        val = (gw_str_t){s, n};
        break;
    case V_NUM:
        if (num->big) {
            val = (gw_str_t){num->t, num->n}; /* the JSON text, as for any number */
        } else if (num->is_int) {
            /* An integer token is already the text of its value, but "-0". */
            val = num->i == 0 ? GW_STR_LIT("0") : (gw_str_t){num->t, num->n};
        } else {
            if (real_of(ps, num))
                return 0;
            val = (gw_str_t){buf, real_text(num->d, buf, sizeof(buf))};
        }
        break;
    case V_BOOL:
        val = b ? GW_STR_LIT("true") : GW_STR_LIT("false");
        break;
    default:
        return reject(ps, "tags.%.*s: %s is not a tag value (string, number or boolean)",
                      show(ps->key.n), ps->key.p, what(kind));
    }
    if (kind == V_STR && ps->str_nul)
        return reject_nul(ps, "tags.", ps->key, "the value");
    /* Influx has no empty tag values: "" means the tag is absent; after the
     * same key, kept as a mark that drops the earlier value (on_end). */
    if (val.n == 0 && !ps->key_again)
        return 1;
    if ((val.p == buf ? dup_str(ps, buf, val.n, &val) : keep_str(ps, &val)) ||
        !(t = run_push(ps, &ps->tags, sizeof(*t))))
        return no_memory(ps);
    t->key = ps->key;
    t->val = val;
    if (keep_str(ps, &t->key))
        return no_memory(ps);
    return 1;
}

static inline __attribute__((always_inline)) int on_field(parse_t *ps, int kind, num_t *num, const char *s, size_t n, int b)
{
    gw_field_t f = {0}, *fp;

    switch (kind) {
    case V_STR:
        if (ps->str_nul)
            return reject_nul(ps, "fields.", ps->key, "the value");
        f.type = GW_FIELD_STRING;
        f.v.s = (gw_str_t){s, n};
        if (keep_str(ps, &f.v.s))
            return no_memory(ps);
        break;
    case V_NUM:
        if (num->big) {
            if (text_to_u64((gw_str_t){num->t, num->n}, &f.v.u))
                return reject(ps, "fields.%.*s: %.*s is out of range (int64 or uint64)",
                              show(ps->key.n), ps->key.p, show(num->n), num->t);
            f.type = GW_FIELD_UINT;
        } else if (num->is_int) {
            f.type = GW_FIELD_INT;
            f.v.i = num->i;
        } else {
            if (real_of(ps, num))
                return 0;
            f.type = GW_FIELD_FLOAT;
            f.v.f = num->d;
        }
        break;
    case V_BOOL:
        f.type = GW_FIELD_BOOL;
        f.v.b = b;
        break;
    default:
        return reject(ps, "fields.%.*s: %s is not a field value (number, string or boolean)",
                      show(ps->key.n), ps->key.p, what(kind));
    }
    if (ps->drop_field) { /* time: InfluxDB drops it */
        ps->time_dropped++;
        return 1;
    }
    f.key = ps->key;
    if (keep_str(ps, &f.key) || !(fp = run_push(ps, &ps->fields, sizeof(*fp))))
        return no_memory(ps);
    *fp = f;
    return 1;
}

/* ---- points ------------------------------------------------------------- */

static void begin_point(parse_t *ps)
{
    memset(&ps->pt, 0, sizeof(ps->pt));
    ps->rejected = 0;
    ps->has_series = 0;
    ps->has_time = 0;
    ps->pkey = K_NONE;
    ps->time_dropped = 0;
    ps->str_nul = 0;
}

/* The time field of a point is dropped, as InfluxDB does without a word:
 * here it is counted (luagw_time_fields_dropped_total) and logged. */
static void note_time_dropped(parse_t *ps)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;

    GW_COUNT(time_fields_dropped, ps->time_dropped);
    if (gw_log_enabled(GW_LOG_WARN))
        gw_log_limited(&lim, 10, GW_LOG_WARN, "dropped a field named time, as InfluxDB does",
                       "format=json index=%u series=\"%.*s\"", ps->index, show(ps->pt.series.n),
                       ps->pt.series.p);
}

static int end_point(parse_t *ps)
{
    gw_point_t *p;

    if (ps->rejected)
        return 1;
    if (!ps->has_series)
        return reject(ps, "series: missing (a point needs a non-empty string \"series\")");
    if (!ps->has_time)
        ps->pt.time_ns = ps->now_ns;
    if (ps->time_dropped)
        note_time_dropped(ps);
    ps->pt.src = ps->index;
    if (!(p = gw_points_push(ps->out)))
        return no_memory(ps);
    *p = ps->pt;
    return 1;
}

static inline __attribute__((always_inline)) int on_point_value(parse_t *ps, int kind, num_t *num, const char *s, size_t n,
                          frame_t *push)
{
    switch (ps->pkey) {
    case K_SERIES:
        if (kind != V_STR)
            return reject(ps, "series: %s is not a series name (a non-empty string)",
                          what(kind));
        if (n == 0)
            return reject(ps, "series: must not be empty");
        if (ps->str_nul)
            return reject_nul(ps, "series", GW_STR_LIT(""), "the name");
        ps->pt.series = (gw_str_t){s, n};
        if (keep_str(ps, &ps->pt.series))
            return no_memory(ps);
        ps->has_series = 1;
        return 1;
    case K_TIME:
        return on_time(ps, kind, num, s, n);
    case K_TAGS:
    case K_FIELDS:
        if (kind == V_NULL)
            return 1; /* what Go and others write for an empty map */
        if (kind != V_MAP)
            return ps->pkey == K_TAGS
                       ? reject(ps, "tags: %s is not an object of tags", what(kind))
                       : reject(ps, "fields: %s is not an object of fields", what(kind));
        push->kind = ps->pkey == K_TAGS ? F_TAGS : F_FIELDS;
        ps->run_dups = 0;
        if (ps->pkey == K_TAGS)
            ps->tags.start = ps->tags.cur;
        else
            ps->fields.start = ps->fields.cur;
        return 1;
    }
    return 1; /* K_NONE: cannot happen, a key comes first */
}

/* ---- handlers, one per token --------------------------------------------- */

/* Every value goes through here: kind, and its number, string or boolean.
 * Returns 1 to go on, 0 to stop the parse. */
static inline __attribute__((always_inline)) int on_value(parse_t *ps, int kind, num_t *num, const char *s, size_t n, int b)
{
    frame_t *f = FRAME(ps), push = {F_SKIP, kind == V_MAP, 0, 0};

    if (ps->fr.n > MAX_DEPTH)
        return body_bad(ps, "nested deeper than 2048 arrays and objects (maximum parsing depth reached)");
    switch (f->kind) {
    case F_TOP:
        if (kind == V_MAP) {
            begin_point(ps);
            push.kind = F_POINT;
        } else if (kind == V_ARR) {
            push.kind = F_ARRAY;
        } else {
            ps->top = kind; /* judged once the whole body is known to be JSON */
        }
        break;
    case F_ARRAY:
        ps->index = ps->nelem++;
        if (kind == V_MAP) {
            begin_point(ps);
            push.kind = F_POINT;
        } else {
            reject(ps, "a point must be an object, not %s", what(kind));
        }
        break;
    case F_POINT:
        if (!ps->rejected)
            on_point_value(ps, kind, num, s, n, &push);
        break;
    case F_TAGS:
        if (!ps->rejected)
            on_tag(ps, kind, num, s, n, b);
        break;
    case F_FIELDS:
        if (!ps->rejected)
            on_field(ps, kind, num, s, n, b);
        break;
    default:
        break;
    }
    if (ps->err)
        return 0;
    if (kind == V_MAP || kind == V_ARR) {
        frame_t *nf = vec_push(&ps->fr, sizeof(*nf));
        if (!nf)
            return no_memory(ps);
        push.kbase = ps->keys.n;
        *nf = push;
        ps->frame = nf;
    }
    return 1;
}

/* ---- duplicate keys ------------------------------------------------------ */

/* An object's keys so far are keys[kbase..keys.n). Up to KSET_FROM of them,
 * a linear scan finds a duplicate; past that (a client can send a million
 * keys in one object) they also go into kset, an open-addressing table of
 * 1 + their index in keys. Entries are never removed: one is valid when its
 * index lies in [kbase, keys.n), that is, in the current object, and its key
 * matches. Stale ones are dropped when the table is rebuilt. */
#define KSET_FROM 16

/* One of 64 bits for a key, from its length and its first and last bytes
 * (length and last byte alone mix up "series" and "fields"). */
static inline uint64_t key_bit(gw_str_t k)
{
    unsigned h = k.n ? (unsigned char)k.p[0] + (unsigned char)k.p[k.n - 1] * 5u : 0;

    return (uint64_t)1 << ((h + (unsigned)k.n * 11u) & 63);
}

static void kset_put(parse_t *ps, uint32_t j)
{
    const gw_str_t *k = &((gw_str_t *)ps->keys.v)[j];
    uint32_t mask = ps->kset_cap - 1, i = (uint32_t)gw_hash(k->p, k->n) & mask;

    while (ps->kset[i])
        i = (i + 1) & mask;
    ps->kset[i] = j + 1;
    ps->kset_used++;
}

/* Make room for one more entry: rebuild with the keys of every open object
 * that is in the table (it has more than KSET_FROM keys), plus the range
 * [from, to) of the current one when it is just joining. 0 or -ENOMEM. */
static int kset_room(parse_t *ps, uint32_t from, uint32_t to)
{
    const frame_t *fr = ps->fr.v;
    uint32_t live = to - from, cap = 64, *t;

    if ((ps->kset_used + live + 1) * 2 <= ps->kset_cap)
        return 0;
    /* An open object's keys end where the next open object's begin. */
    for (uint32_t i = ps->fr.n, end = ps->keys.n; i-- > 0;) {
        if (!fr[i].is_map)
            continue;
        if (end - fr[i].kbase > KSET_FROM)
            live += end - fr[i].kbase;
        end = fr[i].kbase;
    }
    while (cap < (live + 1) * 4)
        cap *= 2;
    if (!(t = calloc(cap, sizeof(*t))))
        return -ENOMEM;
    free(ps->kset);
    ps->kset = t;
    ps->kset_cap = cap;
    ps->kset_used = 0;
    for (uint32_t i = ps->fr.n, end = ps->keys.n; i-- > 0;) {
        if (!fr[i].is_map)
            continue;
        if (end - fr[i].kbase > KSET_FROM)
            for (uint32_t j = fr[i].kbase; j < end; j++)
                kset_put(ps, j);
        end = fr[i].kbase;
    }
    return 0;
}

/* key_seen for an object with KSET_FROM keys or more so far. */
static __attribute__((noinline)) int key_seen_many(parse_t *ps, frame_t *f, gw_str_t k)
{
    const gw_str_t *ks = ps->keys.v;
    uint32_t cnt = ps->keys.n - f->kbase, n = ps->keys.n;
    gw_str_t *kp;

    if (cnt <= KSET_FROM) {
        for (uint32_t i = f->kbase; i < n; i++)
            if (ks[i].n == k.n && memcmp(ks[i].p, k.p, k.n) == 0)
                return 1;
    } else {
        uint32_t mask = ps->kset_cap - 1, i = (uint32_t)gw_hash(k.p, k.n) & mask;
        for (; ps->kset[i]; i = (i + 1) & mask) {
            uint32_t j = ps->kset[i] - 1;
            if (j >= f->kbase && j < n && ks[j].n == k.n && memcmp(ks[j].p, k.p, k.n) == 0)
                return 1;
        }
    }
    /* Joining the table at KSET_FROM + 1 keys: put the first ones in too. */
    if (cnt >= KSET_FROM && kset_room(ps, cnt == KSET_FROM ? f->kbase : 0,
                                      cnt == KSET_FROM ? n : 0))
        return -ENOMEM;
    if (!(kp = vec_push(&ps->keys, sizeof(*kp))))
        return -ENOMEM;
    *kp = k;
    if (cnt == KSET_FROM)
        for (uint32_t j = f->kbase; j < n; j++)
            kset_put(ps, j);
    if (cnt >= KSET_FROM)
        kset_put(ps, n);
    return 0;
}

/* Has the current object f a key k already? Then 1; else records k and
 * returns 0; or -ENOMEM. */
static inline int key_seen(parse_t *ps, frame_t *f, gw_str_t k)
{
    const gw_str_t *ks = ps->keys.v;
    uint32_t n = ps->keys.n;
    uint64_t bit;
    gw_str_t *kp;

    if (n - f->kbase >= KSET_FROM)
        return key_seen_many(ps, f, k);
    /* A one-word filter first: the keys of a point, of its tags and of its
     * fields rarely share a bit, so most keys need no compare. */
    bit = key_bit(k);
    if (f->seen & bit) {
        for (uint32_t i = f->kbase; i < n; i++)
            if (ks[i].n == k.n && memcmp(ks[i].p, k.p, k.n) == 0)
                return 1;
    }
    f->seen |= bit;
    if (!(kp = vec_push(&ps->keys, sizeof(*kp))))
        return -ENOMEM;
    *kp = k;
    return 0;
}

/* A key k of the innermost object (in the body or the arena, so it lasts).
 * Returns 1 to go on, 0 to stop the parse. */
static inline __attribute__((always_inline)) int on_map_key(parse_t *ps, gw_str_t k)
{
    frame_t *f = FRAME(ps);
    size_t n = k.n;
    int again;

    if ((again = key_seen(ps, f, k)) < 0)
        return no_memory(ps);
    if (ps->rejected)
        return 1;
    if (ps->str_nul)
        return reject_nul(ps, f->kind == F_TAGS ? "tags" : f->kind == F_FIELDS ? "fields" : "point",
                          GW_STR_LIT(""), "a key");
    switch (f->kind) {
    case F_POINT:
        if (again)
            return reject(ps, "%.*s: the key appears twice in the point", show(n), k.p);
        if (KEY_IS(k, "series"))
            ps->pkey = K_SERIES;
        else if (KEY_IS(k, "time"))
            ps->pkey = K_TIME;
        else if (KEY_IS(k, "tags"))
            ps->pkey = K_TAGS;
        else if (KEY_IS(k, "fields"))
            ps->pkey = K_FIELDS;
        else
            reject(ps, "%.*s: unknown key (a point has series, time, tags and fields)", show(n),
                   k.p);
        break;
    case F_TAGS:
        if (KEY_IS(k, "time"))
            return reject(ps, "tags.time: InfluxDB cannot store a tag named time");
        /* fall through */
    case F_FIELDS:
        ps->key = k;
        ps->key_again = again;
        ps->run_dups |= again;
        ps->drop_field = f->kind == F_FIELDS && KEY_IS(k, "time");
        break;
    }
    return 1;
}

/* Fold the repeated keys of the "tags" or "fields" object that ends (its
 * items in r): a key keeps its last value (gw_keep_last), and a tag whose
 * last value is empty is no tag. 0, or -1 (ENOMEM, noted in ps). */
static __attribute__((noinline)) int keep_last(parse_t *ps, run_t *r, size_t size)
{
    uint32_t n = (uint32_t)((size_t)(r->cur - r->start) / size), bad, k = 0;
    long kept = gw_keep_last(r->start, n, size, ps->a, NULL, &bad);

    if (kept < 0) {
        no_memory(ps);
        return -1;
    }
    if (size == sizeof(gw_tag_t)) {
        gw_tag_t *t = (gw_tag_t *)(void *)r->start;
        for (long i = 0; i < kept; i++)
            if (t[i].val.n)
                t[k++] = t[i];
        kept = k;
    }
    r->cur = r->start + (size_t)kept * size;
    return 0;
}

/* The innermost object or array ends. Returns 1 to go on, 0 to stop. */
static int on_end(parse_t *ps)
{
    frame_t f = *FRAME(ps);

    ps->frame = &((frame_t *)ps->fr.v)[--ps->fr.n - 1];
    if (f.is_map)
        ps->keys.n = f.kbase;
    switch (f.kind) {
    case F_POINT:
        end_point(ps);
        break;
    case F_TAGS:
        if (!ps->rejected && !(ps->run_dups && keep_last(ps, &ps->tags, sizeof(gw_tag_t))))
            ps->pt.tags = run_take(&ps->tags, sizeof(gw_tag_t), &ps->pt.ntags);
        break;
    case F_FIELDS:
        if (!ps->rejected && !(ps->run_dups && keep_last(ps, &ps->fields, sizeof(gw_field_t))))
            ps->pt.fields = run_take(&ps->fields, sizeof(gw_field_t), &ps->pt.nfields);
        break;
    }
    return !ps->err;
}

/* ---- body errors -------------------------------------------------------- */

/* The body is not JSON (the tokenizer or one of our checks said so): one
 * error saying what (why) and where: the line and column (in characters)
 * of byte why_at, and the text from there, echoed safely (utf8.h). */
static void body_error(const char *body, size_t len, gw_result_t *res, const char *why, size_t why_at)
{
    char near[NEAR_SHOW + 4]; /* and "..." */
    size_t rest;
    int line, col;

    if (why_at > len)
        why_at = len;
    line_col(body, why_at, &line, &col);
    if (why_at == len) {
        gw_result_reject(res, GW_WHERE_BODY, 0, "invalid JSON at line %d column %d: %s, at the end of the body",
                         line, col, why);
        return;
    }
    /* Enough of the body to fill near (which then ends in "..."), not all of it. */
    rest = len - why_at < 4 * NEAR_SHOW ? len - why_at : 4 * NEAR_SHOW;
    gw_utf8_echo(near, sizeof(near), body + why_at, rest);
    gw_result_reject(res, GW_WHERE_BODY, 0, "invalid JSON at line %d column %d: %s, near '%s'", line, col, why,
                     near);
}

/* ---- the body ----------------------------------------------------------- */

/* JSON's white space, as switch cases. */
#define CASE_WS \
    case ' ':   \
    case '\t':  \
    case '\n':  \
    case '\r'

/* The grammar (RFC 8259) as a loop over the frame stack, calling the
 * handlers above for each token. White space is rare in what clients send,
 * so it is a case of each switch rather than a skip before every token.
 * Returns 0, or -1 when the parse stopped (a body error or ENOMEM, in
 * ps->err). */
static int parse_body(parse_t *ps)
{
    const char *p = ps->body, *e = p + ps->len, *why;
    gw_str_t s;
    num_t num;

value:
    ps->tok = p;
    if (p == e)
        goto want_value;
    switch (*p) {
    CASE_WS:
        p = skip_ws(p + 1, e);
        goto value;
    case '{':
        if (!on_value(ps, V_MAP, NULL, NULL, 0, 0))
            return -1;
        p++;
        goto first_key;
    case '[':
        if (!on_value(ps, V_ARR, NULL, NULL, 0, 0))
            return -1;
        p = skip_ws(p + 1, e);
        if (p < e && *p == ']') {
            p++;
            goto close;
        }
        goto value;
    case '"':
        if (!(p = lex_string(ps, p, &s)) || !on_value(ps, V_STR, NULL, s.p, s.n, 0))
            return -1;
        break;
    case 't':
    case 'f':
        if (e - p >= 4 && memcmp(p, "true", 4) == 0) {
            p += 4;
        } else if (e - p >= 5 && memcmp(p, "false", 5) == 0) {
            p += 5;
        } else {
            goto bad_literal;
        }
        if (!on_value(ps, V_BOOL, NULL, NULL, 0, *ps->tok == 't'))
            return -1;
        break;
    case 'n':
        if (e - p < 4 || memcmp(p, "null", 4) != 0)
            goto bad_literal;
        p += 4;
        if (!on_value(ps, V_NULL, NULL, NULL, 0, 0))
            return -1;
        break;
    default:
        if (!(p = lex_number(ps, p, &num)) || !on_value(ps, V_NUM, &num, NULL, 0, 0))
            return -1;
        break;
    }
next: /* after a value */
    if (ps->fr.n == 1) {
        /* The top-level value: only white space may follow. */
        p = skip_ws(p, e);
        if (p == e)
            return 0;
        why = "expected the end of the body after its value";
        goto syntax;
    }
    /* At the end, NUL stands for "nothing": neither ends anything. */
    switch (p < e ? *p : '\0') {
    CASE_WS:
        p = skip_ws(p + 1, e);
        goto next;
    case ',':
        p++;
        if (FRAME(ps)->is_map)
            goto key;
        goto value;
    case '}':
        if (!FRAME(ps)->is_map)
            goto want_more;
        p++;
        goto close;
    case ']':
        if (FRAME(ps)->is_map)
            goto want_more;
        p++;
        goto close;
    default:
        goto want_more;
    }
close:
    if (!on_end(ps))
        return -1;
    goto next;
first_key: /* just after '{': a key or '}' */
    p = skip_ws(p, e);
    if (p < e && *p == '}') {
        p++;
        goto close;
    }
    if (p == e || *p != '"') {
        why = "expected a key (a string) or '}'";
        goto syntax;
    }
key:
    if (p == e || *p != '"') {
        p = skip_ws(p, e);
        why = "expected a key (a string) after ','";
        if (p == e || *p != '"')
            goto syntax;
    }
    ps->tok = p;
    if (!(p = lex_string(ps, p, &s)) || !on_map_key(ps, s))
        return -1;
    if (p == e || *p != ':') {
        p = skip_ws(p, e);
        why = "expected ':' after a key";
        if (p == e || *p != ':')
            goto syntax;
    }
    p++;
    goto value;
/* The body errors, out of the loop. */
want_value:
    why = WANT_VALUE;
    goto syntax;
bad_literal:
    why = "invalid literal (true, false or null expected)";
    goto syntax;
want_more:
    why = FRAME(ps)->is_map ? "expected ',' or '}' after a value in an object"
                            : "expected ',' or ']' after a value in an array";
syntax:
    body_bad_at(ps, p, why);
    return -1;
}

/* See json.h: points go to out (strings in a), rejections to res; a body
 * that is not JSON adds no points and one GW_WHERE_BODY error. Returns 0 or
 * -ENOMEM. */
int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,
                  gw_points_t *out, gw_result_t *res)
{
    parse_t ps = {.body = body, .len = len, .a = a, .res = res, .out = out, .now_ns = now_ns,
                  .top = -1};
    gw_result_t res0 = *res; /* to forget per-point errors if the body is bad */
    uint32_t n0 = out->n;     /* to drop this body's points if it is bad */
    frame_t *top;
    int rc = 0;

    if (len == 0) {
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body is empty (expected a point object or an array of them)");
        return 0;
    }
    if (!(top = vec_push(&ps.fr, sizeof(*top)))) {
        rc = -ENOMEM;
        goto done;
    }
    *top = (frame_t){F_TOP, 0, 0, 0};
    ps.frame = top;
    if (parse_body(&ps)) {
        if (ps.err < 0) {
            rc = ps.err;
            goto done;
        }
        out->n = n0;
        *res = res0;
        body_error(body, len, res, ps.why, ps.why_at);
        goto done;
    }
    if (ps.top >= 0)
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body must be a point object or an array of them, not %s",
                         what(ps.top));
done:
    free(ps.fr.v);
    free(ps.keys.v);
    free(ps.kset);
    return rc;
}

/* ---- one member of a small document -------------------------------------- */

/* Skip the value at p, up to the ',' or '}' after it at the level where it
 * began, which is returned (NULL at the end or a bad string). Strings are
 * read whole, so their brackets and commas do not count. */
static const char *skip_value(parse_t *ps, const char *p)
{
    const char *e = ps->body + ps->len;
    gw_str_t s;
    int depth = 0;

    for (;;) {
        p = skip_ws(p, e);
        if (p == e)
            return NULL;
        if (*p == '"') {
            if (!(p = lex_string(ps, p, &s)))
                return NULL;
            continue;
        }
        if ((*p == ',' || *p == '}' || *p == ']') && depth == 0)
            return p;
        depth += *p == '{' || *p == '[';
        depth -= *p == '}' || *p == ']';
        p++;
    }
}

int gw_json_member_string(const char *doc, size_t len, const char *key, gw_arena_t *a, gw_str_t *out)
{
    parse_t ps = {.body = doc, .len = len, .a = a};
    const char *e = doc + len, *p = skip_ws(doc, e);
    gw_str_t want = {key, strlen(key)}, k;

    if (p == e || *p != '{')
        return -1;
    for (p = skip_ws(p + 1, e); p < e && *p == '"'; p = skip_ws(p + 1, e)) {
        if (!(p = lex_string(&ps, p, &k)))
            break;
        p = skip_ws(p, e);
        if (p == e || *p != ':')
            break;
        p = skip_ws(p + 1, e);
        if (p < e && *p == '"' && gw_str_eq(k, want))
            return lex_string(&ps, p, out) ? 0 : ps.err < 0 ? ps.err : -1;
        if (!(p = skip_value(&ps, p)) || *p != ',')
            break;
    }
    return ps.err < 0 ? ps.err : -1;
}
