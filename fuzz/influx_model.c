/* fuzz/influx_model.c — InfluxDB 1.x's line-protocol reading, ported; see
 * influx_model.h.
 *
 * The functions below follow models/points.go (and pkg/escape) of InfluxDB
 * 1.6 one for one, with Go's slices as (pointer, length) and Go's indices as
 * long, so that each can be read next to its original: same names (in
 * snake case), same order of tests, same error texts. Where Go would panic,
 * the port returns the outcome the panic has in influxd: inside the HTTP
 * handler a panic is recovered into a 500 (IM_SERVER_ERROR); in the shard
 * writer's goroutine it ends the process (IM_CRASH). */
#include "influx_model.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_LENGTH 65535
#define MIN_NANO_TIME (INT64_MIN + 2)
#define MAX_NANO_TIME (INT64_MAX - 1)

/* A Go []byte that the model reads: p[0..n). */
typedef struct {
    const char *p;
    long n;
} sl_t;

/* Go's field types (models.FieldType), as the iterator guesses them. */
enum { T_INTEGER, T_FLOAT, T_BOOLEAN, T_STRING, T_EMPTY, T_UNSIGNED };

/* An error of the parse (a 400), or PANIC: Go panicked in the handler. */
static const char PANIC[] = "panic in the HTTP handler (index out of range)";

const char *im_outcome_name(int outcome)
{
    static const char *const names[] = {"stored", "skipped", "refused", "server error", "lost",
                                        "crash"};
    return outcome >= 0 && outcome <= IM_CRASH ? names[outcome] : "?";
}

