/* lineproto.c — InfluxDB 1.x line protocol: parser and encoder.
 *
 * The parser is the ingest hot path. Per line it makes one pass over the
 * bytes (plus a memchr for the line end), borrows every string that holds no
 * escape from the body, and allocates one arena block for the point's tag and
 * field arrays; the points vector grows amortised. Bad lines are counted in
 * the result and skipped; they never stop the body.
 *
 * Backslashes are read as InfluxDB 1.x reads them, section by section
 * (docs/hardening.md, "Line protocol as InfluxDB reads it"): in the series
 * and tags a delimiter right after a backslash does not end the name (so
 * `\\,` in a tag is a backslash and an escaped comma); in a field key a
 * backslash pairs with whatever byte follows; in a string value an odd run
 * of backslashes escapes the quote after it; and a backslash before a
 * newline joins two lines. Each name is then unescaped with the set
 * influxd uses for that section. Where influxd's own scanners disagree on
 * a line (they read it otherwise, refuse it later, or crash), bad_name
 * refuses the name, in the parser and in the encoder alike. Bad lines,
 * comments and lines starting with a space end where influxd's line
 * splitter ends them (influx_line_end).
 *
 * A quoted string field value may span lines; its point keeps the number of
 * the line where it started, and the lines inside it are still counted. */
#include "lineproto.h"

#include "log.h"
#include "metrics.h"
#include "utf8.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* InfluxDB keeps the two lowest and the highest int64 nanoseconds for itself
 * (models/time.go: MinNanoTime, MaxNanoTime) and answers 400 for them, so
 * they are refused here, at ingest, where the line number is known. */
#define TIME_MIN (INT64_MIN + 2)
#define TIME_MAX (INT64_MAX - 1)

/* InfluxDB refuses series keys (measurement, tags and a field key) longer
 * than this (models.MaxKeyLength). */
#define MAX_KEY_LEN 65535

/* Per-call scratch for one line's tags and fields; lines with more spill to
 * the arena. */
#define SCRATCH 64

/* How much of an offending token a message quotes. */
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
    C_ODD = 0x400,       /* what only bad_name can judge in a name: \ newline NUL */
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

/* ------------------------------------------------------------------ */
/* Precision */

/* Precision name to nanoseconds per unit (n ns u us µ ms s m h; "" and
 * NULL are ns). Returns 0, or -1 for an unknown name (*ns_per_unit then
 * untouched). */
int gw_lp_precision(const char *name, int64_t *ns_per_unit)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"", 1},
        {"n", 1},
        {"ns", 1},
        {"u", 1000},
        {"us", 1000},
        {"\xc2\xb5", 1000}, /* µ in UTF-8 */
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", 60 * INT64_C(1000000000)},
        {"h", 3600 * INT64_C(1000000000)},
    };

    if (!name)
        name = "";
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(name, units[i].name) == 0) {
            *ns_per_unit = units[i].ns;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Numbers: parsing */

/* strtod follows LC_NUMERIC; line protocol always uses '.', whatever locale
 * the process (or an embedding library) has set. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Exact powers of ten: up to 1e22 every one is a double, which makes the
 * fast path below correctly rounded (Clinger). */
static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#if LDBL_MANT_DIG == 64
/* x87 extended precision: every integer below 2^64 and every power of ten
 * up to 1e27 (5^27 < 2^64) is exact. */
static const long double pow10_ext[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};
#endif

/* Convert a float token already checked against the grammar
 * -?digits*[.digits*][(e|E)[+-]digits]. Returns 0, or -1 when it overflows
 * to infinity (InfluxDB refuses those; underflow to 0 or a subnormal is fine,
 * as in Go's ParseFloat). */
static int to_double(const char *s, size_t n, gw_arena_t *a, double *out)
{
    const char *p = s, *e = s + n;
    uint64_t m = 0;
    int nsig = 0, exp10 = 0, neg = 0;
    char small[64];
    char *z;
    double d;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; p < e && is_digit(*p); p++) {
        if (m || *p != '0') {
            m = m * 10 + (uint64_t)(*p - '0');
            nsig++;
        }
        if (nsig > 19)
            goto slow;
    }
    if (p < e && *p == '.') {
        for (p++; p < e && is_digit(*p); p++) {
            if (m || *p != '0') {
                m = m * 10 + (uint64_t)(*p - '0');
                nsig++;
            }
            if (nsig > 19)
                goto slow;
            exp10--;
        }
    }
    if (p < e) { /* exponent */
        int eneg = 0, x = 0;
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        for (; p < e; p++)
            if (x < 100000) /* far beyond any double; keeps x from overflowing */
                x = x * 10 + (*p - '0');
        exp10 += eneg ? -x : x;
    }
    if (m == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)m;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        *out = neg ? -d : d;
        return 0;
    }
#if LDBL_MANT_DIG == 64
    /* Computed values (0.1 + 0.2, averages, durations) print with 17 digits,
     * beyond the exact range above. In extended precision m / 10^k rounds
     * once, to 64 bits; rounding that to 53 bits is then correct unless it
     * landed exactly halfway between two doubles (low 11 bits 0x400): only
     * then could the first rounding have decided the second. */
    if (exp10 >= -27 && exp10 <= 27) {
        long double q = (long double)m;
        uint64_t sig;
        q = exp10 < 0 ? q / pow10_ext[-exp10] : q * pow10_ext[exp10];
        memcpy(&sig, &q, sizeof(sig)); /* the significand, explicit top bit */
        if ((sig & 0x7FF) != 0x400) {
            d = (double)q;
            *out = neg ? -d : d;
            return 0;
        }
    }
#endif

slow:
    /* Rare: more than 19 significant digits or a large exponent. strtod
     * needs a NUL-terminated copy; the body is not terminated. */
    if (n < sizeof(small)) {
        z = small;
    } else {
        z = gw_arena_alloc(a, n + 1);
        if (!z)
            return -ENOMEM;
    }
    memcpy(z, s, n);
    z[n] = '\0';
    pthread_once(&c_locale_once, c_locale_init);
    d = c_locale ? strtod_l(z, NULL, c_locale) : strtod(z, NULL);
    if (isinf(d))
        return -1;
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Messages */

/* A printable, truncated copy of a token for a message: at most SHOW_MAX
 * bytes, cut on a UTF-8 boundary, control bytes as '?', "..." if cut. */
