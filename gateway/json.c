/* json.c — JSON ingest for POST /v1/points with jansson, see json.h.
 *
 * Why jansson and not cJSON: jansson keeps integers as int64 and tells 1 from
 * 1.0 by syntax, which Influx field types need; cJSON only has doubles. The
 * measurements are in bench/json_choice.md.
 *
 * jansson has two gaps we work around here:
 *  - an integer beyond int64 fails the whole document ("too big integer"),
 *    while we want it as an unsigned field (or one rejected point). On that
 *    error only, the body is copied with every such integer replaced by a
 *    placeholder string of the same length and parsed again (see bigint_*).
 *  - it keeps no number text, so a fractional time is a double: we round it
 *    to the microsecond, which the double always holds exactly for the next
 *    two centuries (RFC 3339 strings keep nanoseconds).
 * And one cost: ~35 malloc/free pairs per point. A per-thread region takes
 * them during a parse (see region_*), which saves about a fifth. */
#include "json.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Duplicate keys are a body error: jansson would otherwise keep the last one
 * silently, and a point that loses a field without a word is worse than a
 * rejected body. DECODE_ANY lets us name a top-level scalar ourselves. */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

#define KEY_SHOW 64 /* bytes of a key or value quoted in an error message */

#define NS_PER_SEC 1000000000LL

typedef struct {
    gw_arena_t *a;       /* borrowed */
    gw_result_t *res;    /* borrowed */
    const gw_str_t *big; /* borrowed: texts of integers beyond int64, by placeholder index */
    size_t nbig;
    uint32_t index;      /* of the point being parsed */
    int64_t now_ns;
} parse_t;

/* ---- jansson's allocator --------------------------------------------------
 *
 * json_set_alloc_funcs is process-wide, so these functions serve every
 * jansson user on every thread (influx.c reads error bodies, others may build
 * responses). Outside gw_json_parse a thread's region is inactive and they
 * are the previous functions (malloc/free). During a parse, allocations come
 * from the thread's region, and free() of a region pointer is a no-op: the
 * whole region is reused by the next parse. A DOM made in a parse is freed
 * before gw_json_parse returns, so a region pointer never reaches another
 * thread or outlives its region. Anything that does not fit goes to malloc,
 * and a region only grows to GW_JSON_REGION_MAX, so a huge body costs malloc
 * calls, not pinned memory. */

#define REGION_MIN ((size_t)256 << 10)
/* The most a thread's region grows to: ~2,500 points of 180 bytes. 0 turns
 * regions off, so that a leak checker sees every DOM node. */
#ifndef GW_JSON_REGION_MAX
#define GW_JSON_REGION_MAX ((size_t)4 << 20)
#endif

static __thread struct {
    char *base;  /* owned; freed at thread exit by region_key's destructor */
    size_t size;
    size_t used;
    size_t want; /* bytes the last parse asked for, region or not */
    int active;  /* inside gw_json_parse on this thread */
} region;

static json_malloc_t prev_malloc; /* what was installed before us */
static json_free_t prev_free;
static pthread_key_t region_key;
static int region_key_ok;

static void *region_malloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15; /* jansson stores doubles and size_t */

    if (region.active) {
        region.want += need;
        if (need >= n && need <= region.size - region.used) {
            void *p = region.base + region.used;
            region.used += need;
            return p;
        }
    }
    return prev_malloc(n);
}

static void region_free(void *p)
{
    /* Unsigned: one compare tells whether p lies in [base, base + size). */
    if ((uintptr_t)p - (uintptr_t)region.base < region.size)
        return;
    prev_free(p);
}

static void region_destroy(void *base)
{
    free(base);
    region.base = NULL; /* later frees on this thread must not match it */
    region.size = 0;
}

/* Installed at load time, before any thread can be inside jansson: the two
 * function pointers are plain globals in jansson. */
__attribute__((constructor)) static void region_install(void)
{
    json_get_alloc_funcs(&prev_malloc, &prev_free);
    region_key_ok = pthread_key_create(&region_key, region_destroy) == 0;
    json_set_alloc_funcs(region_malloc, region_free);
}