/* ------------------------------------------------------------------ */
/* Go's strconv, for the texts the scanners let through */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* strconv.ParseInt(s, 10, 64): 0, or -1. */
static int parse_int(sl_t s, int64_t *out)
{
    long i = 0;
    int neg = 0;
    uint64_t v = 0, lim;

    if (s.n > 0 && (s.p[0] == '+' || s.p[0] == '-'))
        neg = s.p[i++] == '-';
    if (i == s.n)
        return -1;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < s.n; i++) {
        if (!is_digit(s.p[i]))
            return -1;
        if (v > (lim - (uint64_t)(s.p[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* strconv.ParseUint(s, 10, 64): 0, or -1. */
static int parse_uint(sl_t s, uint64_t *out)
{
    uint64_t v = 0;

    if (s.n == 0)
        return -1;
    for (long i = 0; i < s.n; i++) {
        if (!is_digit(s.p[i]) || v > (UINT64_MAX - (uint64_t)(s.p[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return 0;
}

static int eq_fold(sl_t s, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((s.p[i] | 0x20) != w[i])
            return 0;
    return 1;
}

/* Go's decimal float grammar: digits with at most one '.', at least one
 * digit, then an optional exponent with at least one digit. */
static int is_go_decimal(sl_t s)
{
    long i = 0, digits = 0;

    for (; i < s.n && is_digit(s.p[i]); i++)
        digits++;
    if (i < s.n && s.p[i] == '.')
        for (i++; i < s.n && is_digit(s.p[i]); i++)
            digits++;
    if (!digits)
        return 0;
    if (i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
        long e0;
        i++;
        if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
            i++;
        for (e0 = i; i < s.n && is_digit(s.p[i]); i++)
            ;
        if (i == e0)
            return 0;
    }
    return i == s.n;
}

/* Go's hexadecimal float grammar: 0x, hex digits with at most one '.', a
 * p exponent (required). */
static int is_go_hex(sl_t s)
{
    long i = 2, digits = 0, e0;

    if (s.n < 3 || s.p[0] != '0' || (s.p[1] | 0x20) != 'x')
        return 0;
    for (; i < s.n && isxdigit((unsigned char)s.p[i]); i++)
        digits++;
    if (i < s.n && s.p[i] == '.')
        for (i++; i < s.n && isxdigit((unsigned char)s.p[i]); i++)
            digits++;
    if (!digits || i == s.n || (s.p[i] | 0x20) != 'p')
        return 0;
    i++;
    if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
        i++;
    for (e0 = i; i < s.n && is_digit(s.p[i]); i++)
        ;
    return i > e0 && i == s.n;
}

/* strconv.ParseFloat(s, 64): 0; -1 (syntax); -2 (out of range, to
 * infinity; an underflow to zero is no error in Go). */
static int parse_float(sl_t s, double *out)
{
    sl_t m = s;
    char buf[128], *z;
    double d;

    if (m.n > 0 && (m.p[0] == '+' || m.p[0] == '-')) {
        m.p++;
        m.n--;
    }
    if (eq_fold(m, "inf") || eq_fold(m, "infinity")) {
        *out = s.p[0] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (eq_fold(m, "nan") && m.n == s.n) {
        *out = NAN;
        return 0;
    }
    if (!is_go_decimal(m) && !is_go_hex(m))
        return -1;
    z = (size_t)s.n < sizeof(buf) ? buf : malloc((size_t)s.n + 1);
    if (!z)
        abort();
    memcpy(z, s.p, (size_t)s.n);
    z[s.n] = '\0';
    d = strtod(z, NULL);
    if (z != buf)
        free(z);
    if (isinf(d))
        return -2;
    *out = d;
    return 0;
}

/* strconv.ParseBool. */
static int parse_bool(sl_t s, int *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (int i = 0; i < 6; i++) {
        if ((size_t)s.n == strlen(t[i]) && !memcmp(s.p, t[i], (size_t)s.n)) {
            *out = 1;
            return 0;
        }
        if ((size_t)s.n == strlen(f[i]) && !memcmp(s.p, f[i], (size_t)s.n)) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* bytes.Compare */
static int go_compare(sl_t a, sl_t b)
{
    long n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, (size_t)n) : 0;

    if (c)
        return c < 0 ? -1 : 1;
    return a.n < b.n ? -1 : a.n > b.n;
}

/* ------------------------------------------------------------------ */
/* Escapes (pkg/escape, unescapeTag, unescapeStringField) */

/* Copy in to the arena, applying: a backslash followed by a byte of set
 * becomes that byte (left to right); every other byte is kept. With set
 * ",\" =" this is escape.Unescape (and AppendUnescaped); with ", =" it is
 * unescapeTag, whose bytes.Replace passes, one per escape, find the same
 * disjoint pairs. */
static int unescape_set(gw_arena_t *a, sl_t in, const char *set, gw_str_t *out)
{
    char *d;
    long k = 0;

    if (!memchr(in.p, '\\', (size_t)in.n)) {
        *out = (gw_str_t){in.p, (size_t)in.n};
        return 0;
    }
    if (!(d = gw_arena_alloc(a, (size_t)in.n)))
        return -1;
    for (long i = 0; i < in.n; i++) {
        if (in.p[i] == '\\' && i + 1 < in.n && in.p[i + 1] && strchr(set, in.p[i + 1]))
            i++;
        d[k++] = in.p[i];
    }
    *out = (gw_str_t){d, (size_t)k};
    return 0;
}

#define ESCAPE_CODES ",\" ="
#define TAG_CODES ", ="

/* unescapeStringField: \\ and \" become \ and ", left to right. */
static int unescape_string(gw_arena_t *a, sl_t in, gw_str_t *out)
{
    return unescape_set(a, in, "\\\"", out);
}

/* ------------------------------------------------------------------ */
/* Scanners (models/points.go) */

enum { TAG_KEY_STATE, TAG_VALUE_STATE, FIELDS_STATE };

static long skip_whitespace(sl_t b, long i)
{
    while (i < b.n && (b.p[i] == ' ' || b.p[i] == '\t' || b.p[i] == 0))
        i++;
    return i;
}

/* scanTo: the end of the run from i up to stop, where a stop right after
 * a backslash does not count (nor does the byte at index 0 look back). */
static long scan_to(sl_t b, long i, char stop)
{
    for (; i < b.n; i++)
        if (b.p[i] == stop && (i == 0 || b.p[i - 1] != '\\'))
            break;
    return i;
}

/* scanToSpaceOr, whose loop tests the byte before i before it tests i
 * against the end. */
static long scan_to_space_or(sl_t b, long i, char stop)
{
    if (b.p[i] == stop || b.p[i] == ' ')
        return i;
    for (;;) {
        i++;
        if (i - 1 < b.n && b.p[i - 1] == '\\')
            continue;
        if (i >= b.n)
            return i;
        if (b.p[i] == stop || b.p[i] == ' ')
            return i;
    }
}

size_t im_line_end(const char *buf, size_t len, size_t i)
{
    int quoted = 0, fields = 0;
    long equals = 0, commas = 0;

    for (;;) {
        if (i >= len)
            break;
        if (buf[i] == '\\') {
            i += 2;
            continue;
        }
        if (buf[i] == ' ')
            fields = 1;
        if (fields) {
            if (!quoted && buf[i] == '=') {
                i++;
                equals++;
                continue;
            } else if (!quoted && buf[i] == ',') {
                i++;
                commas++;
                continue;
            } else if (buf[i] == '"' && equals > commas) {
                i++;
                quoted = !quoted;
                continue;
            }
        }
        if (buf[i] == '\n' && !quoted)
            break;
        i++;
    }
    /* A backslash as the body's last byte steps past its end: Go then
     * slices into the buffer's spare capacity. The model stops at len. */
    return i > len ? len : i;
}

static const char *scan_measurement(sl_t b, long i, int *state, long *pos)
{
    if (i >= b.n || b.p[i] == ',') {
        *pos = i;
        return "missing measurement";
    }
    for (;;) {
        i++;
        if (i >= b.n) {
            *pos = i;
            return "missing fields";
        }
        if (b.p[i - 1] == '\\')
            continue;
        if (b.p[i] == ',') {
            *state = TAG_KEY_STATE;
            *pos = i + 1;
            return NULL;
        }
        if (b.p[i] == ' ') {
            *state = FIELDS_STATE;
            *pos = i;
            return NULL;
        }
    }
}

static const char *scan_tags_key(sl_t b, long *pi)
{
    long i = *pi;

    if (i >= b.n || b.p[i] == ' ' || b.p[i] == ',' || b.p[i] == '=') {
        *pi = i;
        return "missing tag key";
    }
    for (;;) {
        i++;
        if (i >= b.n || ((b.p[i] == ' ' || b.p[i] == ',') && b.p[i - 1] != '\\')) {
            *pi = i;
            return "missing tag value";
        }
        if (b.p[i] == '=' && b.p[i - 1] != '\\') {
            *pi = i + 1;
            return NULL;
        }
    }
}

static const char *scan_tags_value(sl_t b, long *pi, int *state)
{
    long i = *pi;

    if (i >= b.n || b.p[i] == ',' || b.p[i] == ' ') {
        *pi = i;
        return "missing tag value";
    }
    for (;;) {
        i++;
        if (i >= b.n) {
            *pi = i;
            return "missing fields";
        }
        if (b.p[i] == '=' && b.p[i - 1] != '\\') {
            *pi = i;
            return "invalid tag format";
        }
        if (b.p[i] == ',' && b.p[i - 1] != '\\') {
            *state = TAG_KEY_STATE;
            *pi = i + 1;
            return NULL;
        }
        if (b.p[i] == ' ' && b.p[i - 1] != '\\') {
            *state = FIELDS_STATE;
            *pi = i;
            return NULL;
        }
    }
}

/* Go's indices slice of scanKey: starts with length 100, doubled when a
 * tag key finds it full; the fields state writes one past the last tag
 * without that check, which panics when there are exactly 100 * 2^k tags. */
typedef struct {
    long *v; /* owned */
    long len;
    long commas;
} indices_t;

static const char *scan_tags(sl_t b, long i, indices_t *ix, long *pos)
{
    int state = TAG_KEY_STATE;
    const char *err = NULL;

    for (;;) {
        switch (state) {
        case TAG_KEY_STATE:
            if (ix->commas >= ix->len) {
                long *nv = calloc((size_t)ix->len * 2, sizeof(*nv));
                if (!nv)
                    abort();
                memcpy(nv, ix->v, (size_t)ix->len * sizeof(*nv));
                free(ix->v);
                ix->v = nv;
                ix->len *= 2;
            }
            ix->v[ix->commas++] = i;
            err = scan_tags_key(b, &i);
            state = TAG_VALUE_STATE;
            break;
        case TAG_VALUE_STATE:
            err = scan_tags_value(b, &i, &state);
            break;
        case FIELDS_STATE:
            if (ix->commas >= ix->len)
                return PANIC;
            ix->v[ix->commas] = i + 1;
            *pos = i;
            return NULL;
        }
        if (err) {
            *pos = i;
            return err;
        }
    }
}

/* The tag key of the tag at b[i:], for less() and the duplicate checks. */
static sl_t tag_key_at(sl_t b, long i, long end)
{
    sl_t t = {b.p + i, end - i};
    return (sl_t){t.p, scan_to(t, 0, '=')};
}

/* scanKey: the series key (measurement and tags, tags sorted by their raw
 * keys) in *key, borrowed from b or allocated in a. */
static const char *scan_key(sl_t b, gw_arena_t *a, long *pos, sl_t *key)
{
    long start = skip_whitespace(b, 0), i = start, commas = 0;
    indices_t ix = {calloc(100, sizeof(long)), 100, 0};
    int state = FIELDS_STATE, sorted = 1;
    const char *err;

    if (!ix.v)
        abort();
    err = scan_measurement(b, i, &state, &i);
    if (!err && state == TAG_KEY_STATE)
        err = scan_tags(b, i, &ix, &i);
    if (err)
        goto out;
    commas = ix.commas;
    for (long j = 0; j < commas - 1; j++) {
        sl_t left = tag_key_at(b, ix.v[j], ix.v[j + 1] - 1);
        sl_t right = tag_key_at(b, ix.v[j + 1], ix.v[j + 2] - 1);
        int cmp = go_compare(left, right);
        if (cmp > 0) {
            sorted = 0;
            break;
        }
        if (cmp == 0) {
            err = "duplicate tags";
            goto out;
        }
    }
    if (!sorted && commas > 0) {
        sl_t meas = {b.p + start, ix.v[0] - 1 - start};
        char *kb = gw_arena_alloc(a, (size_t)(i - start) + 1);
        long p = 0;

        if (!kb)
            abort();
        memset(kb, 0, (size_t)(i - start)); /* Go's make() */
        for (long x = 1; x < commas; x++) /* insertionSort with less() */
            for (long y = x; y > 0 && go_compare(tag_key_at(b, ix.v[y], b.n),
                                                 tag_key_at(b, ix.v[y - 1], b.n)) < 0; y--) {
                long t = ix.v[y];
                ix.v[y] = ix.v[y - 1];
                ix.v[y - 1] = t;
            }
        memcpy(kb, meas.p, (size_t)meas.n);
        p = meas.n;
        for (long x = 0; x < commas; x++) {
            long e = scan_to_space_or(b, ix.v[x], ','), k;
            if (p >= i - start) {
                err = PANIC;
                goto out;
            }
            kb[p++] = ',';
            k = e - ix.v[x] < i - start - p ? e - ix.v[x] : i - start - p; /* Go's copy() */
            memcpy(kb + p, b.p + ix.v[x], (size_t)k);
            p += k;
        }
        for (long j = 0; j < commas - 1; j++) {
            if (go_compare(tag_key_at(b, ix.v[j], b.n), tag_key_at(b, ix.v[j + 1], b.n)) == 0) {
                err = "duplicate tags";
                goto out;
            }
        }
        *key = (sl_t){kb, i - start};
    } else {
        *key = (sl_t){b.p + start, i - start};
    }
out:
    free(ix.v);
    *pos = i;
    return err;
}

static int is_numeric(char c)
{
    return is_digit(c) || c == '.';
}

static const char *scan_number(sl_t b, long *pi)
{
    long i = *pi, start = i, digits;
    int is_int = 0, is_unsigned = 0, decimal = 0, scientific = 0;
    const char *err = "invalid number";

    if (i < b.n && b.p[i] == '-') {
        i++;
        if (i == b.n)
            goto fail;
    }
    for (;;) {
        if (i >= b.n)
            break;
        if (b.p[i] == ',' || b.p[i] == ' ')
            break;
        if (b.p[i] == 'i' && i > start && !(is_int || is_unsigned)) {
            is_int = 1;
            i++;
            continue;
        } else if (b.p[i] == 'u' && i > start && !(is_int || is_unsigned)) {
            is_unsigned = 1;
            i++;
            continue;
        }
        if (b.p[i] == '.') {
            if (decimal)
                goto fail;
            decimal = 1;
        }
        if (i > start && (b.p[i] == 'e' || b.p[i] == 'E')) {
            scientific = 1;
            i++;
            continue;
        }
        if ((b.p[i] == '+' || b.p[i] == '-') && (b.p[i - 1] == 'e' || b.p[i - 1] == 'E')) {
            i++;
            continue;
        }
        if (i + 2 < b.n && (b.p[i] == 'N' || b.p[i] == 'n'))
            goto fail;
        if (!is_numeric(b.p[i]))
            goto fail;
        i++;
    }
    if ((is_int || is_unsigned) && (decimal || scientific))
        goto fail;
    digits = i - start - is_int - decimal - (b.p[start] == '-');
    if (digits == 0)
        goto fail;
    if (is_int) {
        int64_t v;
        if (b.p[i - 1] != 'i')
            goto fail;
        if (i - 1 - start >= 19 && parse_int((sl_t){b.p + start, i - 1 - start}, &v)) {
            err = "unable to parse integer";
            goto fail;
        }
    } else if (is_unsigned) {
        goto fail; /* 1.6: unsigned support is off */
    } else {
        double d;
        if ((scientific || i - start >= 25) && parse_float((sl_t){b.p + start, i - start}, &d)) {
            err = "invalid float";
            goto fail;
        }
    }
    *pi = i;
    return NULL;
fail:
    *pi = i;
    return err;
}

static const char *scan_boolean(sl_t b, long *pi)
{
    long i = *pi, start = i, n;
    const char *s = b.p + start;

    if (i < b.n && b.p[i] != 't' && b.p[i] != 'f' && b.p[i] != 'T' && b.p[i] != 'F')
        return "invalid boolean";
    i++;
    while (i < b.n && b.p[i] != ',' && b.p[i] != ' ')
        i++;
    *pi = i;
    n = i - start;
    if (n == 1)
        return NULL;
    if ((*s == 't' || *s == 'T') && n != 4)
        return "invalid boolean";
    if ((*s == 'f' || *s == 'F') && n != 5)
        return "invalid boolean";
    if ((*s == 't' && !memcmp(s, "true", 4)) || (*s == 'f' && !memcmp(s, "false", 5)) ||
        (*s == 'T' && (!memcmp(s, "TRUE", 4) || !memcmp(s, "True", 4))) ||
        (*s == 'F' && (!memcmp(s, "FALSE", 5) || !memcmp(s, "False", 5))))
        return NULL;
    return "invalid boolean";
}

static const char *scan_fields(sl_t b, long *pi, sl_t *fields)
{
    long start = skip_whitespace(b, *pi), i = start, equals = 0, commas = 0;
    int quoted = 0;
    const char *err = NULL;

    for (;;) {
        if (i >= b.n)
            break;
        if (b.p[i] == '\\' && i + 1 < b.n) {
            i += 2;
            continue;
        }
        if (b.p[i] == '"' && equals > commas) {
            quoted = !quoted;
            i++;
            continue;
        }
        if (b.p[i] == '=' && !quoted) {
            equals++;
            char before = i >= 2 ? b.p[i - 2] : 0; /* never below 0 in a parsed line */
            if (b.p[i - 1] == ' ' && before != '\\')
                return "missing field key";
            if (b.p[i - 1] == ',' && before != '\\')
                return "missing field key";
            if (i + 1 >= b.n)
                return "missing field value";
            if (b.p[i + 1] == ',' || b.p[i + 1] == ' ')
                return "missing field value";
            if (is_numeric(b.p[i + 1]) || b.p[i + 1] == '-' || b.p[i + 1] == 'N' ||
                b.p[i + 1] == 'n') {
                i++;
                if ((err = scan_number(b, &i)))
                    return err;
                continue;
            }
            if (b.p[i + 1] != '"') {
                i++;
                if ((err = scan_boolean(b, &i)))
                    return err;
                continue;
            }
        }
        if (b.p[i] == ',' && !quoted)
            commas++;
        if (b.p[i] == ' ' && !quoted)
            break;
        i++;
    }
    if (quoted)
        return "unbalanced quotes";
    if (equals == 0 || commas != equals - 1)
        return "invalid field format";
    *fields = (sl_t){b.p + start, i - start};
    *pi = i;
    return NULL;
}

static const char *scan_time(sl_t b, long *pi, sl_t *ts)
{
    long start = skip_whitespace(b, *pi), i = start;

    for (;;) {
        if (i >= b.n)
            break;
        if (b.p[i] == '\n' || b.p[i] == ' ')
            break;
        if (i == start && b.p[i] == '-') {
            i++;
            continue;
        }
        if (b.p[i] < '0' || b.p[i] > '9')
            return "bad timestamp";
        i++;
    }
    *ts = (sl_t){b.p + start, i - start};
    *pi = i;
    return NULL;
}

/* scanFieldValue: a value up to an unquoted comma; only \" and \\ pair. */
static long scan_field_value(sl_t b, long i)
{
    int quoted = 0;

    while (i < b.n) {
        if (b.p[i] == '\\' && i + 1 < b.n && (b.p[i + 1] == '"' || b.p[i + 1] == '\\')) {
            i += 2;
            continue;
        }
        if (b.p[i] == '"') {
            i++;
            quoted = !quoted;
            continue;
        }
        if (b.p[i] == ',' && !quoted)
            break;
        i++;
    }
    return i;
}

/* walkFields, for parsePoint's key length check: it refuses a key that no
 * value follows (no '=' it counts, or one at the very end). */
static const char *walk_fields(sl_t key, sl_t f)
{
    while (f.n > 0) {
        long i = scan_to(f, 0, '=');
        if (i > f.n - 2)
            return "invalid value: field-key";
        if (key.n + 4 + i > MAX_KEY_LENGTH)
            return "max key length exceeded";
        f.p += i + 1;
        f.n -= i + 1;
        i = scan_field_value(f, 0);
        f.p += i;
        f.n -= i;
        if (f.n > 0) {
            f.p++;
            f.n--;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The write path */

/* One field as the FieldIterator reads it. */
typedef struct {
    sl_t key;   /* raw */
    sl_t value; /* raw, suffix removed for integers and unsigned */
    int type;   /* T_* */
} it_field_t;

/* The fields as point.Next() walks them. Returns the count; *v is malloc'd. */
static long iterate_fields(sl_t f, it_field_t **v)
{
    long n = 0, cap = 8, end = 0;
    it_field_t *a = malloc((size_t)cap * sizeof(*a));

    if (!a)
        abort();
    for (;;) {
        long start = end, vs;
        it_field_t *x;
        if (start >= f.n)
            break;
        if (n == cap && !(a = realloc(a, (size_t)(cap *= 2) * sizeof(*a))))
            abort();
        x = &a[n++];
        end = scan_to(f, start, '=');
        x->key = (sl_t){f.p + start, end - start};
        vs = end + 1;
        end = vs <= f.n ? scan_field_value(f, vs) : vs;
        x->value = (sl_t){f.p + (vs <= f.n ? vs : f.n), vs <= f.n ? end - vs : 0};
        end++;
        if (x->value.n == 0) {
            x->type = T_EMPTY;
        } else if (x->value.p[0] == '"') {
            x->type = T_STRING;
        } else if (strchr("0123456789-.nNiIu", x->value.p[0])) {
            char last = x->value.p[x->value.n - 1];
            x->type = last == 'i' ? T_INTEGER : last == 'u' ? T_UNSIGNED : T_FLOAT;
            if (last == 'i' || last == 'u')
                x->value.n--;
        } else {
            x->type = T_BOOLEAN;
        }
    }
    *v = a;
    return n;
}

static int is_time_name(gw_str_t s)
{
    return s.n == 4 && !memcmp(s.p, "time", 4);
}

static int cmp_tags(const void *x, const void *y)
{
    return gw_str_cmp(((const gw_tag_t *)x)->key, ((const gw_tag_t *)y)->key);
}

/* walkTags over the series key: the tags, unescaped, empty values left out. */
static int read_tags(sl_t key, gw_arena_t *a, gw_point_t *out)
{
    long i = scan_to(key, 0, ',') + 1;
    int has_escape = memchr(key.p, '\\', (size_t)key.n) != NULL;
    uint32_t cap = 8;

    out->ntags = 0;
    if (!(out->tags = gw_arena_alloc(a, cap * sizeof(gw_tag_t))))
        return -1;
    if (scan_to(key, 0, ',') == 0)
        return 0;
    for (;;) {
        long ke, vs, ve;
        gw_tag_t *t;
        if (i >= key.n)
            break;
        ke = scan_to(key, i, '=');
        vs = ve = ke + 1;
        while (ve < key.n && !(key.p[ve] == ',' && key.p[ve - 1] != '\\'))
            ve++;
        if (vs > key.n || ve == vs) { /* scanTagValue: nil or empty: skipped, i not advanced */
            i = ve;
            continue;
        }
        if (out->ntags == cap) {
            gw_tag_t *nv = gw_arena_alloc(a, cap * 2 * sizeof(gw_tag_t));
            if (!nv)
                return -1;
            memcpy(nv, out->tags, cap * sizeof(gw_tag_t));
            out->tags = nv;
            cap *= 2;
        }
        t = &out->tags[out->ntags++];
        if (has_escape) {
            if (unescape_set(a, (sl_t){key.p + i, ke - i}, TAG_CODES, &t->key) ||
                unescape_set(a, (sl_t){key.p + vs, ve - vs}, TAG_CODES, &t->val))
                return -1;
        } else {
            t->key = (gw_str_t){key.p + i, (size_t)(ke - i)};
            t->val = (gw_str_t){key.p + vs, (size_t)(ve - vs)};
        }
        i = ve + 1;
    }
    qsort(out->tags, out->ntags, sizeof(gw_tag_t), cmp_tags);
    return 0;
}

/* The engine's reading of one value (Engine.WritePoints): 0, an IM_*
 * outcome, or -1 on ENOMEM. */
static int read_value(const it_field_t *x, gw_arena_t *a, gw_field_t *f, const char **why)
{
    switch (x->type) {
    case T_FLOAT:
        f->type = GW_FIELD_FLOAT;
        if (parse_float(x->value, &f->v.f) == 0)
            return 0;
        *why = "unable to parse floating point value";
        return IM_SERVER_ERROR;
    case T_INTEGER:
        f->type = GW_FIELD_INT;
        if (parse_int(x->value, &f->v.i) == 0)
            return 0;
        *why = "unable to parse integer value";
        return IM_SERVER_ERROR;
    case T_UNSIGNED:
        f->type = GW_FIELD_UINT;
        if (parse_uint(x->value, &f->v.u) == 0)
            return 0;
        *why = "unable to parse unsigned value";
        return IM_SERVER_ERROR;
    case T_STRING:
        f->type = GW_FIELD_STRING;
        if (x->value.n < 2) {
            *why = "StringValue slices [1:0]: influxd panics and exits";
            return IM_CRASH;
        }
        return unescape_string(a, (sl_t){x->value.p + 1, x->value.n - 2}, &f->v.s) ? -1 : 0;
    case T_BOOLEAN:
        f->type = GW_FIELD_BOOL;
        if (parse_bool(x->value, &f->v.b) == 0)
            return 0;
        *why = "unable to parse bool value";
        return IM_SERVER_ERROR;
    default:
        *why = "unknown field type (an empty value)";
        return IM_SERVER_ERROR;
    }
}

/* The shard's checks and the engine's reading of the fields: into out, the
 * `time` field dropped, a repeated key keeping its first place and its last
 * value. Returns IM_STORED or another IM_*, or -1 on ENOMEM. */
static int read_fields(sl_t fields, gw_arena_t *a, gw_point_t *out, const char **why)
{
    it_field_t *v;
    long n = iterate_fields(fields, &v);
    int rc = IM_STORED, other = 0;

    out->nfields = 0;
    if (!(out->fields = gw_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(gw_field_t)))) {
        rc = -1;
        goto done;
    }
    /* Shard.validateSeriesAndFields: keys, `time` skipped, types. */
    for (long i = 0; i < n; i++) {
        gw_field_t *f = &out->fields[i];
        if (unescape_set(a, v[i].key, ESCAPE_CODES, &f->key)) {
            rc = -1;
            goto done;
        }
        if (is_time_name(f->key))
            continue;
        other = 1;
        if (v[i].type == T_EMPTY || v[i].type == T_UNSIGNED)
            continue; /* no field is created for these */
        for (long j = 0; j < i; j++) {
            if (v[j].type != T_EMPTY && v[j].type != T_UNSIGNED &&
                !is_time_name(out->fields[j].key) && gw_str_eq(out->fields[j].key, f->key) &&
                v[j].type != v[i].type) {
                *why = "field type conflict";
                rc = IM_REFUSED;
                goto done;
            }
        }
    }
    if (!other) {
        *why = "invalid field name: input field \"time\" is invalid";
        rc = IM_REFUSED;
        goto done;
    }
    /* Engine.WritePoints: each value, in order; the last of a key wins. */
    for (long i = 0; i < n; i++) {
        gw_field_t f = {.key = out->fields[i].key};
        uint32_t k;
        if (is_time_name(f.key))
            continue;
        if ((rc = read_value(&v[i], a, &f, why)) != 0)
            goto done;
        for (k = 0; k < out->nfields && !gw_str_eq(out->fields[k].key, f.key); k++)
            ;
        out->fields[k] = f;
        if (k == out->nfields)
            out->nfields++;
    }
done:
    free(v);
    return rc;
}

/* ParsePointsWithPrecision for one block, then parsePoint. */
int im_parse_line(const char *line, size_t n, int64_t now_ns, gw_arena_t *a, gw_point_t *out,
                  const char **why)
{
    sl_t b = {line, (long)n}, key, fields, ts;
    long start, pos = 0;
    const char *err;
    gw_str_t name, again;
    int rc;

    memset(out, 0, sizeof(*out));
    *why = "";
    if (b.n == 0)
        return IM_SKIPPED;
    start = skip_whitespace(b, 0);
    if (start >= b.n || b.p[start] == '#')
        return IM_SKIPPED;
    if (b.p[b.n - 1] == '\n')
        b.n--;
    b.p += start;
    b.n -= start;

    if ((err = scan_key(b, a, &pos, &key)))
        goto refused;
    if (key.n == 0) {
        err = "missing measurement";
        goto refused;
    }
    if (key.n > MAX_KEY_LENGTH) {
        err = "max key length exceeded";
        goto refused;
    }
    if ((err = scan_fields(b, &pos, &fields)))
        goto refused;
    if (fields.n == 0) {
        err = "missing fields";
        goto refused;
    }
    if ((err = walk_fields(key, fields)))
        goto refused;
    if ((err = scan_time(b, &pos, &ts)))
        goto refused;
    if (ts.n == 0) {
        out->time_ns = now_ns;
    } else {
        if (parse_int(ts, &out->time_ns)) {
            err = "bad timestamp";
            goto refused;
        }
        if (out->time_ns < MIN_NANO_TIME || out->time_ns > MAX_NANO_TIME) {
            err = "time outside range";
            goto refused;
        }
        for (; pos < b.n; pos++) {
            if (b.p[pos] != ' ') {
                err = "point is invalid";
                goto refused;
            }
        }
    }

    /* The write path: Name(), Tags(), then the fields. */
    if (unescape_set(a, (sl_t){key.p, scan_to(key, 0, ',')}, ESCAPE_CODES, &name) ||
        read_tags(key, a, out))
        return -1;
    out->series = name;
    for (uint32_t i = 0; i < out->ntags; i++) {
        if (is_time_name(out->tags[i].key)) {
            *why = "invalid tag key: input tag \"time\" is invalid";
            return IM_REFUSED;
        }
    }
    if ((rc = read_fields(fields, a, out, why)) != IM_STORED)
        return rc;
    /* The index unescapes a measurement name once more than the writer. */
    if (unescape_set(a, (sl_t){name.p, (long)name.n}, ESCAPE_CODES, &again))
        return -1;
    if (!gw_str_eq(again, name)) {
        *why = "measurement with a backslash before , space = or \": stored, never read back";
        return IM_LOST;
    }
    return IM_STORED;

refused:
    *why = err;
    return err == PANIC ? IM_SERVER_ERROR : IM_REFUSED;
}

/* ------------------------------------------------------------------ */
/* Comparing */

/* A printable copy of s for messages. */
static const char *shown(char *buf, size_t cap, gw_str_t s)
{
    size_t k = 0;

    for (size_t i = 0; i < s.n && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            k += (size_t)snprintf(buf + k, cap - k, c == '\\' ? "\\\\" : "\\x%02x", c);
        else
            buf[k++] = (char)c;
    }
    buf[k] = '\0';
    return buf;
}

static int same_value(const gw_field_t *s, const gw_field_t *p)
{
    if (p->type == GW_FIELD_UINT && s->type == GW_FIELD_INT)
        return p->v.u <= (uint64_t)INT64_MAX && (int64_t)p->v.u == s->v.i;
    if (p->type != s->type)
        return 0;
    switch (p->type) {
    case GW_FIELD_FLOAT: return memcmp(&p->v.f, &s->v.f, sizeof(double)) == 0;
    case GW_FIELD_INT: return p->v.i == s->v.i;
    case GW_FIELD_UINT: return p->v.u == s->v.u;
    case GW_FIELD_BOOL: return !p->v.b == !s->v.b;
    case GW_FIELD_STRING: return gw_str_eq(p->v.s, s->v.s);
    }
    return 0;
}

int im_same_point(const gw_point_t *stored, const gw_point_t *p, char *why, size_t whylen)
{
    char b1[160], b2[160];
    uint32_t nt = 0;

    if (!gw_str_eq(stored->series, p->series)) {
        snprintf(why, whylen, "measurement \"%s\", not \"%s\"", shown(b1, sizeof(b1), stored->series),
                 shown(b2, sizeof(b2), p->series));
        return 1;
    }
    if (stored->time_ns != p->time_ns) {
        snprintf(why, whylen, "time %lld, not %lld", (long long)stored->time_ns, (long long)p->time_ns);
        return 1;
    }
    for (uint32_t i = 0; i < p->ntags; i++) {
        const gw_tag_t *t = &p->tags[i];
        uint32_t j;
        if (t->val.n == 0)
            continue;
        nt++;
        for (j = 0; j < stored->ntags && !gw_str_eq(stored->tags[j].key, t->key); j++)
            ;
        if (j == stored->ntags || !gw_str_eq(stored->tags[j].val, t->val)) {
            snprintf(why, whylen, "tag \"%s\" %s", shown(b1, sizeof(b1), t->key),
                     j == stored->ntags ? "missing" : "has another value");
            return 1;
        }
    }
    if (nt != stored->ntags) {
        snprintf(why, whylen, "%u tags stored, not %u", stored->ntags, nt);
        return 1;
    }
    if (p->nfields != stored->nfields) {
        snprintf(why, whylen, "%u fields stored, not %u", stored->nfields, p->nfields);
        return 1;
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        int j = gw_point_find_field(stored, f->key);
        if (j < 0 || !same_value(&stored->fields[j], f)) {
            snprintf(why, whylen, "field \"%s\" %s", shown(b1, sizeof(b1), f->key),
                     j < 0 ? "missing" : "has another type or value");
            return 1;
        }
    }
    return 0;
}

int im_check_encoded(const char *text, size_t n, const gw_point_t *p, char *why, size_t whylen)
{
    static __thread gw_arena_t *a; /* one per thread, kept (reachable) for the next call */
    gw_point_t stored;
    const char *reason;
    size_t end;
    int rc = 1;

    if (!a && !(a = gw_arena_create(4096)))
        return -1;
    if (n == 0 || text[n - 1] != '\n') {
        snprintf(why, whylen, "the line does not end in a newline");
        goto out;
    }
    if ((end = im_line_end(text, n, 0)) != n - 1) {
        snprintf(why, whylen, "influxd reads the line as ending at byte %zu of %zu", end, n);
        goto out;
    }
    switch ((rc = im_parse_line(text, n - 1, INT64_MIN, a, &stored, &reason))) {
    case -1:
        goto out;
    case IM_STORED:
        rc = im_same_point(&stored, p, why, whylen);
        break;
    default:
        snprintf(why, whylen, "influxd: %s: %s", im_outcome_name(rc), reason);
        rc = 1;
    }
out:
    gw_arena_reset(a);
    return rc;
}