static const char *show(char *buf, const char *s, size_t n)
{
    size_t k = n, i;

    if (k > SHOW_MAX) {
        k = SHOW_MAX;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--; /* do not split a UTF-8 sequence */
    }
    for (i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (k < n) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* ------------------------------------------------------------------ */
/* Names: what InfluxDB 1.x reads back */

/* Is the run of backslashes that ends right before q (and starts at or
 * after s) odd? Then a backslash pairs with *q. */
static inline int odd_run(const char *s, const char *q)
{
    const char *r = q;

    while (r > s && r[-1] == '\\')
        r--;
    return (q - r) & 1;
}

/* The kinds of names, by the rules InfluxDB reads them with. */
enum {
    N_SERIES, /* measurement: a delimiter right after a backslash is kept;
                 escape.Unescape takes the backslash off , space = " */
    N_TAG,    /* tag key or value: the same, unescapeTag takes it off , space = */
    N_FIELD,  /* field key: a backslash pairs with any byte (scanFields), and
                 escape.Unescape takes it off , space = " */
};

static const char *const kind_name[] = {"series", "tag", "field key"};

static inline int is_time(gw_str_t s)
{
    return gw_str_eq(s, GW_STR_LIT("time"));
}

/* Is s UTF-8 as Go reads it (no overlong forms, no surrogates, nothing
 * above U+10FFFF)? */
static int utf8_valid(gw_str_t s)
{
    const unsigned char *p = (const unsigned char *)s.p, *e = p + s.n;

    while (p < e) {
        size_t k = *p < 0x80 ? 1 : gw_utf8_char(p, e);
        if (!k)
            return 0;
        p += k;
    }
    return 1;
}

/* Why name s of kind k cannot be stored faithfully in InfluxDB 1.x, or
 * NULL. The parser refuses such names when it reads them, the encoder when
 * it writes them, with the same words:
 *  - a newline would end the line, and a NUL byte is refused everywhere
 *    (InfluxDB echoes names in its error header, which libcurl refuses with
 *    a NUL, and C tools stop at one);
 *  - a trailing backslash would escape the delimiter after the name;
 *  - a series with a backslash before , space = or ": influxd stores it
 *    and never reads it back (its index unescapes the name once more);
 *  - a tag with an odd run of backslashes before a space: written, the run
 *    is even, and InfluxDB's line splitter (which pairs backslashes) then
 *    takes the space for the end of the series and may join lines;
 *  - a field key with an odd run of backslashes before , space or =:
 *    written, the run is even, the pairs leave the delimiter unescaped;
 *  - a series or field key that is not UTF-8: influxd 1.6.7 stores it, but
 *    answers 500 when it is the first point of a shard, and cannot open
 *    the shard after a restart (its field index refuses the name), which
 *    hides every point of that shard, of every series. */
static const char *bad_name(gw_str_t s, int kind)
{
    const char *p = s.p, *e = s.p + s.n;

    if (s.n == 0)
        return "is empty";
    if (memchr(s.p, '\n', s.n))
        return "contains a newline";
    if (memchr(s.p, '\0', s.n))
        return "contains a NUL byte";
    if (kind != N_TAG && !utf8_valid(s))
        return "is not valid UTF-8 (InfluxDB 1.x cannot open a shard holding such a name "
               "after a restart)";
    if (e[-1] == '\\')
        return "ends with a backslash";
    while ((p = memchr(p, '\\', (size_t)(e - p))) != NULL) {
        const char *r = p;
        int odd;
        while (*r == '\\') /* the name does not end in one */
            r++;
        odd = (r - p) & 1;
        if (kind == N_SERIES && (cls[(unsigned char)*r] & C_NAME_UNESC))
            return "has a backslash before ',', ' ', '=' or '\"' (InfluxDB 1.x stores such a "
                   "series but cannot read it back)";
        if (kind == N_TAG && odd && *r == ' ')
            return "has an odd run of backslashes before a space (InfluxDB 1.x would split "
                   "the line there)";
        if (kind == N_FIELD && odd && (cls[(unsigned char)*r] & C_KEY_ESC))
            return "has an odd run of backslashes before ',', ' ' or '=' (InfluxDB 1.x would "
                   "read another key)";
        p = r;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Parser */

typedef struct {
    gw_arena_t *a;       /* borrowed */
    gw_points_t *out;    /* borrowed */
    gw_result_t *res;    /* borrowed */
    const char *end;     /* borrowed: end of the body */
    const char *line;    /* first byte of the current line (for columns) */
    const char *eol;     /* the '\n' ending it, or end */
    const char *lend;    /* eol less a trailing '\r' */
    uint32_t line_no;
    uint32_t nl;         /* newlines inside the current line's strings */
    int64_t ns_per_unit;
    int64_t now_ns;
    gw_tag_t *tags;      /* scratch: stack, or arena once outgrown */
    gw_field_t *fields;  /* same */
    uint32_t ntags, tcap;
    uint32_t nfields, fcap;
} parser_t;

/* Count a bad line; only the earliest error's text is kept by
 * gw_result_reject, so later lines skip the formatting. Always returns 1
 * (the "rejected" return of parse_line). */
static int __attribute__((format(printf, 3, 4)))
reject(parser_t *ps, const char *at, const char *fmt, ...)
{
    gw_result_t *r = ps->res;
    char msg[224];
    va_list ap;

    if (!gw_result_wants_msg(r, ps->line_no)) {
        gw_result_reject(r, GW_WHERE_LINE, ps->line_no, "%s", "");
        return 1;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_result_reject(r, GW_WHERE_LINE, ps->line_no, "column %zu: %s",
                     (size_t)(at - ps->line) + 1, msg);
    return 1;
}

/* What the scanners below saw in a name, in *esc: a backslash (the name
 * then needs unescaping), or a byte that is not ASCII (when stop holds
 * C_HIGH: the name must then be UTF-8, which bad_name checks). Stopping at
 * such bytes costs one more test per name, a point about 1% more. */
#define ESC_BACKSLASH 1
#define ESC_HIGH 2

/* Advance over a measurement, tag key or tag value up to the first byte
 * of class stop that no backslash escapes; as InfluxDB's key scanners see
 * it, a backslash escapes the next byte only when that byte would end the
 * name (class escs), so a delimiter right after a backslash never ends it.
 * With C_HIGH in stop, a byte that is not ASCII is noted in *esc. */
static inline const char *scan_name(const char *p, const char *end, const char *lim,
                                    unsigned stop, unsigned escs, int *esc)
{
    for (;;) {
        p = find_class(p, end, lim, stop);
        if (p == end)
            return p;
        if (*p != '\\') {
            if (!(stop & C_HIGH) || (signed char)*p >= 0)
                return p;
            *esc |= ESC_HIGH;
            p++;
            continue;
        }
        *esc |= ESC_BACKSLASH;
        p += p + 1 < end && (cls[(unsigned char)p[1]] & escs) ? 2 : 1;
    }
}

/* Advance over a field key up to the first byte of class stop outside a
 * pair: InfluxDB's field scanner (scanFields) pairs a backslash with
 * whatever byte follows it. *esc and C_HIGH as in scan_name; a byte that
 * is not ASCII is noted after a backslash too. */
static inline const char *scan_pairs(const char *p, const char *end, const char *lim,
                                     unsigned stop, int *esc)
{
    for (;;) {
        p = find_class(p, end, lim, stop);
        if (p == end)
            return p;
        if (*p != '\\') {
            if (!(stop & C_HIGH) || (signed char)*p >= 0)
                return p;
            *esc |= ESC_HIGH;
            p++;
            continue;
        }
        *esc |= ESC_BACKSLASH;
        if ((stop & C_HIGH) && end - p > 1 && (signed char)p[1] < 0)
            p++; /* the byte it pairs with is looked at next */
        else
            p = end - p > 2 ? p + 2 : end;
    }
}

/* Slice s..s+n into out, unescaping into the arena if esc: a backslash
 * before a byte of class escs is dropped, left to right, and every other
 * byte is kept (InfluxDB's escape.Unescape, unescapeTag and
 * unescapeStringField, each with its set). 0 or -ENOMEM. */
static inline int take(parser_t *ps, const char *s, size_t n, int esc, unsigned escs,
                       gw_str_t *out)
{
    char *d, *q;

    if (!esc) {
        out->p = s;
        out->n = n;
        return 0;
    }
    d = q = gw_arena_alloc(ps->a, n ? n : 1);
    if (!d)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (cls[(unsigned char)s[i + 1]] & escs))
            i++;
        *q++ = s[i];
    }
    out->p = d;
    out->n = (size_t)(q - d);
    return 0;
}

/* The closing quote of a string whose content starts at s, or NULL. A quote
 * is escaped when an odd run of backslashes precedes it (`\\` is one
 * backslash, `\"` a quote). */
static const char *close_quote(const char *s, const char *end)
{
    const char *p = s;

    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        if (!odd_run(s, q))
            return q;
        p = q + 1;
    }
}

static uint32_t count_nl(const char *p, const char *end)
{
    uint32_t n = 0;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* set_eol's rare case: eol follows a backslash. The first '\n' from eol
 * on that no backslash pairs with, or NULL; those passed over count in
 * ps->nl. */
static __attribute__((noinline)) const char *paired_eol(parser_t *ps, const char *p,
                                                        const char *eol)
{
    while (eol && eol > p && eol[-1] == '\\' && odd_run(p, eol)) {
        ps->nl++;
        eol = memchr(eol + 1, '\n', (size_t)(ps->end - eol - 1));
    }
    return eol;
}

/* Make the current line end at the first '\n' at or after p that no
 * backslash pairs with (InfluxDB's scanLine reads a backslash and the byte
 * after it as a pair, a newline included). */
static inline void set_eol(parser_t *ps, const char *p)
{
    const char *eol = memchr(p, '\n', (size_t)(ps->end - p));

    if (eol && eol > p && eol[-1] == '\\')
        eol = paired_eol(ps, p, eol);
    ps->eol = eol ? eol : ps->end;
    ps->lend = ps->eol > p && ps->eol[-1] == '\r' ? ps->eol - 1 : ps->eol;
}

/* InfluxDB's scanLine: where the line that starts at s ends, so that
 * parsing resumes where InfluxDB would. A backslash pairs with the next
 * byte; after the first unpaired space, '=' and ',' outside quotes are
 * counted, and a '"' opens or closes a quoted value when the '='s outnumber
 * the ','s; the line ends at the first unpaired '\n' outside quotes.
 * Newlines passed over are added to *nl. For bad lines, comments and lines
 * that start with a space (where scanLine counts from the start); every
 * other line that parse_line accepts ends where scanLine ends it. */
static const char *influx_line_end(const char *s, const char *end, uint32_t *nl)
{
    size_t equals = 0, commas = 0;
    int fields = 0, quoted = 0;
    const char *p = s;

    while (p < end) {
        char c = *p;
        if (c == '\\') {
            *nl += p + 1 < end && p[1] == '\n';
            p += 2;
            continue;
        }
        fields |= c == ' ';
        if (fields && !quoted && (c == '=' || c == ',')) {
            equals += c == '=';
            commas += c == ',';
        } else if (fields && c == '"' && equals > commas) {
            quoted = !quoted;
        } else if (c == '\n') {
            if (!quoted)
                return p;
            ++*nl;
        }
        p++;
    }
    return end;
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

static int cmp_keys(const void *a, const void *b)
{
    return gw_str_cmp(*(const gw_str_t *)a, *(const gw_str_t *)b);
}

/* Sort keys[0..n) and return the first duplicate, or NULL. */
static const gw_str_t *sorted_dup(gw_str_t *keys, uint32_t n)
{
    qsort(keys, n, sizeof(*keys), cmp_keys);
    for (uint32_t i = 1; i < n; i++)
        if (gw_str_eq(keys[i - 1], keys[i]))
            return &keys[i];
    return NULL;
}

/* Room for one more tag or field in the scratch. 0 or -ENOMEM. */
static int grow(parser_t *ps, void **v, uint32_t *cap, size_t size)
{
    void *nv;

    if (*cap > UINT32_MAX / 2)
        return -ENOMEM;
    nv = gw_arena_alloc(ps->a, (size_t)*cap * 2 * size);
    if (!nv)
        return -ENOMEM;
    memcpy(nv, *v, (size_t)*cap * size);
    *v = nv;
    *cap *= 2;
    return 0;
}

#if SWAR
/* Are the eight bytes of w all ASCII digits? Each byte must have 3 as its
 * high nibble, and keep it when 6 is added (0x30..0x39). A carry out of a
 * byte only happens from a byte that fails the test anyway. */
static inline int all_digits8(uint64_t w)
{
    uint64_t hi = UINT64_C(0xF0F0F0F0F0F0F0F0);
    return ((w & hi) | ((w + ONES * 6) & hi) >> 4) == ONES * 0x33;
}

/* The value of eight ASCII digits, the first in the lowest byte: digits
 * to pairs, pairs to quads and quads to the whole, by multiplication. */
static inline uint32_t value8(uint64_t w)
{
    uint64_t lanes = UINT64_C(0x000000FF000000FF);

    w -= ONES * '0';
    w = w * 10 + (w >> 8); /* even bytes: 10 * digit + the next digit */
    w = (w & lanes) * (100 + (UINT64_C(1000000) << 32)) +
        (w >> 16 & lanes) * (1 + (UINT64_C(10000) << 32));
    return (uint32_t)(w >> 32);
}
#endif

/* The value of s..e if it is all digits. Returns 0, 1 when a byte is not
 * a digit, or 2 when the value is above UINT64_MAX. */
static inline int read_digits(const char *s, const char *e, uint64_t *out)
{
    uint64_t v = 0;

    if (e - s > 19) { /* rare; the only lengths that can overflow */
        for (const char *x = s; x < e; x++)
            if (!is_digit(*x))
                return 1;
        for (; s < e; s++) {
            unsigned d = (unsigned)(*s - '0');
            if (v > (UINT64_MAX - d) / 10)
                return 2;
            v = v * 10 + d;
        }
        *out = v;
        return 0;
    }
#if SWAR
    for (; e - s >= 8; s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        if (!all_digits8(w))
            return 1;
        v = v * 100000000 + value8(w);
    }
#endif
    for (; s < e; s++) {
        if (!is_digit(*s))
            return 1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* Parse an integer token with an `i` or `u` suffix (digits only, the suffix
 * excluded: s..e). Returns 0, or -1 when out of range. */
static int to_int(const char *s, const char *e, int is_uint, gw_field_t *f)
{
    int neg = *s == '-';
    uint64_t v;

    if (read_digits(s + neg, e, &v))
        return -1;
    if (is_uint) {
        f->type = GW_FIELD_UINT;
        f->v.u = v;
        return 0;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return -1;
    f->type = GW_FIELD_INT;
    f->v.i = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Add digit c to the significand m as to_double does: leading zeros are
 * not significant, and past 19 significant digits only the count grows
 * (to_double then takes its slow path). */
static inline void add_digit(uint64_t *m, int *nsig, char c)
{
    if (*m || c != '0') {
        if (*nsig < 19)
            *m = *m * 10 + (uint64_t)(c - '0');
        ++*nsig;
    }
}

/* Is the integer s..e (already checked: -?digits) spelled as put_i64
 * spells it: no leading zero, no "-0"? */
static inline int is_plain_int(const char *s, const char *e)
{
    const char *d = s + (*s == '-');
    return *d != '0' || (e - d == 1 && d == s);
}

/* Is the float -?i[.f] (no exponent; its integer part at s, ilen digits,
 * then, if dot, frac fraction digits; nsig significant digits) spelled as
 * put_double spells it? With at most 15 significant digits (DBL_DIG) and
 * no trailing zero, the digits are the shortest that read back, and unique:
 * so no leading zero but a lone "0", no trailing zero or bare '.', and the
 * plain form put_double keeps from 1e-6 up. */
static inline int is_plain_float(const char *s, int ilen, int dot, int frac, int nsig)
{
    if (nsig > 15 || ilen == 0 || (ilen > 1 && *s == '0'))
        return 0;
    if (!dot)
        return 1; /* an integer below 10^15: put_u64's digits */
    return frac > 0 && s[ilen + frac] != '0' && (*s != '0' || frac - nsig <= 5);
}

/* Parse a non-string field value p..e (it ends at ',', ' ' or the line end)
 * into f; *canon is cleared unless p..e is what put_value writes for f
 * (without GW_LP_NO_UINT, which unsigned values depend on: never canonical).
 * Returns 0, 1 (rejected) or -ENOMEM. */
static int parse_scalar(parser_t *ps, const char *p, const char *e, const char *key,
                        size_t keyn, gw_field_t *f, unsigned *canon)
{
    char kb[SHOW_MAX + 4], vb[SHOW_MAX + 4];
    size_t n = (size_t)(e - p);
    const char *q = p;
    int digits = 0, dot = 0, expo = 0, nsig = 0, frac = 0, rc;
    uint64_t m = 0;

    switch (*p) {
    case 't':
    case 'T':
    case 'f':
    case 'F':
        /* InfluxDB 1.x spellings, exactly. */
        if (n == 1 ||
            (n == 4 && (!memcmp(p, "true", 4) || !memcmp(p, "True", 4) || !memcmp(p, "TRUE", 4))) ||
            (n == 5 && (!memcmp(p, "false", 5) || !memcmp(p, "False", 5) || !memcmp(p, "FALSE", 5)))) {
            f->type = GW_FIELD_BOOL;
            f->v.b = *p == 't' || *p == 'T';
            if (!((n == 4 && *p == 't') || (n == 5 && *p == 'f')))
                *canon = 0; /* only "true" and "false" */
            return 0;
        }
        return reject(ps, p, "field \"%s\": invalid boolean \"%s\"", show(kb, key, keyn),
                      show(vb, p, n));
    case '-':
    case '.':
    case '0' ... '9':
        break;
    default:
        /* NaN, Inf, +1, words...: nothing InfluxDB would take. */
        return reject(ps, p, "field \"%s\": invalid value \"%s\"", show(kb, key, keyn),
                      show(vb, p, n));
    }

    /* -?digits*[.digits*][(e|E)[+-]digits+] with at least one digit, or
     * -?digits+ followed by i or u. */
    if (*q == '-')
        q++;
    for (; q < e && is_digit(*q); q++) {
        digits++;
        add_digit(&m, &nsig, *q);
    }
    if (q < e && *q == '.') {
        dot = 1;
        for (q++; q < e && is_digit(*q); q++) {
            digits++;
            frac++;
            add_digit(&m, &nsig, *q);
        }
    }
    if (!digits)
        goto bad_number;
    if (q < e && (*q == 'e' || *q == 'E')) {
        const char *x;
        expo = 1;
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        for (x = q; q < e && is_digit(*q); q++)
            ;
        if (q == x)
            goto bad_number;
    }
    if (q + 1 == e && (*q == 'i' || *q == 'u') && !dot && !expo) {
        if (*q == 'u' && *p == '-')
            return reject(ps, p, "field \"%s\": unsigned integer cannot be negative \"%s\"",
                          show(kb, key, keyn), show(vb, p, n));
        if (to_int(p, q, *q == 'u', f))
            return reject(ps, p, "field \"%s\": %s out of range \"%s\"", show(kb, key, keyn),
                          *q == 'u' ? "unsigned integer" : "integer", show(vb, p, n));
        if (*q == 'u' || !is_plain_int(p, q))
            *canon = 0;
        return 0;
    }
    if (q != e)
        goto bad_number;
    f->type = GW_FIELD_FLOAT;
    if (!expo && nsig <= 19 && m <= (UINT64_C(1) << 53) && frac <= 22) {
        /* to_double's first fast path, on the digits read above. */
        double d = (double)m / pow10_exact[frac];
        f->v.f = *p == '-' ? -d : d;
        if (!is_plain_float(p + (*p == '-'), digits - frac, dot, frac, nsig))
            *canon = 0;
        return 0;
    }
    *canon = 0;
    rc = to_double(p, n, ps->a, &f->v.f);
    if (rc == -ENOMEM)
        return rc;
    if (rc)
        return reject(ps, p, "field \"%s\": float out of range \"%s\"", show(kb, key, keyn),
                      show(vb, p, n));
    return 0;

bad_number:
    return reject(ps, p, "field \"%s\": invalid number \"%s\"", show(kb, key, keyn),
                  show(vb, p, n));
}

/* Parse a timestamp token p..e and scale it. Returns 0 or 1 (rejected). */
static int parse_time(parser_t *ps, const char *p, const char *e, int64_t *out)
{
    char tb[SHOW_MAX + 4];
    const char *q = p;
    int neg = *q == '-';
    uint64_t v = 0;
    int64_t t;

    q += neg;
    if (q == e)
        goto bad;
    switch (read_digits(q, e, &v)) {
    case 1:
        goto bad;
    case 2:
        goto range;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        goto range;
    t = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (__builtin_mul_overflow(t, ps->ns_per_unit, &t) || t < TIME_MIN || t > TIME_MAX)
        goto range;
    *out = t;
    return 0;

bad:
    return reject(ps, p, "invalid timestamp \"%s\"", show(tb, p, (size_t)(e - p)));
range:
    return reject(ps, p, "timestamp out of range \"%s\" (InfluxDB stores 1677-09-21 to 2262-04-11)",
                  show(tb, p, (size_t)(e - p)));
}

/* Refuse the line when name (read at s, raw) holds what InfluxDB 1.x
 * cannot read back (bad_name). Only a name with a backslash needs it: any
 * other cannot hold a newline or a NUL byte here. Returns 0 or 1. */
static int check_name(parser_t *ps, const char *s, gw_str_t name, int kind)
{
    char nb[SHOW_MAX + 4];
    const char *why = bad_name(name, kind);

    return why ? reject(ps, s, "%s \"%s\" %s", kind_name[kind], show(nb, name.p, name.n), why) : 0;
}

/* The tags from p, at the ',' after the measurement: appended to
 * ps->tags, *pp moved past them. Returns 0, 1 (rejected) or -ENOMEM. */
static int parse_tags(parser_t *ps, const char **pp, unsigned *clean)
{
    char kb[SHOW_MAX + 4], vb[SHOW_MAX + 4];
    const char *p = *pp, *t;
    int esc, rc;

    while (p < ps->lend && *p == ',') {
        gw_tag_t *tag;
        const char *k = ++p, *v;
        int kesc;

        esc = 0;
        p = scan_name(p, ps->lend, ps->end, C_KEY_STOP, C_KEY_ESC, &esc);
        if (p == ps->lend || *p != '=') {
            if (p < ps->lend && *p == '\0')
                return reject(ps, p, "NUL byte in a tag key");
            if (p == k)
                return reject(ps, k, "missing tag key");
            return reject(ps, k, "tag \"%s\": missing \"=\"", show(kb, k, (size_t)(p - k)));
        }
        if (p == k)
            return reject(ps, k, "missing tag key");
        if (ps->ntags == ps->tcap &&
            (rc = grow(ps, (void **)&ps->tags, &ps->tcap, sizeof(gw_tag_t))))
            return rc;
        tag = &ps->tags[ps->ntags];
        if ((rc = take(ps, k, (size_t)(p - k), esc, C_KEY_ESC, &tag->key)) ||
            (esc && (rc = check_name(ps, k, tag->key, N_TAG))))
            return rc;
        if (is_time(tag->key))
            return reject(ps, k, "tag key \"time\" is not allowed (InfluxDB cannot store it)");
        for (uint32_t i = 0; ps->ntags < DUP_LINEAR && i < ps->ntags; i++)
            if (same_key(ps->tags[i].key, tag->key))
                return reject(ps, k, "duplicate tag \"%s\"", show(kb, k, (size_t)(p - k)));

        kesc = esc;
        v = ++p;
        esc = 0;
        /* InfluxDB reads a '=' that starts a tag value as part of it. The
         * encoder escapes it: the line is not copied as read. */
        if (p < ps->lend && *p == '=') {
            p++;
            kesc = 1;
        }
        p = scan_name(p, ps->lend, ps->end, C_KEY_STOP, C_KEY_ESC, &esc);
        if (p < ps->lend && *p == '=') {
            for (t = p; t < ps->lend && *t != ',' && *t != ' '; t++)
                ;
            return reject(ps, p, "tag \"%s\": unescaped \"=\" in value \"%s\"",
                          show(kb, k, (size_t)(v - 1 - k)), show(vb, v, (size_t)(t - v)));
        }
        if (p == v)
            return reject(ps, v, "tag \"%s\": missing value", show(kb, k, (size_t)(v - 1 - k)));
        if ((rc = take(ps, v, (size_t)(p - v), esc, C_KEY_ESC, &tag->val)) ||
            (esc && (rc = check_name(ps, v, tag->val, N_TAG))))
            return rc;
        if (esc || kesc)
            *clean = 0;
        ps->ntags++;
    }
    *pp = p;
    return 0;
}

/* A quoted string value whose opening quote is at p (key k..v-1): into f,
 * *pp past the closing quote. Returns 0, 1 (rejected) or -ENOMEM. */
static int parse_string(parser_t *ps, const char **pp, const char *k, const char *v,
                        gw_field_t *f, unsigned *clean)
{
    char kb[SHOW_MAX + 4], vb[SHOW_MAX + 4];
    const char *p = *pp, *t;
    /* Most strings hold no backslash: then the first quote ends them. */
    const char *q = find_class(p + 1, ps->end, ps->end, C_STR_ESC | C_NUL);
    int sesc = q < ps->end && *q == '\\', rc;

    if (sesc)
        q = close_quote(p + 1, ps->end);
    else if (q == ps->end)
        q = NULL;
    if (!q) {
        /* As in InfluxDB, the open string runs to the end of the body:
         * nothing after it can be told apart from its text. */
        ps->eol = ps->lend = ps->end;
        return reject(ps, v, "field \"%s\": unterminated string", show(kb, k, (size_t)(v - 1 - k)));
    }
    if (*q == '\0' || (sesc && memchr(p + 1, '\0', (size_t)(q - p - 1))))
        return reject(ps, v, "field \"%s\": NUL byte in a string value",
                      show(kb, k, (size_t)(v - 1 - k)));
    if (q >= ps->eol) { /* the newlines before eol are counted already */
        ps->nl += count_nl(ps->eol, q);
        set_eol(ps, q + 1);
    }
    f->type = GW_FIELD_STRING;
    if ((rc = take(ps, p + 1, (size_t)(q - p - 1), sesc, C_STR_ESC, &f->v.s)))
        return rc;
    if (sesc)
        *clean = 0;
    p = q + 1;
    if (p < ps->lend && *p != ',' && *p != ' ') {
        t = p;
        while (t < ps->lend && *t != ',' && *t != ' ')
            t++;
        return reject(ps, p, "field \"%s\": unexpected text after string \"%s\"",
                      show(kb, k, (size_t)(v - 1 - k)), show(vb, p, (size_t)(t - p)));
    }
    *pp = p;
    return 0;
}

/* Keep field f, just read at ps->fields[ps->nfields] (its key at k), as
 * InfluxDB stores it: a field named time is dropped (counted in *dropped);
 * a key already read takes this value if its type is the same (InfluxDB
 * keeps the last value) and refuses the line otherwise (InfluxDB's field
 * type conflict). Past DUP_LINEAR fields, merge_fields does that at the
 * end. Returns 0 or 1 (rejected). */
static int add_field(parser_t *ps, const char *k, const gw_field_t *f, unsigned *clean,
                     uint32_t *dropped)
{
    char kb[SHOW_MAX + 4];

    if (is_time(f->key)) {
        ++*dropped;
        *clean = 0;
        return 0;
    }
    for (uint32_t i = 0; ps->nfields < DUP_LINEAR && i < ps->nfields; i++) {
        if (!same_key(ps->fields[i].key, f->key))
            continue;
        if (ps->fields[i].type != f->type)
            return reject(ps, k, "field \"%s\" has values of two types (InfluxDB refuses the "
                          "point: field type conflict)", show(kb, f->key.p, f->key.n));
        ps->fields[i].v = f->v;
        *clean = 0;
        return 0;
    }
    ps->nfields++;
    return 0;
}

static int same_type(const void *a, const void *b)
{
    return ((const gw_field_t *)a)->type == ((const gw_field_t *)b)->type;
}

/* add_field's merge for a line of many fields, all at once (the last
 * value of a key in the last place). Returns 0, 1 (rejected) or -ENOMEM. */
static int merge_fields(parser_t *ps, const char *s, unsigned *clean)
{
    char kb[SHOW_MAX + 4];
    uint32_t bad = 0;
    long n = gw_keep_last(ps->fields, ps->nfields, sizeof(gw_field_t), ps->a, same_type, &bad);

    if (n == -ENOMEM)
        return -ENOMEM;
    if (n < 0)
        return reject(ps, s, "field \"%s\" has values of two types (InfluxDB refuses the point: "
                      "field type conflict)", show(kb, ps->fields[bad].key.p, ps->fields[bad].key.n));
    if ((uint32_t)n != ps->nfields) {
        ps->nfields = (uint32_t)n;
        *clean = 0;
    }
    return 0;
}

/* The time field of a point is dropped, as InfluxDB does without a word:
 * here it is counted (luagw_time_fields_dropped_total) and logged. */
static void note_time_dropped(parser_t *ps, gw_str_t series, uint32_t n)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
    char sb[SHOW_MAX + 4];

    GW_COUNT(time_fields_dropped, n);
    if (gw_log_enabled(GW_LOG_WARN))
        gw_log_limited(&lim, 10, GW_LOG_WARN, "dropped a field named time, as InfluxDB does",
                       "format=lp line=%u series=\"%s\"", ps->line_no,
                       show(sb, series.p, series.n));
}

/* Parse the line starting at s (its first non-blank byte; ps->line, eol and
 * lend are set). Appends a point and returns 0, returns 1 when the line is
 * rejected, or -ENOMEM. ps->eol and ps->nl grow when a string spans lines. */
static int parse_line(parser_t *ps, const char *s)
{
    char kb[SHOW_MAX + 4], vb[SHOW_MAX + 4];
    const char *p = s, *t, *keyend, *fset, *tail_end;
    gw_str_t series;
    gw_point_t *pt;
    int64_t ts;
    int esc = 0, rc;
    uint32_t dropped = 0;
    unsigned clean = GW_LP_CLEAN; /* see point.h; cleared by what the encoder would change */

    ps->ntags = ps->nfields = 0;

    /* Measurement and tags. */
    p = scan_name(p, ps->lend, ps->end, C_MEAS_STOP | C_HIGH, C_MEAS_ESC, &esc);
    if (p == s)
        return reject(ps, s, "missing measurement");
    if ((rc = take(ps, s, (size_t)(p - s), esc & ESC_BACKSLASH, C_NAME_UNESC, &series)) ||
        (esc && (rc = check_name(ps, s, series, N_SERIES))))
        return rc;
    if (esc & ESC_BACKSLASH)
        clean = 0;
    if ((rc = parse_tags(ps, &p, &clean)))
        return rc;
    keyend = p;
    if (p == ps->lend)
        return reject(ps, p, "missing fields");
    if (*p == '\0') /* what else stops a measurement or a tag value there */
        return ps->ntags ? reject(ps, p, "NUL byte in the value of tag \"%s\"",
                                  show(kb, ps->tags[ps->ntags - 1].key.p, ps->tags[ps->ntags - 1].key.n))
                         : reject(ps, p, "NUL byte in the series");

    /* Fields: after one space, more blanks are tolerated (InfluxDB skips
     * whitespace between sections). */
    for (p++; p < ps->lend && is_blank(*p); p++)
        ;
    if (p == ps->lend)
        return reject(ps, p, "missing fields");
    fset = p;
    for (;;) {
        gw_field_t *f;
        const char *k = p, *v;

        esc = 0;
        p = scan_pairs(p, ps->lend, ps->end, C_KEY_STOP | C_HIGH, &esc);
        if (p == ps->lend || *p != '=' || p == k) {
            if (p < ps->lend && *p == '\0')
                return reject(ps, p, "NUL byte in a field key");
            if (p == k)
                return reject(ps, k, "missing field key");
            return reject(ps, k, "field \"%s\": missing \"=\"", show(kb, k, (size_t)(p - k)));
        }
        if ((size_t)(keyend - s) + 4 + (size_t)(p - k) > MAX_KEY_LEN)
            return reject(ps, k, "series key longer than %d bytes", MAX_KEY_LEN);
        if (ps->nfields == ps->fcap &&
            (rc = grow(ps, (void **)&ps->fields, &ps->fcap, sizeof(gw_field_t))))
            return rc;
        f = &ps->fields[ps->nfields];
        if ((rc = take(ps, k, (size_t)(p - k), esc & ESC_BACKSLASH, C_NAME_UNESC, &f->key)) ||
            (esc && (rc = check_name(ps, k, f->key, N_FIELD))))
            return rc;
        /* A tab after a comma: the encoder refuses it. */
        if ((esc & ESC_BACKSLASH) || *k == '\t')
            clean = 0;

        v = ++p;
        if (p == ps->lend || *p == ',' || *p == ' ')
            return reject(ps, v, "field \"%s\": missing value", show(kb, k, (size_t)(v - 1 - k)));
        if (*p == '"') {
            if ((rc = parse_string(ps, &p, k, v, f, &clean)))
                return rc;
        } else {
            t = find_class(p, ps->lend, ps->end, C_VAL_STOP);
            if ((rc = parse_scalar(ps, p, t, k, (size_t)(v - 1 - k), f, &clean)))
                return rc;
            p = t;
        }
        if ((rc = add_field(ps, k, f, &clean, &dropped)))
            return rc;
        if (p == ps->lend || *p == ' ')
            break;
        p++; /* ',' */
    }
    if (ps->nfields == 0)
        return reject(ps, fset, "field \"time\" is dropped, as InfluxDB drops it, and the point "
                      "has no other field");

    /* Duplicates among many tags or fields, all at once. */
    if (ps->ntags >= DUP_LINEAR) {
        gw_str_t *keys = gw_arena_alloc(ps->a, (size_t)ps->ntags * sizeof(*keys));
        const gw_str_t *d;

        if (!keys)
            return -ENOMEM;
        for (uint32_t i = 0; i < ps->ntags; i++)
            keys[i] = ps->tags[i].key;
        if ((d = sorted_dup(keys, ps->ntags)))
            return reject(ps, s, "duplicate tag \"%s\"", show(kb, d->p, d->n));
    }
    if (ps->nfields >= DUP_LINEAR && (rc = merge_fields(ps, s, &clean)))
        return rc;

    /* Timestamp. */
    tail_end = p;
    while (p < ps->lend && is_blank(*p))
        p++;
    ts = ps->now_ns;
    if (p < ps->lend) {
        t = find_class(p, ps->lend, ps->end, C_SPACE);
        if (parse_time(ps, p, t, &ts))
            return 1;
        /* In nanoseconds, one space after the fields: the text the encoder
         * writes. */
        if (clean && ps->ns_per_unit == 1 && p == tail_end + 1 && *tail_end == ' ' &&
            is_plain_int(p, t)) {
            clean |= GW_LP_CLEAN_TIME;
            tail_end = t;
        }
        for (p = t; p < ps->lend && *p == ' '; p++)
            ;
        if (p < ps->lend)
            return reject(ps, p, "unexpected text after timestamp \"%s\"",
                          show(vb, p, (size_t)(ps->lend - p)));
    }
    if (dropped)
        note_time_dropped(ps, series, dropped);

    /* One arena block for both arrays (arena blocks are 16-aligned and a
     * tag's size keeps the fields after the tags aligned); the scratch is
     * reused by the next line. Copied a struct at a time: there are few. */
    {
        size_t tb = (size_t)ps->ntags * sizeof(gw_tag_t);
        size_t fb = (size_t)ps->nfields * sizeof(gw_field_t);
        gw_tag_t *tv = gw_arena_alloc(ps->a, tb + fb);
        gw_field_t *fv = (void *)((char *)tv + tb);

        if (!tv)
            return -ENOMEM;
        for (uint32_t i = 0; i < ps->ntags; i++)
            tv[i] = ps->tags[i];
        for (uint32_t i = 0; i < ps->nfields; i++)
            fv[i] = ps->fields[i];
        /* gw_points_push, without zeroing what is set next. */
        if (ps->out->n < ps->out->cap)
            pt = &ps->out->v[ps->out->n++];
        else if (!(pt = gw_points_push(ps->out)))
            return -ENOMEM;
        *pt = (gw_point_t){
            .series = series,
            .time_ns = ts,
            .tags = ps->ntags ? tv : NULL,
            .fields = fv,
            .ntags = ps->ntags,
            .nfields = ps->nfields,
            .src = ps->line_no,
            .lp_clean = clean,
            .lp_tail = clean ? (gw_str_t){fset, (size_t)(tail_end - fset)} : (gw_str_t){NULL, 0},
        };
    }
    return 0;
}

/* A line that starts with a space is the one case where InfluxDB's line
 * splitter reads the series and tags as it reads fields (counting '=' and
 * ',', and opening quoted values): the line parse_line just accepted must
 * then end where influx_line_end ends it, or it is taken back and refused.
 * Returns 0, or 1 (the caller then ends the line where InfluxDB does). */
static int check_line_end(parser_t *ps)
{
    uint32_t nl = 0;
    const char *e = influx_line_end(ps->line, ps->end, &nl);

    if (e == ps->eol)
        return 0;
    ps->out->n--;
    reject(ps, ps->line, "InfluxDB 1.x would read this line differently: it starts with a "
           "space, so InfluxDB reads quotes in the series or tags as opening a string "
           "(remove the leading space)");
    return 1;
}

/* Parse body (not NUL-terminated) into points appended to out; bad lines
 * go to res. The points borrow body and a: both must outlive them. Returns
 * 0, or -ENOMEM (out then holds the points parsed so far). */
int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns,
                gw_arena_t *a, gw_points_t *out, gw_result_t *res)
{
    gw_tag_t tags[SCRATCH];
    gw_field_t fields[SCRATCH];
    parser_t ps = {
        .a = a,
        .out = out,
        .res = res,
        .end = body + len,
        .line_no = 1,
        /* A precision comes from gw_lp_precision; anything else means ns. */
        .ns_per_unit = ns_per_unit > 0 ? ns_per_unit : 1,
        .now_ns = now_ns,
        .tags = tags,
        .fields = fields,
        .tcap = SCRATCH,
        .fcap = SCRATCH,
    };
    const char *p = body;

    while (p < ps.end) {
        const char *s = p;
        int rc = 0;

        ps.line = p;
        ps.nl = 0;
        set_eol(&ps, p);
        while (s < ps.lend && is_blank(*s))
            s++;
        if (s < ps.lend && *s != '#') {
            rc = parse_line(&ps, s);
            if (rc < 0)
                return rc;
            if (rc == 0 && s > p && memchr(p, ' ', (size_t)(s - p)))
                rc = check_line_end(&ps);
        }
        if (rc > 0 || (s < ps.lend && *s == '#')) {
            /* A bad line or a comment ends where InfluxDB ends it, so that
             * a string spanning lines is not read as lines. */
            ps.nl = 0;
            ps.eol = influx_line_end(p, ps.end, &ps.nl);
        }
        ps.line_no += 1 + ps.nl;
        p = ps.eol < ps.end ? ps.eol + 1 : ps.end;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Numbers: formatting */

/* Shortest-digit double to decimal: Grisu2 (Loitsch, "Printing
 * floating-point numbers quickly and accurately with integers", PLDI 2010),
 * in the form of nlohmann/json's to_chars. Its digits always lie strictly
 * inside the rounding interval, so they read back bit-exact; in rare cases
 * they are one digit longer than the shortest. Locale-free and ~10x faster
 * than printf("%.17g") plus strtod checks. */

typedef struct {
    uint64_t f;
    int e;
} diyfp_t;

static diyfp_t diy_mul(diyfp_t x, diyfp_t y)
{
    unsigned __int128 p = (unsigned __int128)x.f * y.f;
    uint64_t h = (uint64_t)(p >> 64) + (uint64_t)((p >> 63) & 1); /* rounded */
    return (diyfp_t){h, x.e + y.e + 64};
}

static diyfp_t diy_normalize(diyfp_t x)
{
    int s = __builtin_clzll(x.f);
    return (diyfp_t){x.f << s, x.e - s};
}

/* 10^k for k = -300, -292, ..., 340 as f * 2^e, f normalised and rounded to
 * nearest (computed exactly with rational arithmetic). */
static const struct {
    uint64_t f;
    int e;
    int k;
} cached_pow10[] = {
    {0xAB70FE17C79AC6CAULL, -1060, -300}, {0xFF77B1FCBEBCDC4FULL, -1034, -292},
    {0xBE5691EF416BD60CULL, -1007, -284}, {0x8DD01FAD907FFC3CULL, -980, -276},
    {0xD3515C2831559A83ULL, -954, -268}, {0x9D71AC8FADA6C9B5ULL, -927, -260},
    {0xEA9C227723EE8BCBULL, -901, -252}, {0xAECC49914078536DULL, -874, -244},
    {0x823C12795DB6CE57ULL, -847, -236}, {0xC21094364DFB5637ULL, -821, -228},
    {0x9096EA6F3848984FULL, -794, -220}, {0xD77485CB25823AC7ULL, -768, -212},
    {0xA086CFCD97BF97F4ULL, -741, -204}, {0xEF340A98172AACE5ULL, -715, -196},
    {0xB23867FB2A35B28EULL, -688, -188}, {0x84C8D4DFD2C63F3BULL, -661, -180},
    {0xC5DD44271AD3CDBAULL, -635, -172}, {0x936B9FCEBB25C996ULL, -608, -164},
    {0xDBAC6C247D62A584ULL, -582, -156}, {0xA3AB66580D5FDAF6ULL, -555, -148},
    {0xF3E2F893DEC3F126ULL, -529, -140}, {0xB5B5ADA8AAFF80B8ULL, -502, -132},
    {0x87625F056C7C4A8BULL, -475, -124}, {0xC9BCFF6034C13053ULL, -449, -116},
    {0x964E858C91BA2655ULL, -422, -108}, {0xDFF9772470297EBDULL, -396, -100},
    {0xA6DFBD9FB8E5B88FULL, -369, -92}, {0xF8A95FCF88747D94ULL, -343, -84},
    {0xB94470938FA89BCFULL, -316, -76}, {0x8A08F0F8BF0F156BULL, -289, -68},
    {0xCDB02555653131B6ULL, -263, -60}, {0x993FE2C6D07B7FACULL, -236, -52},
    {0xE45C10C42A2B3B06ULL, -210, -44}, {0xAA242499697392D3ULL, -183, -36},
    {0xFD87B5F28300CA0EULL, -157, -28}, {0xBCE5086492111AEBULL, -130, -20},
    {0x8CBCCC096F5088CCULL, -103, -12}, {0xD1B71758E219652CULL, -77, -4},
    {0x9C40000000000000ULL, -50, 4}, {0xE8D4A51000000000ULL, -24, 12},
    {0xAD78EBC5AC620000ULL, 3, 20}, {0x813F3978F8940984ULL, 30, 28},
    {0xC097CE7BC90715B3ULL, 56, 36}, {0x8F7E32CE7BEA5C70ULL, 83, 44},
    {0xD5D238A4ABE98068ULL, 109, 52}, {0x9F4F2726179A2245ULL, 136, 60},
    {0xED63A231D4C4FB27ULL, 162, 68}, {0xB0DE65388CC8ADA8ULL, 189, 76},
    {0x83C7088E1AAB65DBULL, 216, 84}, {0xC45D1DF942711D9AULL, 242, 92},
    {0x924D692CA61BE758ULL, 269, 100}, {0xDA01EE641A708DEAULL, 295, 108},
    {0xA26DA3999AEF774AULL, 322, 116}, {0xF209787BB47D6B85ULL, 348, 124},
    {0xB454E4A179DD1877ULL, 375, 132}, {0x865B86925B9BC5C2ULL, 402, 140},
    {0xC83553C5C8965D3DULL, 428, 148}, {0x952AB45CFA97A0B3ULL, 455, 156},
    {0xDE469FBD99A05FE3ULL, 481, 164}, {0xA59BC234DB398C25ULL, 508, 172},
    {0xF6C69A72A3989F5CULL, 534, 180}, {0xB7DCBF5354E9BECEULL, 561, 188},
    {0x88FCF317F22241E2ULL, 588, 196}, {0xCC20CE9BD35C78A5ULL, 614, 204},
    {0x98165AF37B2153DFULL, 641, 212}, {0xE2A0B5DC971F303AULL, 667, 220},
    {0xA8D9D1535CE3B396ULL, 694, 228}, {0xFB9B7CD9A4A7443CULL, 720, 236},
    {0xBB764C4CA7A44410ULL, 747, 244}, {0x8BAB8EEFB6409C1AULL, 774, 252},
    {0xD01FEF10A657842CULL, 800, 260}, {0x9B10A4E5E9913129ULL, 827, 268},
    {0xE7109BFBA19C0C9DULL, 853, 276}, {0xAC2820D9623BF429ULL, 880, 284},
    {0x80444B5E7AA7CF85ULL, 907, 292}, {0xBF21E44003ACDD2DULL, 933, 300},
    {0x8E679C2F5E44FF8FULL, 960, 308}, {0xD433179D9C8CB841ULL, 986, 316},
    {0x9E19DB92B4E31BA9ULL, 1013, 324}, {0xEB96BF6EBADF77D9ULL, 1039, 332},
    {0xAF87023B9BF0EE6BULL, 1066, 340},
};

enum { G_ALPHA = -60, G_GAMMA = -32 };

/* Walk digits down while that moves closer to the value and stays inside
 * the interval (Grisu2's final rounding). */
static void grisu_round(char *buf, int len, uint64_t dist, uint64_t delta, uint64_t rest,
                        uint64_t ten_k)
{
    while (rest < dist && delta - rest >= ten_k &&
           (rest + ten_k < dist || dist - rest > rest + ten_k - dist)) {
        buf[len - 1]--;
        rest += ten_k;
    }
}

/* Digits of the positive, finite, non-zero v into buf (up to 17, no
 * leading zeros); returns their count, *k the decimal exponent: v ~ digits
 * * 10^k. */
static int grisu2(double v, char *buf, int *k)
{
    uint64_t bits, F;
    int E, len = 0, n, mexp = 0;
    diyfp_t w, m_plus, m_minus, c, wp, wm;
    uint64_t delta, dist, one_f, p2;
    uint32_t p1, pow10;

    memcpy(&bits, &v, sizeof(bits));
    E = (int)(bits >> 52);
    F = bits & ((UINT64_C(1) << 52) - 1);
    w = E ? (diyfp_t){F + (UINT64_C(1) << 52), E - 1075} : (diyfp_t){F, 1 - 1075};
    /* Boundaries halfway to the neighbours; the lower one is closer when v
     * is a power of two (but not the smallest normal). */
    m_plus = diy_normalize((diyfp_t){2 * w.f + 1, w.e - 1});
    m_minus = F == 0 && E > 1 ? (diyfp_t){4 * w.f - 1, w.e - 2} : (diyfp_t){2 * w.f - 1, w.e - 1};
    m_minus.f <<= m_minus.e - m_plus.e;
    m_minus.e = m_plus.e;
    w = diy_normalize(w);

    /* A cached 10^-k that brings the exponent into [alpha, gamma]. */
    {
        int f = G_ALPHA - m_plus.e - 1;
        int kk = (f * 78913) / (1 << 18) + (f > 0);
        int i = (300 + kk + 7) / 8;
        c = (diyfp_t){cached_pow10[i].f, cached_pow10[i].e};
        *k = -cached_pow10[i].k;
    }
    w = diy_mul(w, c);
    wp = diy_mul(m_plus, c);
    wm = diy_mul(m_minus, c);
    wm.f++; /* stay strictly inside the interval despite rounding */
    wp.f--;

    delta = wp.f - wm.f;
    dist = wp.f - w.f;
    one_f = UINT64_C(1) << -wp.e;
    p1 = (uint32_t)(wp.f >> -wp.e);
    p2 = wp.f & (one_f - 1);

    if (p1 >= 1000000000) { pow10 = 1000000000; n = 10; }
    else if (p1 >= 100000000) { pow10 = 100000000; n = 9; }
    else if (p1 >= 10000000) { pow10 = 10000000; n = 8; }
    else if (p1 >= 1000000) { pow10 = 1000000; n = 7; }
    else if (p1 >= 100000) { pow10 = 100000; n = 6; }
    else if (p1 >= 10000) { pow10 = 10000; n = 5; }
    else if (p1 >= 1000) { pow10 = 1000; n = 4; }
    else if (p1 >= 100) { pow10 = 100; n = 3; }
    else if (p1 >= 10) { pow10 = 10; n = 2; }
    else { pow10 = 1; n = 1; }

    while (n > 0) {
        uint64_t rest;
        buf[len++] = (char)('0' + p1 / pow10);
        p1 %= pow10;
        n--;
        rest = ((uint64_t)p1 << -wp.e) + p2;
        if (rest <= delta) {
            *k += n;
            grisu_round(buf, len, dist, delta, rest, (uint64_t)pow10 << -wp.e);
            return len;
        }
        pow10 /= 10;
    }
    for (;;) {
        p2 *= 10;
        buf[len++] = (char)('0' + (p2 >> -wp.e));
        p2 &= one_f - 1;
        mexp++;
        delta *= 10;
        dist *= 10;
        if (p2 <= delta)
            break;
    }
    *k -= mexp;
    grisu_round(buf, len, dist, delta, p2, one_f);
    return len;
}

/* The eight decimal digits of v < 10^8 as bytes 0..9 in memory order
 * (little-endian), all at once: split into halves of four digits, those
 * into pairs, the pairs into digits, dividing by multiplication. */
static inline uint64_t digits8(uint32_t v)
{
    uint64_t x = v / 10000 | (uint64_t)(v % 10000) << 32;
    uint64_t q = (x * 10486 >> 20) & UINT64_C(0x0000007F0000007F); /* /100 */
    x = q | (x - q * 100) << 16;
    q = (x * 103 >> 10) & UINT64_C(0x000F000F000F000F); /* /10 */
    return q | (x - q * 10) << 8;
}

/* Write v < 10^8 without leading zeros; returns the end. Stores eight
 * bytes whatever the length: callers reserve the slack. */
static inline char *put_short(char *d, uint32_t v)
{
    uint64_t x = digits8(v);
    /* Leading zero digits are the low zero bytes; the last digit counts as
     * non-zero so that 0 prints as "0". */
    unsigned z = (unsigned)__builtin_ctzll(x | UINT64_C(1) << 56) >> 3;

    x = (x + UINT64_C(0x3030303030303030)) >> (8 * z);
    memcpy(d, &x, 8);
    return d + 8 - z;
}

static inline char *put_8(char *d, uint32_t v)
{
    uint64_t x = digits8(v) + UINT64_C(0x3030303030303030);
    memcpy(d, &x, 8);
    return d + 8;
}

/* Write v in decimal; returns the end. May store up to 7 bytes past it. */
static char *put_u64(char *d, uint64_t v)
{
    if (v < 100000000)
        return put_short(d, (uint32_t)v);
    if (v < UINT64_C(10000000000000000)) {
        d = put_short(d, (uint32_t)(v / 100000000));
        return put_8(d, (uint32_t)(v % 100000000));
    }
    d = put_short(d, (uint32_t)(v / UINT64_C(10000000000000000)));
    v %= UINT64_C(10000000000000000);
    d = put_8(d, (uint32_t)(v / 100000000));
    return put_8(d, (uint32_t)(v % 100000000));
}

static char *put_i64(char *d, int64_t v)
{
    if (v < 0) {
        *d++ = '-';
        return put_u64(d, 0 - (uint64_t)v);
    }
    return put_u64(d, (uint64_t)v);
}

/* Longest float put_double writes: "-" 17 digits "." "e-324". */
#define DOUBLE_MAX_CHARS 32

/* Write the finite v as a line protocol float, as JavaScript prints numbers:
 * plain digits from 1e-6 up to 1e21, exponent form (1e+21, 5e-324) outside
 * that. Returns the end. */
static char *put_double(char *d, double v)
{
    char dig[20];
    int n, k, pt;

    if (v == 0) {
        if (signbit(v))
            *d++ = '-';
        *d++ = '0';
        return d;
    }
    if (v < 0) {
        *d++ = '-';
        v = -v;
    }
    /* Integers are common in metrics and their digits are their shortest
     * form below 2^53, where every integer is exact. */
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
        return put_u64(d, (uint64_t)v);

    n = grisu2(v, dig, &k);
    pt = n + k; /* position of the decimal point after the first digit */
    if (n <= pt && pt <= 21) {
        memcpy(d, dig, (size_t)n);
        d += n;
        memset(d, '0', (size_t)(pt - n));
        return d + (pt - n);
    }
    if (0 < pt && pt <= 21) {
        memcpy(d, dig, (size_t)pt);
        d += pt;
        *d++ = '.';
        memcpy(d, dig + pt, (size_t)(n - pt));
        return d + (n - pt);
    }
    if (-6 < pt && pt <= 0) {
        *d++ = '0';
        *d++ = '.';
        memset(d, '0', (size_t)-pt);
        d += -pt;
        memcpy(d, dig, (size_t)n);
        return d + n;
    }
    *d++ = dig[0];
    if (n > 1) {
        *d++ = '.';
        memcpy(d, dig + 1, (size_t)(n - 1));
        d += n - 1;
    }
    *d++ = 'e';
    *d++ = pt - 1 < 0 ? '-' : '+';
    return put_u64(d, (uint64_t)(pt - 1 < 0 ? -(pt - 1) : pt - 1));
}

/* ------------------------------------------------------------------ */
/* Encoder */

/* Copy s, putting a backslash before every byte of class escs. May write
 * up to 8 bytes past the end it returns (the caller reserves them). */
static inline char *put_escaped(char *d, gw_str_t s, unsigned escs)
{
    const char *p = s.p, *e = s.p + s.n;

#if SWAR
    /* Eight bytes at a time, stored whole: on a match only the bytes
     * before it are kept. */
    while (e - p >= 8) {
        uint64_t w, m;
        memcpy(&w, p, 8);
        memcpy(d, &w, 8);
        m = class_mask(w, escs);
        if (m) {
            size_t k = (size_t)__builtin_ctzll(m) >> 3;
            d += k;
            p += k;
            *d++ = '\\';
            *d++ = *p++;
            continue;
        }
        d += 8;
        p += 8;
    }
#endif
    /* The tail (or a short name, the common case): copy first, and only
     * when a byte needed escaping, do it again byte by byte. */
    {
        size_t r = (size_t)(e - p);
        unsigned acc = 0;
        for (size_t i = 0; i < r; i++) {
            unsigned char c = (unsigned char)p[i];
            d[i] = (char)c;
            acc |= cls[c];
        }
        if (!(acc & escs))
            return d + r;
    }
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (cls[c] & escs)
            *d++ = '\\';
        *d++ = (char)c;
    }
    return d;
}

/* Blanks InfluxDB would skip before a name; unlike a space they have no
 * escape. */
static int is_unescapable_blank(char c)
{
    return c == '\t' || c == '\0';
}

static const char *lead_name(char c)
{
    return c == '#' ? "'#'" : c == '\t' ? "a tab" : "a NUL";
}

/* gw_str_cmp, with the first four bytes (or the first byte, of shorter
 * keys) compared inline: that settles most pairs of tag keys. */
static inline int key_cmp(gw_str_t a, gw_str_t b)
{
#if SWAR
    if (a.n >= 4 && b.n >= 4) {
        uint32_t x, y;
        memcpy(&x, a.p, 4);
        memcpy(&y, b.p, 4);
        if (x != y) /* byte-swapped, the first byte is the most significant */
            return __builtin_bswap32(x) < __builtin_bswap32(y) ? -1 : 1;
    }
#endif
    if (a.n && b.n && a.p[0] != b.p[0])
        return (unsigned char)a.p[0] < (unsigned char)b.p[0] ? -1 : 1;
    return gw_str_cmp(a, b);
}

/* Copy s when none of its bytes is in class c; returns the end, or NULL
 * (d then holds rubbish). Never reads outside s nor writes past d + s.n:
 * short strings are covered by two overlapping loads. With c = 0 the tests
 * fold away: a plain copy, inline. With store 0 (a constant), only looks:
 * d is not written (see has_class). */
static inline __attribute__((always_inline)) char *scan_clean(char *d, gw_str_t s, unsigned c,
                                                              int store)
{
    const char *p = s.p;
    size_t n = s.n;

#if VEC
    if (n >= 16) {
        __m128i v;
        for (size_t i = 0; i + 16 < n; i += 16) {
            v = _mm_loadu_si128((const __m128i *)(p + i));
            if (class_bits(v, c))
                return NULL;
            if (store)
                _mm_storeu_si128((__m128i *)(d + i), v);
        }
        v = _mm_loadu_si128((const __m128i *)(p + n - 16));
        if (class_bits(v, c))
            return NULL;
        if (store)
            _mm_storeu_si128((__m128i *)(d + n - 16), v);
    } else if (n >= 8) {
        uint64_t lo, hi;
        memcpy(&lo, p, 8);
        memcpy(&hi, p + n - 8, 8);
        if (class_bits(_mm_set_epi64x((long long)hi, (long long)lo), c))
            return NULL;
        if (store) {
            memcpy(d, &lo, 8);
            memcpy(d + n - 8, &hi, 8);
        }
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        if (class_bits(_mm_set_epi32(0, 0, (int)hi, (int)lo), c) & 0xFF) /* not the zeros */
            return NULL;
        if (store) {
            memcpy(d, &lo, 4);
            memcpy(d + n - 4, &hi, 4);
        }
    } else if (n) {
        /* p[0], p[n / 2] and p[n - 1] are every byte of 1 to 3. */
        unsigned char b0 = (unsigned char)p[0], b1 = (unsigned char)p[n / 2],
                      b2 = (unsigned char)p[n - 1];
        if (class_bits(_mm_cvtsi32_si128((int)(b0 | b1 << 8 | (unsigned)b2 << 16)), c) & 0x7)
            return NULL;
        if (store) {
            d[0] = (char)b0;
            d[n / 2] = (char)b1;
            d[n - 1] = (char)b2;
        }
    }
#else
    for (size_t i = 0; i < n; i++) {
        if (cls[(unsigned char)p[i]] & c)
            return NULL;
        if (store)
            d[i] = p[i];
    }
#endif
    return d + n;
}

static inline __attribute__((always_inline)) char *copy_clean(char *d, gw_str_t s, unsigned c)
{
    return scan_clean(d, s, c, 1);
}

/* Does s hold a byte of class c? */
static inline __attribute__((always_inline)) int has_class(gw_str_t s, unsigned c)
{
    char dummy;
    return scan_clean(&dummy, s, c, 0) == NULL;
}

/* Write name s of kind k (N_*), escaping the bytes of class escs; names
 * with no byte of class slow are copied as they are. NULL when bad_name
 * refuses it. */
static inline __attribute__((always_inline)) char *put_name(char *d, gw_str_t s, unsigned slow,
                                                            unsigned escs, int k)
{
    char *e;

    if (s.n == 0)
        return NULL;
    /* Most names hold no delimiter, no backslash and no newline. */
    e = copy_clean(d, s, slow | C_NL | C_NUL);
    if (e)
        return e;
    /* Most names that need escapes hold no byte bad_name looks at (with
     * C_HIGH in slow, a byte that is not ASCII is one). */
    if (has_class(s, C_ODD | (slow & C_HIGH)) && bad_name(s, k))
        return NULL;
    return put_escaped(d, s, escs);
}

/* A string value that needs escapes, or NULL for one with a NUL byte: out
 * of line, to keep put_value small where most strings are copied. */
static __attribute__((noinline)) char *put_string(char *d, gw_str_t s)
{
    return memchr(s.p, '\0', s.n) ? NULL : put_escaped(d, s, C_STR_ESC);
}

/* Write the value of f; NULL when it cannot be written (NaN or infinite,
 * unsigned too large under GW_LP_NO_UINT, a string with a NUL byte,
 * unknown type). */
static inline __attribute__((always_inline)) char *put_value(char *d, const gw_field_t *f,
                                                             unsigned flags)
{
    char *e;

    switch (f->type) {
    case GW_FIELD_FLOAT:
        return isfinite(f->v.f) ? put_double(d, f->v.f) : NULL;
    case GW_FIELD_INT:
        d = put_i64(d, f->v.i);
        *d++ = 'i';
        return d;
    case GW_FIELD_UINT:
        if ((flags & GW_LP_NO_UINT) && f->v.u > (uint64_t)INT64_MAX)
            return NULL;
        d = put_u64(d, f->v.u);
        *d++ = flags & GW_LP_NO_UINT ? 'i' : 'u';
        return d;
    case GW_FIELD_STRING:
        *d++ = '"';
        e = copy_clean(d, f->v.s, C_STR_ESC | C_NUL);
        d = e ? e : put_string(d, f->v.s);
        if (!d)
            return NULL;
        *d++ = '"';
        return d;
    case GW_FIELD_BOOL:
        memcpy(d, f->v.b ? "true" : "false", f->v.b ? 4 : 5);
        return d + (f->v.b ? 4 : 5);
    default:
        return NULL;
    }
}

/* How many bytes p's line can take, everything escaped, with the slack
 * the writers store past their ends. */
static size_t line_size(const gw_point_t *p)
{
    size_t need = 2 * p->series.n + 2 + 21 + 1 + 8; /* 8: put_escaped's overshoot */

    for (uint32_t i = 0; i < p->ntags; i++)
        need += 2 + 2 * p->tags[i].key.n + 2 * p->tags[i].val.n;
    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        need += 2 + 2 * f->key.n + (f->type == GW_FIELD_STRING ? 2 + 2 * f->v.s.n : DOUBLE_MAX_CHARS);
    }
    return need;
}

/* Sort p's tags by key, bytewise as InfluxDB does (Go bytes.Compare):
 * insertion sort, as tag counts are small and often already sorted. */
static void sort_tags(gw_point_t *p)
{
    gw_tag_t *v = p->tags;

    if (p->ntags > DUP_LINEAR) /* many (a script's, a JSON body's): not quadratic */
        qsort(v, p->ntags, sizeof(*v), cmp_keys); /* the key is the first member */
    for (uint32_t i = 1; i < p->ntags; i++) {
        if (key_cmp(v[i - 1].key, v[i].key) > 0) { /* else in place */
            gw_tag_t t = v[i];
            uint32_t j = i;
            do {
                v[j] = v[j - 1];
                j--;
            } while (j > 0 && key_cmp(v[j - 1].key, t.key) > 0);
            v[j] = t;
        }
    }
}

/* ",key=value" of tag t, escaped; NULL when a name cannot be written this
 * way (encode_checked then decides, and says why). */
static inline __attribute__((always_inline)) char *put_tag_pair(char *d, const gw_tag_t *t)
{
    *d++ = ',';
    d = put_name(d, t->key, C_KEY_STOP, C_KEY_ESC, N_TAG);
    if (!d || is_time(t->key))
        return NULL;
    *d++ = '=';
    return put_name(d, t->val, C_KEY_STOP, C_KEY_ESC, N_TAG);
}

/* "key=value" of field f (the separator is the caller's); NULL likewise. */
static inline __attribute__((always_inline)) char *put_field_pair(char *d, const gw_field_t *f, unsigned flags)
{
    d = put_name(d, f->key, C_KEY_STOP | C_STR_ESC | C_HIGH, C_NAME_UNESC, N_FIELD);
    if (!d || is_time(f->key) || is_unescapable_blank(f->key.p[0]))
        return NULL;
    *d++ = '=';
    return put_value(d, f, flags);
}

/* Whether s lies in the point's line, [series, end of lp_tail): a slice of
 * the body the parser vouched for, not a name a script or a declaration
 * added (those live in Lua strings or the configuration). */
static inline int in_line(const gw_point_t *p, const char *s)
{
    return s >= p->series.p && s < p->lp_tail.p + p->lp_tail.n;
}

/* A tag still written as the parser read it: "key=value" contiguous there. */
static inline int tag_in_line(const gw_point_t *p, const gw_tag_t *t)
{
    return in_line(p, t->key.p) && t->val.p == t->key.p + t->key.n + 1;
}

/* The end of the written name that starts at s: at the first of stops
 * that no backslash escapes, or at e. */
static const char *written_name_end(const char *s, const char *e, char stop1, char stop2)
{
    while (s < e && *s != stop1 && *s != stop2)
        s += *s == '\\' ? 2 : 1;
    return s < e ? s : e;
}

/* too_long for a line longer than MAX_KEY_LEN. */
static __attribute__((noinline)) int key_too_long(const gw_point_t *p, const char *l, const char *e,
                                                  char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];
    const char *q = written_name_end(l, e, ' ', ' ');
    size_t key = (size_t)(q - l);

    while (q < e && (*q == ' ' || *q == ',')) {
        const char *k = q + 1, *v = written_name_end(k, e, '=', '=');
        if (key + 4 + (size_t)(v - k) > MAX_KEY_LEN) {
            if (err)
                snprintf(err, errlen,
                         "series \"%s\": its series key and field key \"%s\" take %zu bytes, more than "
                         "InfluxDB's %d",
                         show(sb, p->series.p, p->series.n), show(kb, k, (size_t)(v - k)),
                         key + 4 + (size_t)(v - k), MAX_KEY_LEN);
            return 1;
        }
        if (v + 1 < e && v[1] == '"') { /* a string value: to its closing quote */
            for (q = v + 2; q < e && *q != '"'; q += *q == '\\' ? 2 : 1)
                ;
            q++;
        } else {
            q = written_name_end(v, e, ',', ' ');
        }
        if (q < e && *q == ' ')
            break; /* the time */
    }
    return 0;
}

/* Is the series key of the encoded line l..e too long for InfluxDB: its
 * series and tags as written, 4, and a field key as written, more than
 * MAX_KEY_LEN bytes (models.MaxKeyLength; influxd refuses the point)? 1
 * with the reason in err (when not NULL), else 0. A line within
 * MAX_KEY_LEN cannot be: only a JSON point's or a script's long line is
 * looked at (the parser refuses such a line as it reads it). */
static inline int too_long(const gw_point_t *p, const char *l, const char *e, char *err, size_t errlen)
{
    return (size_t)(e - l) > MAX_KEY_LEN && key_too_long(p, l, e, err, errlen);
}

/* gw_lp_encode for a point the parser marked GW_LP_CLEAN: its names need
 * no checks and no escapes, each tag "key=value" is one slice and the
 * field set (and the time, with GW_LP_CLEAN_TIME) is copied as written.
 * A script or a declaration may have added tags and fields, or changed a
 * tag's value, and kept the flag (script.lua, schema.c: never an original
 * field changed or removed, never a duplicate key): those entries are
 * written from their values, added fields after the copied ones. Returns
 * 0, -ENOMEM, or 1 for the other encoders to decide (out unchanged). */
static inline __attribute__((always_inline)) int encode_clean_as(gw_buf_t *out, gw_point_t *p, unsigned flags,
                                                                 int extra)
{
    /* The series, its tags and the tail are slices of one line, in that
     * order: the line as written is at least as long as what is copied.
     * 2 + 21 + 8: separator, newline, a time and put_i64's overshoot. */
    size_t need = (size_t)(p->lp_tail.p + p->lp_tail.n - p->series.p) + 2 + 21 + 8;
    uint32_t added = 0;
    gw_str_t tail = p->lp_tail, time = {NULL, 0};
    char *d;

    if (!(p->lp_clean & GW_LP_CLEAN_TIME) && (p->time_ns < TIME_MIN || p->time_ns > TIME_MAX))
        return 1;
    for (uint32_t i = 0; extra && i < p->ntags; i++)
        if (!tag_in_line(p, &p->tags[i]))
            need += 2 + 2 * p->tags[i].key.n + 2 * p->tags[i].val.n;
    for (uint32_t i = 0; extra && i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        if (in_line(p, f->key.p))
            continue;
        added++;
        need += 2 + 2 * f->key.n + (f->type == GW_FIELD_STRING ? 2 + 2 * f->v.s.n : DOUBLE_MAX_CHARS);
    }
    if (added && (p->lp_clean & GW_LP_CLEAN_TIME)) {
        /* Added fields go before the time: the tail's last space. */
        size_t k = tail.n;
        while (k && tail.p[k - 1] != ' ')
            k--;
        if (!k)
            return 1;
        time = (gw_str_t){tail.p + k - 1, tail.n - k + 1};
        tail.n = k - 1;
    }
    if (gw_buf_reserve(out, need))
        return -ENOMEM;
    sort_tags(p);
    d = copy_clean(out->data + out->len, p->series, 0);
    for (uint32_t i = 0; i < p->ntags; i++) {
        const gw_tag_t *t = &p->tags[i];
        if (!extra || tag_in_line(p, t)) {
            *d++ = ',';
            d = copy_clean(d, (gw_str_t){t->key.p, t->key.n + 1 + t->val.n}, 0);
            continue;
        }
        if (t->val.n == 0)
            continue; /* InfluxDB treats an empty tag value as no tag */
        if (!(d = put_tag_pair(d, t)))
            return 1;
    }
    *d++ = ' ';
    d = copy_clean(d, tail, 0);
    for (uint32_t i = 0; added && i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        if (in_line(p, f->key.p))
            continue;
        *d++ = ',';
        if (!(d = put_field_pair(d, f, flags)))
            return 1;
    }
    if (time.n) {
        d = copy_clean(d, time, 0);
    } else if (!(p->lp_clean & GW_LP_CLEAN_TIME)) {
        *d++ = ' ';
        d = put_i64(d, p->time_ns);
    }
    *d++ = '\n';
    /* Added tags lengthen the series key, which the parser checked. */
    if (extra && too_long(p, out->data + out->len, d, NULL, 0))
        return 1;
    out->len = (size_t)(d - out->data);
    return 0;
}

/* encode_clean_as compiled twice: without GW_LP_CLEAN_EXTRA every name is
 * in the line and its tests fold away. */
static int encode_clean(gw_buf_t *out, gw_point_t *p, unsigned flags)
{
    if (p->lp_clean & GW_LP_CLEAN_EXTRA)
        return encode_clean_as(out, p, flags, 1);
    return encode_clean_as(out, p, flags, 0);
}

/* gw_lp_encode for a point that passes every check, in one pass with no
 * message to prepare. Returns 0, -ENOMEM, or 1 when some check fails or
 * looks like it might: encode_checked then decides, and says why. out
 * keeps its length unless 0 is returned. */
static int encode_fast(gw_buf_t *out, gw_point_t *p, unsigned flags)
{
    size_t start = out->len;
    const gw_str_t *prev = NULL;
    char *d;

    /* Out of memory here is left to encode_checked too: a point it refuses
     * is refused before it reserves. */
    if (p->nfields == 0 || p->nfields > DUP_LINEAR || p->time_ns < TIME_MIN ||
        p->time_ns > TIME_MAX || gw_buf_reserve(out, line_size(p)))
        return 1;
    /* The series before the tags are sorted: encode_checked leaves them
     * unsorted when it refuses the series. */
    d = put_name(out->data + start, p->series, C_MEAS_STOP | C_HIGH, C_MEAS_ESC, N_SERIES);
    if (!d || p->series.p[0] == '#' || is_unescapable_blank(p->series.p[0]))
        return 1;
    sort_tags(p);
    for (uint32_t i = 0; i < p->ntags; i++) {
        const gw_tag_t *t = &p->tags[i];
        if (t->val.n == 0)
            continue; /* InfluxDB treats an empty tag value as no tag */
        if ((prev && same_key(*prev, t->key)) || !(d = put_tag_pair(d, t)))
            return 1;
        prev = &t->key;
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        for (uint32_t j = 0; j < i; j++)
            if (same_key(p->fields[j].key, f->key))
                return 1;
        *d++ = i ? ',' : ' ';
        if (!(d = put_field_pair(d, f, flags)))
            return 1;
    }
    *d++ = ' ';
    d = put_i64(d, p->time_ns);
    *d++ = '\n';
    if (too_long(p, out->data + start, d, NULL, 0))
        return 1;
    out->len = (size_t)(d - out->data);
    return 0;
}

/* Why f's value cannot be written, into err. */
static void value_error(const gw_point_t *p, const gw_field_t *f, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];

    show(sb, p->series.p, p->series.n);
    show(kb, f->key.p, f->key.n);
    if (f->type == GW_FIELD_FLOAT)
        snprintf(err, errlen, "series \"%s\": field \"%s\" is %s, which InfluxDB cannot store", sb,
                 kb, isnan(f->v.f) ? "NaN" : "infinite");
    else if (f->type == GW_FIELD_UINT)
        snprintf(err, errlen,
                 "series \"%s\": field \"%s\": unsigned %llu is too large for an integer "
                 "(the target has no unsigned type)",
                 sb, kb, (unsigned long long)f->v.u);
    else if (f->type == GW_FIELD_STRING)
        snprintf(err, errlen, "series \"%s\": field \"%s\": the string contains a NUL byte", sb, kb);
    else
        snprintf(err, errlen, "series \"%s\": field \"%s\" has unknown type %d", sb, kb, f->type);
}

/* gw_lp_encode with every check in order, each failure with its message:
 * the first check that fails is the one reported. */
static int encode_checked(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];
    size_t start = out->len, need;
    const gw_str_t *prev = NULL;
    const char *why;
    char *d;

    if ((why = bad_name(p->series, N_SERIES))) {
        snprintf(err, errlen, "series \"%s\" %s", show(sb, p->series.p, p->series.n), why);
        return 1;
    }
    /* A line starting with '#' is a comment, and InfluxDB skips leading
     * tabs and NULs: none of them can be escaped. */
    if (p->series.p[0] == '#' || is_unescapable_blank(p->series.p[0])) {
        snprintf(err, errlen, "series \"%s\" cannot start with %s",
                 show(sb, p->series.p, p->series.n), lead_name(p->series.p[0]));
        return 1;
    }
    if (p->nfields == 0) {
        snprintf(err, errlen, "series \"%s\": a point needs at least one field",
                 show(sb, p->series.p, p->series.n));
        return 1;
    }
    if (p->time_ns < TIME_MIN || p->time_ns > TIME_MAX) {
        snprintf(err, errlen, "series \"%s\": time %lld is outside InfluxDB's range",
                 show(sb, p->series.p, p->series.n), (long long)p->time_ns);
        return 1;
    }

    need = line_size(p);
    sort_tags(p);
    if (p->nfields > DUP_LINEAR) {
        gw_str_t *keys = malloc((size_t)p->nfields * sizeof(*keys));
        const gw_str_t *dup;

        if (!keys)
            return -ENOMEM;
        for (uint32_t i = 0; i < p->nfields; i++)
            keys[i] = p->fields[i].key;
        dup = sorted_dup(keys, p->nfields);
        if (dup) {
            snprintf(err, errlen, "series \"%s\": duplicate field \"%s\"",
                     show(sb, p->series.p, p->series.n), show(kb, dup->p, dup->n));
            free(keys);
            return 1;
        }
        free(keys);
    }
    if (gw_buf_reserve(out, need))
        return -ENOMEM;

    /* Write and check in one pass; on a bad name or value, out->len goes
     * back to start. */
    d = out->data + out->len;
    d = put_escaped(d, p->series, C_MEAS_ESC);
    for (uint32_t i = 0; i < p->ntags; i++) {
        const gw_tag_t *t = &p->tags[i];
        if (t->val.n == 0)
            continue; /* InfluxDB treats an empty tag value as no tag */
        if ((why = bad_name(t->key, N_TAG))) {
            snprintf(err, errlen, "series \"%s\": tag key \"%s\" %s",
                     show(sb, p->series.p, p->series.n), show(kb, t->key.p, t->key.n), why);
            goto fail;
        }
        if (is_time(t->key)) {
            snprintf(err, errlen, "series \"%s\": tag key \"time\" is not allowed",
                     show(sb, p->series.p, p->series.n));
            goto fail;
        }
        if (prev && gw_str_eq(*prev, t->key)) {
            snprintf(err, errlen, "series \"%s\": duplicate tag \"%s\"",
                     show(sb, p->series.p, p->series.n), show(kb, t->key.p, t->key.n));
            goto fail;
        }
        if ((why = bad_name(t->val, N_TAG))) {
            snprintf(err, errlen, "series \"%s\": value of tag \"%s\" %s",
                     show(sb, p->series.p, p->series.n), show(kb, t->key.p, t->key.n), why);
            goto fail;
        }
        prev = &t->key;
        *d++ = ',';
        d = put_escaped(d, t->key, C_KEY_ESC);
        *d++ = '=';
        d = put_escaped(d, t->val, C_KEY_ESC);
    }

    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        if ((why = bad_name(f->key, N_FIELD))) {
            snprintf(err, errlen, "series \"%s\": field key \"%s\" %s",
                     show(sb, p->series.p, p->series.n), show(kb, f->key.p, f->key.n), why);
            goto fail;
        }
        if (is_time(f->key)) {
            snprintf(err, errlen, "series \"%s\": field key \"time\" is not allowed",
                     show(sb, p->series.p, p->series.n));
            goto fail;
        }
        /* The first key follows the space before the field set, where
         * InfluxDB skips tabs and NULs; a later one could follow a comma,
         * but the key is refused everywhere to keep one rule. */
        if (is_unescapable_blank(f->key.p[0])) {
            snprintf(err, errlen, "series \"%s\": field key \"%s\" cannot start with %s",
                     show(sb, p->series.p, p->series.n), show(kb, f->key.p, f->key.n),
                     lead_name(f->key.p[0]));
            goto fail;
        }
        for (uint32_t j = 0; p->nfields <= DUP_LINEAR && j < i; j++) {
            if (same_key(p->fields[j].key, f->key)) {
                snprintf(err, errlen, "series \"%s\": duplicate field \"%s\"",
                         show(sb, p->series.p, p->series.n), show(kb, f->key.p, f->key.n));
                goto fail;
            }
        }
        *d++ = i ? ',' : ' ';
        d = put_escaped(d, f->key, C_NAME_UNESC);
        *d++ = '=';
        d = put_value(d, f, flags);
        if (!d) {
            value_error(p, f, err, errlen);
            goto fail;
        }
    }
    *d++ = ' ';
    d = put_i64(d, p->time_ns);
    *d++ = '\n';
    if (too_long(p, out->data + start, d, err, errlen))
        goto fail;
    out->len = (size_t)(d - out->data);
    return 0;

fail:
    out->len = start;
    return 1;
}

/* Append p to out as one line (sorting p->tags in place). Returns 0;
 * -ENOMEM; or 1 with the reason in err when p cannot be written. out keeps
 * its length unless 0 is returned. */
int gw_lp_encode(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen)
{
    int rc = p->lp_clean & GW_LP_CLEAN ? encode_clean(out, p, flags) : 1;

    if (rc == 1)
        rc = encode_fast(out, p, flags);

    return rc == 1 ? encode_checked(out, p, flags, err, errlen) : rc;
}