/* At exit, give back the exiting thread's region too (key destructors run
 * only for other threads), so leak checkers see nothing left. The alloc
 * functions stay: another thread may still be inside jansson. */
__attribute__((destructor)) static void region_release(void)
{
    if (region.active)
        return;
    if (region_key_ok)
        pthread_setspecific(region_key, NULL); /* or a thread exit frees it again */
    region_destroy(region.base);
}

/* Start a parse: size the region for what the last one wanted (no DOM from
 * it is alive now, so the old region may go). Failing to grow is fine: the
 * parse then uses malloc. */
static void region_begin(void)
{
    size_t size = REGION_MIN;

    while (size < region.want && size * 2 <= GW_JSON_REGION_MAX)
        size *= 2;
    if (size > GW_JSON_REGION_MAX)
        size = GW_JSON_REGION_MAX;
    if (size > region.size && region_key_ok) {
        char *b = malloc(size);
        if (b && pthread_setspecific(region_key, b) == 0) {
            free(region.base);
            region.base = b;
            region.size = size;
        } else {
            free(b);
        }
    }
    region.used = 0;
    region.want = 0;
    region.active = 1;
}

static void region_end(void)
{
    region.active = 0;
}

/* Reject the current point. Returns 1, what the per-point helpers return for
 * "rejected, keep going". */
__attribute__((format(printf, 2, 3))) static int reject(parse_t *ps, const char *fmt, ...)
{
    char msg[sizeof(ps->res->err_msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_result_reject(ps->res, GW_WHERE_INDEX, ps->index, "%s", msg);
    return 1;
}

static int show(size_t n)
{
    return (int)(n > KEY_SHOW ? KEY_SHOW : n);
}

static int is_time_key(const char *k, size_t n)
{
    return n == 4 && memcmp(k, "time", 4) == 0;
}

static int dup_str(parse_t *ps, const char *p, size_t n, gw_str_t *out)
{
    char *d = gw_arena_dup(ps->a, p, n);
    if (!d)
        return -ENOMEM;
    out->p = d;
    out->n = n;
    return 0;
}

/* ---- integers beyond int64 ---------------------------------------------- */

/* A placeholder is a string "\u0000<index>": user strings cannot hold NUL
 * (we refuse \u0000 in bodies that take this path), so it cannot collide. */
static const gw_str_t *bigint_of(const parse_t *ps, const json_t *v)
{
    const char *s;
    size_t n, k = 0;

    if (!ps->nbig || !json_is_string(v))
        return NULL;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n < 2 || s[0] != '\0')
        return NULL;
    for (size_t i = 1; i < n; i++)
        k = k * 10 + (size_t)(s[i] - '0');
    return k < ps->nbig ? &ps->big[k] : NULL;
}

/* "null is not a field value", "an object is not a tag value"... */
static const char *what(const parse_t *ps, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return bigint_of(ps, v) ? "a number" : "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Is t exactly a JSON integer token, -?(0|[1-9][0-9]*)? */
static int is_int_token(const char *t, size_t n)
{
    size_t i = t[0] == '-';

    if (i == n || (t[i] == '0' && n - i > 1))
        return 0;
    for (; i < n; i++)
        if (t[i] < '0' || t[i] > '9')
            return 0;
    return 1;
}

/* Does the integer token t fit int64? */
static int fits_int64(const char *t, size_t n)
{
    int neg = t[0] == '-';
    size_t nd = n - (size_t)neg;

    if (nd != 19)
        return nd < 19;
    return memcmp(t + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
}

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

/* Position of byte off in jansson's terms: 1-based line, column in UTF-8
 * characters. */
static void line_col(const char *body, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 0;
    for (size_t i = 0; i <= off; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\n') {
            ++*line;
            *col = 0;
        } else if ((c & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

/* Copy body into *copy with each integer beyond int64 replaced by a
 * placeholder of the same length (so jansson's line and column stay right),
 * their texts in *big (malloc'd, borrowing body).
 * Returns the number of placeholders (0: nothing to retry); -ENOMEM; or -1
 * when the body holds \u0000, which placeholders rely on being absent, with
 * the position in *nul_at. The scan is lexical only: jansson judges the
 * syntax of the copy. */
static long bigint_rewrite(const char *body, size_t len, char **copy, gw_str_t **big,
                           size_t *nul_at)
{
    gw_str_t *v = NULL; /* owned until returned */
    char *c = NULL;     /* owned until returned */
    size_t n = 0, cap = 0;
    long rc = -ENOMEM;
    char ph[32];
    int w;

    for (size_t i = 0; i < len;) {
        size_t s = i;

        if (body[i] == '"') {
            /* Skip a string; its escapes cannot end it early. */
            for (i++; i < len && body[i] != '"'; i++) {
                if (body[i] != '\\')
                    continue;
                if (len - i >= 6 && memcmp(body + i, "\\u0000", 6) == 0) {
                    *nul_at = i;
                    rc = -1;
                    goto fail;
                }
                i++;
            }
            i++;
            continue;
        }
        if (body[i] != '-' && (body[i] < '0' || body[i] > '9')) {
            i++;
            continue;
        }
        /* A number token is the run of number characters; only a
         * well-formed integer is ours, anything else is jansson's to judge. */
        for (i++; i < len && body[i] && strchr("0123456789.eE+-", body[i]); i++)
            ;
        if (!is_int_token(body + s, i - s) || fits_int64(body + s, i - s))
            continue;
        if (!c) {
            c = malloc(len);
            if (!c)
                goto fail;
            memcpy(c, body, len);
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            gw_str_t *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv)
                goto fail;
            v = nv;
            cap = ncap;
        }
        /* The token has 19 digits or more and "\u0000<n>" needs 8 + the
         * digits of n: room for 10^11 placeholders, more than a body holds. */
        w = snprintf(ph, sizeof(ph), "\"\\u0000%zu\"", n);
        if ((size_t)w > i - s)
            continue; /* jansson will say "too big integer" again */
        memcpy(c + s, ph, (size_t)w);
        memset(c + s + w, ' ', i - s - (size_t)w);
        v[n++] = (gw_str_t){body + s, i - s};
    }
    *copy = c;
    *big = v;
    return (long)n;
fail:
    free(v);
    free(c);
    return rc;
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

static int parse_time(parse_t *ps, const json_t *v, int64_t *ns)
{
    const gw_str_t *big;
    const char *s, *why;
    char num[32];
    size_t n;
    int rc;

    switch (json_typeof(v)) {
    case JSON_INTEGER:
        if (!__builtin_mul_overflow(json_integer_value(v), NS_PER_SEC, ns))
            return 0;
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return reject(ps, "time: %s is " TIME_RANGE, num);
    case JSON_REAL:
        if (!real_to_ns(json_real_value(v), ns))
            return 0;
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return reject(ps, "time: %s is " TIME_RANGE, num);
    case JSON_STRING:
        if ((big = bigint_of(ps, v)))
            return reject(ps, "time: %.*s is " TIME_RANGE, show(big->n), big->p);
        s = json_string_value(v);
        n = json_string_length(v);
        rc = rfc3339_to_ns(s, n, ns, &why);
        if (rc == -2)
            return reject(ps, "time: \"%.*s\" is " TIME_RANGE, show(n), s);
        if (rc)
            return reject(ps, "time: \"%.*s\" is not an RFC 3339 time: %s", show(n), s, why);
        return 0;
    case JSON_NULL:
        return reject(ps, "time: null is not a time (leave the key out for the time of receipt)");
    default:
        return reject(ps, "time: %s is not a time (Unix seconds or an RFC 3339 string)",
                      what(ps, v));
    }
}

/* ---- tags and fields ---------------------------------------------------- */

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

static int parse_tags(parse_t *ps, json_t *obj, gw_point_t *pt)
{
    const char *k;
    size_t klen;
    json_t *v;

    if (json_is_null(obj))
        return 0; /* what Go and others write for an empty map */
    if (!json_is_object(obj))
        return reject(ps, "tags: %s is not an object of tags", what(ps, obj));
    if (json_object_size(obj) == 0)
        return 0;
    pt->tags = gw_arena_alloc(ps->a, json_object_size(obj) * sizeof(*pt->tags));
    if (!pt->tags)
        return -ENOMEM;
    json_object_keylen_foreach(obj, k, klen, v) {
        gw_tag_t *t = &pt->tags[pt->ntags];
        const gw_str_t *big;
        char num[32];
        gw_str_t val;

        if (is_time_key(k, klen))
            return reject(ps, "tags.time: InfluxDB cannot store a tag named time");
        switch (json_typeof(v)) {
        case JSON_STRING:
            if ((big = bigint_of(ps, v))) {
                val = *big; /* the JSON text, as for any number */
                break;
            }
            val = (gw_str_t){json_string_value(v), json_string_length(v)};
            break;
        case JSON_INTEGER:
            val = (gw_str_t){num, (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                                                   json_integer_value(v))};
            break;
        case JSON_REAL:
            val = (gw_str_t){num, real_text(json_real_value(v), num, sizeof(num))};
            break;
        case JSON_TRUE:
            val = GW_STR_LIT("true");
            break;
        case JSON_FALSE:
            val = GW_STR_LIT("false");
            break;
        default:
            return reject(ps, "tags.%.*s: %s is not a tag value (string, number or boolean)",
                          show(klen), k, what(ps, v));
        }
        /* Influx has no empty tag values: "" means the tag is absent. */
        if (val.n == 0)
            continue;
        if (dup_str(ps, k, klen, &t->key) || dup_str(ps, val.p, val.n, &t->val))
            return -ENOMEM;
        pt->ntags++;
    }
    return 0;
}

static int parse_fields(parse_t *ps, json_t *obj, gw_point_t *pt)
{
    const char *k;
    size_t klen;
    json_t *v;

    if (json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return reject(ps, "fields: %s is not an object of fields", what(ps, obj));
    if (json_object_size(obj) == 0)
        return 0; /* no fields is for a later stage (or a script) to judge */
    pt->fields = gw_arena_alloc(ps->a, json_object_size(obj) * sizeof(*pt->fields));
    if (!pt->fields)
        return -ENOMEM;
    json_object_keylen_foreach(obj, k, klen, v) {
        gw_field_t *f = &pt->fields[pt->nfields];
        const gw_str_t *big;

        if (is_time_key(k, klen))
            return reject(ps, "fields.time: InfluxDB cannot store a field named time");
        switch (json_typeof(v)) {
        case JSON_STRING:
            if ((big = bigint_of(ps, v))) {
                if (text_to_u64(*big, &f->v.u))
                    return reject(ps, "fields.%.*s: %.*s is out of range (int64 or uint64)",
                                  show(klen), k, show(big->n), big->p);
                f->type = GW_FIELD_UINT;
                break;
            }
            f->type = GW_FIELD_STRING;
            if (dup_str(ps, json_string_value(v), json_string_length(v), &f->v.s))
                return -ENOMEM;
            break;
        case JSON_INTEGER:
            f->type = GW_FIELD_INT;
            f->v.i = json_integer_value(v);
            break;
        case JSON_REAL:
            f->type = GW_FIELD_FLOAT;
            f->v.f = json_real_value(v);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            f->type = GW_FIELD_BOOL;
            f->v.b = json_is_true(v);
            break;
        default:
            return reject(ps, "fields.%.*s: %s is not a field value (number, string or boolean)",
                          show(klen), k, what(ps, v));
        }
        if (dup_str(ps, k, klen, &f->key))
            return -ENOMEM;
        pt->nfields++;
    }
    return 0;
}

/* ---- points ------------------------------------------------------------- */

/* Parse one point object and append it to out when it is good. Returns 0
 * (appended), 1 (rejected in ps->res) or -ENOMEM. */
static int parse_point(parse_t *ps, json_t *obj, gw_points_t *out)
{
    gw_point_t pt = {0};
    int has_series = 0, has_time = 0, rc;
    const char *k;
    size_t klen;
    json_t *v;
    gw_point_t *p;

    if (!json_is_object(obj))
        return reject(ps, "a point must be an object, not %s", what(ps, obj));
    json_object_keylen_foreach(obj, k, klen, v) {
        if (klen == 6 && memcmp(k, "series", 6) == 0) {
            if (!json_is_string(v) || bigint_of(ps, v))
                return reject(ps, "series: %s is not a series name (a non-empty string)",
                              what(ps, v));
            if (json_string_length(v) == 0)
                return reject(ps, "series: must not be empty");
            if (dup_str(ps, json_string_value(v), json_string_length(v), &pt.series))
                return -ENOMEM;
            has_series = 1;
            continue;
        }
        if (klen == 4 && memcmp(k, "time", 4) == 0) {
            rc = parse_time(ps, v, &pt.time_ns);
            has_time = 1;
        } else if (klen == 4 && memcmp(k, "tags", 4) == 0)
            rc = parse_tags(ps, v, &pt);
        else if (klen == 6 && memcmp(k, "fields", 6) == 0)
            rc = parse_fields(ps, v, &pt);
        else
            return reject(ps, "%.*s: unknown key (a point has series, time, tags and fields)",
                          show(klen), k);
        if (rc)
            return rc;
    }
    if (!has_series)
        return reject(ps, "series: missing (a point needs a non-empty string \"series\")");
    if (!has_time)
        pt.time_ns = ps->now_ns;
    pt.src = ps->index;
    p = gw_points_push(out);
    if (!p)
        return -ENOMEM;
    *p = pt;
    return 0;
}

static void reject_syntax(gw_result_t *res, const json_error_t *err)
{
    gw_result_reject(res, GW_WHERE_BODY, 0, "invalid JSON at line %d column %d: %s", err->line,
                     err->column > 0 ? err->column : 1, err->text);
}

int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,
                  gw_points_t *out, gw_result_t *res)
{
    parse_t ps = {.a = a, .res = res, .now_ns = now_ns};
    gw_str_t *big = NULL; /* owned */
    char *copy = NULL;    /* owned: body with placeholders, when needed */
    json_t *root;         /* owned */
    json_error_t err, err2;
    int rc = 0;

    if (len == 0) {
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body is empty (expected a point object or an array of them)");
        return 0;
    }
    region_begin();
    root = json_loadb(body, len, LOAD_FLAGS, &err);
    if (!root && json_error_code(&err) == json_error_numeric_overflow) {
        size_t nul_at = 0;
        long n = bigint_rewrite(body, len, &copy, &big, &nul_at);
        if (n == -ENOMEM) {
            rc = -ENOMEM;
            goto done;
        }
        if (n == -1) {
            int line, col;
            line_col(body, nul_at, &line, &col);
            gw_result_reject(res, GW_WHERE_BODY, 0,
                             "invalid JSON at line %d column %d: \\u0000 is not allowed", line,
                             col);
            goto done;
        }
        if (n > 0) {
            ps.big = big;
            ps.nbig = (size_t)n;
            root = json_loadb(copy, len, LOAD_FLAGS | JSON_ALLOW_NUL, &err2);
            /* A placeholder as a key is still the number where a key
             * should be: keep jansson's first word on it. */
            if (!root && json_error_code(&err2) != json_error_null_byte_in_key)
                err = err2;
        }
    }
    if (!root) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            rc = -ENOMEM;
            goto done;
        }
        reject_syntax(res, &err);
        goto done;
    }

    if (json_is_object(root)) {
        rc = parse_point(&ps, root, out);
    } else if (json_is_array(root)) {
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v) {
            ps.index = (uint32_t)i;
            rc = parse_point(&ps, v, out);
            if (rc < 0)
                break;
        }
    } else {
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body must be a point object or an array of them, not %s",
                         what(&ps, root));
    }
    if (rc > 0)
        rc = 0;

done:
    json_decref(root); /* region pointers are no-ops, spilled ones are freed */
    region_end();
    free(copy);
    free(big);
    return rc;
}
