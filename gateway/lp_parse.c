/* lp_parse.c — InfluxDB 1.x line protocol read as InfluxDB reads it.
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
 * a line (they read it otherwise, refuse it later, or crash), lp_names.c
 * refuses the name, here and in the encoder alike. Bad lines, comments and
 * lines starting with a space end where influxd's line splitter ends them
 * (influx_line_end).
 *
 * A quoted string field value may span lines; its point keeps the number of
 * the line where it started, and the lines inside it are still counted.
 *
 * A line the encoder would write back byte for byte is marked clean
 * (point.h, GW_LP_CLEAN): lp_encode.c then copies its slices. */
#include "lp_internal.h"

#include "log.h"
#include "metrics.h"
#include "numconv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-call scratch for one line's tags and fields; lines with more spill to
 * the arena. */
#define SCRATCH 64

static const char *const kind_name[] = {"series", "tag", "field key"};

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
 * gw_result_reject, so later lines skip the formatting. */
static void __attribute__((format(printf, 3, 4)))
reject_line(parser_t *ps, const char *at, const char *fmt, ...)
{
    gw_result_t *r = ps->res;
    char msg[224];
    va_list ap;

    if (!gw_result_wants_msg(r, ps->line_no)) {
        gw_result_reject(r, GW_WHERE_LINE, ps->line_no, "%s", "");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_result_reject(r, GW_WHERE_LINE, ps->line_no, "column %zu: %s",
                     (size_t)(at - ps->line) + 1, msg);
}

/* reject_line, as the "rejected" return (1) of the parsing functions: the
 * compiler sees the 1. */
#define reject(ps, at, ...) (reject_line((ps), (at), __VA_ARGS__), 1)

/* What the scanners below saw in a name, in *esc: a backslash (the name
 * then needs unescaping), or a byte that is not ASCII (when stop holds
 * C_HIGH: the name must then be UTF-8, which gw_lp_bad_name checks). Stopping at
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

/* Parse an integer token with an `i` or `u` suffix (digits only, the suffix
 * excluded: s..e). Returns 0, or -1 when out of range. */
static int to_int(const char *s, const char *e, int is_uint, gw_field_t *f)
{
    int neg = *s == '-';
    uint64_t v;

    if (gw_num_read_digits(s + neg, e, &v))
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

/* Add digit c to the significand m as gw_num_parse_double does: leading zeros are
 * not significant, and past 19 significant digits only the count grows
 * (gw_num_parse_double then takes its slow path). */
static inline void add_digit(uint64_t *m, int *nsig, char c)
{
    if (*m || c != '0') {
        if (*nsig < 19)
            *m = *m * 10 + (uint64_t)(c - '0');
        ++*nsig;
    }
}

/* Is the integer s..e (already checked: -?digits) spelled as gw_num_put_i64
 * spells it: no leading zero, no "-0"? */
static inline int is_plain_int(const char *s, const char *e)
{
    const char *d = s + (*s == '-');
    return *d != '0' || (e - d == 1 && d == s);
}

/* Is the float -?i[.f] (no exponent; its integer part at s, ilen digits,
 * then, if dot, frac fraction digits; nsig significant digits) spelled as
 * gw_num_put_double spells it? With at most 15 significant digits (DBL_DIG) and
 * no trailing zero, the digits are the shortest that read back, and unique:
 * so no leading zero but a lone "0", no trailing zero or bare '.', and the
 * plain form gw_num_put_double keeps from 1e-6 up. */
static inline int is_plain_float(const char *s, int ilen, int dot, int frac, int nsig)
{
    if (nsig > 15 || ilen == 0 || (ilen > 1 && *s == '0'))
        return 0;
    if (!dot)
        return 1; /* an integer below 10^15: gw_num_put_u64's digits */
    return frac > 0 && s[ilen + frac] != '0' && (*s != '0' || frac - nsig <= 5);
}

/* Parse a non-string field value p..e (it ends at ',', ' ' or the line end)
 * into f; *canon is cleared unless p..e is what put_value (lp_encode.c) writes for f
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
        return reject(ps, p, "field \"%s\": invalid boolean \"%s\"", gw_lp_show(kb, key, keyn),
                      gw_lp_show(vb, p, n));
    case '-':
    case '.':
    case '0' ... '9':
        break;
    default:
        /* NaN, Inf, +1, words...: nothing InfluxDB would take. */
        return reject(ps, p, "field \"%s\": invalid value \"%s\"", gw_lp_show(kb, key, keyn),
                      gw_lp_show(vb, p, n));
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
                          gw_lp_show(kb, key, keyn), gw_lp_show(vb, p, n));
        if (to_int(p, q, *q == 'u', f))
            return reject(ps, p, "field \"%s\": %s out of range \"%s\"", gw_lp_show(kb, key, keyn),
                          *q == 'u' ? "unsigned integer" : "integer", gw_lp_show(vb, p, n));
        if (*q == 'u' || !is_plain_int(p, q))
            *canon = 0;
        return 0;
    }
    if (q != e)
        goto bad_number;
    f->type = GW_FIELD_FLOAT;
    if (!expo && nsig <= 19 && m <= (UINT64_C(1) << 53) && frac <= 22) {
        /* gw_num_parse_double's first fast path, on the digits read above. */
        double d = (double)m / gw_num_pow10[frac];
        f->v.f = *p == '-' ? -d : d;
        if (!is_plain_float(p + (*p == '-'), digits - frac, dot, frac, nsig))
            *canon = 0;
        return 0;
    }
    *canon = 0;
    rc = gw_num_parse_double(p, n, &f->v.f);
    if (rc == -ENOMEM)
        return rc;
    if (rc)
        return reject(ps, p, "field \"%s\": float out of range \"%s\"", gw_lp_show(kb, key, keyn),
                      gw_lp_show(vb, p, n));
    return 0;

bad_number:
    return reject(ps, p, "field \"%s\": invalid number \"%s\"", gw_lp_show(kb, key, keyn),
                  gw_lp_show(vb, p, n));
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
    switch (gw_num_read_digits(q, e, &v)) {
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
    return reject(ps, p, "invalid timestamp \"%s\"", gw_lp_show(tb, p, (size_t)(e - p)));
range:
    return reject(ps, p, "timestamp out of range \"%s\" (InfluxDB stores 1677-09-21 to 2262-04-11)",
                  gw_lp_show(tb, p, (size_t)(e - p)));
}

/* Refuse the line when name (read at s, raw) holds what InfluxDB 1.x
 * cannot read back (gw_lp_bad_name). Only a name with a backslash needs it: any
 * other cannot hold a newline or a NUL byte here. Returns 0 or 1. */
static int check_name(parser_t *ps, const char *s, gw_str_t name, int kind)
{
    char nb[SHOW_MAX + 4];
    const char *why = gw_lp_bad_name(name, kind);

    return why ? reject(ps, s, "%s \"%s\" %s", kind_name[kind], gw_lp_show(nb, name.p, name.n), why) : 0;
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
            return reject(ps, k, "tag \"%s\": missing \"=\"", gw_lp_show(kb, k, (size_t)(p - k)));
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
                return reject(ps, k, "duplicate tag \"%s\"", gw_lp_show(kb, k, (size_t)(p - k)));

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
                          gw_lp_show(kb, k, (size_t)(v - 1 - k)), gw_lp_show(vb, v, (size_t)(t - v)));
        }
        if (p == v)
            return reject(ps, v, "tag \"%s\": missing value", gw_lp_show(kb, k, (size_t)(v - 1 - k)));
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
        return reject(ps, v, "field \"%s\": unterminated string", gw_lp_show(kb, k, (size_t)(v - 1 - k)));
    }
    if (*q == '\0' || (sesc && memchr(p + 1, '\0', (size_t)(q - p - 1))))
        return reject(ps, v, "field \"%s\": NUL byte in a string value",
                      gw_lp_show(kb, k, (size_t)(v - 1 - k)));
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
                      gw_lp_show(kb, k, (size_t)(v - 1 - k)), gw_lp_show(vb, p, (size_t)(t - p)));
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
                          "point: field type conflict)", gw_lp_show(kb, f->key.p, f->key.n));
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
                      "field type conflict)", gw_lp_show(kb, ps->fields[bad].key.p, ps->fields[bad].key.n));
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
                       gw_lp_show(sb, series.p, series.n));
}

/* parse_line, phase 1: the measurement at s and the tags after it, into
 * *series and ps->tags; *pp at the space that ends them. Returns 0, 1
 * (rejected) or -ENOMEM. */
static inline __attribute__((always_inline)) int parse_key(parser_t *ps, const char *s, const char **pp,
                                                           gw_str_t *series, unsigned *clean)
{
    char kb[SHOW_MAX + 4];
    const char *p;
    int esc = 0, rc;

    p = scan_name(s, ps->lend, ps->end, C_MEAS_STOP | C_HIGH, C_MEAS_ESC, &esc);
    if (p == s)
        return reject(ps, s, "missing measurement");
    if ((rc = take(ps, s, (size_t)(p - s), esc & ESC_BACKSLASH, C_NAME_UNESC, series)) ||
        (esc && (rc = check_name(ps, s, *series, N_SERIES))))
        return rc;
    if (esc & ESC_BACKSLASH)
        *clean = 0;
    if ((rc = parse_tags(ps, &p, clean)))
        return rc;
    if (p == ps->lend)
        return reject(ps, p, "missing fields");
    if (*p == '\0') /* what else stops a measurement or a tag value there */
        return ps->ntags ? reject(ps, p, "NUL byte in the value of tag \"%s\"",
                                  gw_lp_show(kb, ps->tags[ps->ntags - 1].key.p, ps->tags[ps->ntags - 1].key.n))
                         : reject(ps, p, "NUL byte in the series");
    *pp = p;
    return 0;
}

/* parse_line, phase 2: the field set after the space at *pp (the series key
 * s..keyend before it), into ps->fields; *pp after it, *fset at its first
 * byte; fields named time are counted in *dropped. After the space, more
 * blanks are tolerated (InfluxDB skips whitespace between sections).
 * Returns 0, 1 (rejected) or -ENOMEM. */
static inline __attribute__((always_inline)) int parse_fields(parser_t *ps, const char *s, const char **pp,
                                                              const char **fset, unsigned *clean,
                                                              uint32_t *dropped)
{
    char kb[SHOW_MAX + 4];
    const char *keyend = *pp, *p, *t;
    int esc, rc;

    for (p = keyend + 1; p < ps->lend && is_blank(*p); p++)
        ;
    if (p == ps->lend)
        return reject(ps, p, "missing fields");
    *fset = p;
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
            return reject(ps, k, "field \"%s\": missing \"=\"", gw_lp_show(kb, k, (size_t)(p - k)));
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
            *clean = 0;

        v = ++p;
        if (p == ps->lend || *p == ',' || *p == ' ')
            return reject(ps, v, "field \"%s\": missing value", gw_lp_show(kb, k, (size_t)(v - 1 - k)));
        if (*p == '"') {
            if ((rc = parse_string(ps, &p, k, v, f, clean)))
                return rc;
        } else {
            t = find_class(p, ps->lend, ps->end, C_VAL_STOP);
            if ((rc = parse_scalar(ps, p, t, k, (size_t)(v - 1 - k), f, clean)))
                return rc;
            p = t;
        }
        if ((rc = add_field(ps, k, f, clean, dropped)))
            return rc;
        if (p == ps->lend || *p == ' ')
            break;
        p++; /* ',' */
    }
    if (ps->nfields == 0)
        return reject(ps, *fset, "field \"time\" is dropped, as InfluxDB drops it, and the point "
                      "has no other field");
    *pp = p;
    return 0;
}

/* parse_line, phase 3, for lines of many tags or fields: duplicates found
 * all at once (a tag refuses the line, a field keeps its last value, as in
 * add_field). Returns 0, 1 (rejected) or -ENOMEM. */
static __attribute__((noinline)) int many_keys(parser_t *ps, const char *s, unsigned *clean)
{
    char kb[SHOW_MAX + 4];

    if (ps->ntags >= DUP_LINEAR) {
        gw_str_t *keys = gw_arena_alloc(ps->a, (size_t)ps->ntags * sizeof(*keys));
        const gw_str_t *d;

        if (!keys)
            return -ENOMEM;
        for (uint32_t i = 0; i < ps->ntags; i++)
            keys[i] = ps->tags[i].key;
        if ((d = gw_lp_sorted_dup(keys, ps->ntags)))
            return reject(ps, s, "duplicate tag \"%s\"", gw_lp_show(kb, d->p, d->n));
    }
    return ps->nfields >= DUP_LINEAR ? merge_fields(ps, s, clean) : 0;
}

/* parse_line, phase 4: the timestamp after the field set (which ends at p),
 * or ps->now_ns, into *ts. *tail_end is where the text the encoder may copy
 * ends: after the field set, or after the time when it is written as the
 * encoder writes it (GW_LP_CLEAN_TIME then set in *clean). Returns 0 or 1
 * (rejected). */
static inline __attribute__((always_inline)) int parse_tail(parser_t *ps, const char *p, const char **tail_end,
                                                            int64_t *ts, unsigned *clean)
{
    char vb[SHOW_MAX + 4];
    const char *t;

    *tail_end = p;
    while (p < ps->lend && is_blank(*p))
        p++;
    *ts = ps->now_ns;
    if (p == ps->lend)
        return 0;
    t = find_class(p, ps->lend, ps->end, C_SPACE);
    if (parse_time(ps, p, t, ts))
        return 1;
    /* In nanoseconds, one space after the fields: the text the encoder
     * writes. */
    if (*clean && ps->ns_per_unit == 1 && p == *tail_end + 1 && **tail_end == ' ' && is_plain_int(p, t)) {
        *clean |= GW_LP_CLEAN_TIME;
        *tail_end = t;
    }
    for (p = t; p < ps->lend && *p == ' '; p++)
        ;
    if (p < ps->lend)
        return reject(ps, p, "unexpected text after timestamp \"%s\"", gw_lp_show(vb, p, (size_t)(ps->lend - p)));
    return 0;
}

/* parse_line, phase 5: the point into ps->out. One arena block for both
 * arrays (arena blocks are 16-aligned and a tag's size keeps the fields
 * after the tags aligned); the scratch is reused by the next line. Copied a
 * struct at a time: there are few. 0 or -ENOMEM. */
static inline __attribute__((always_inline)) int push_point(parser_t *ps, gw_str_t series, int64_t ts,
                                                            unsigned clean, const char *fset,
                                                            const char *tail_end)
{
    size_t tb = (size_t)ps->ntags * sizeof(gw_tag_t);
    size_t fb = (size_t)ps->nfields * sizeof(gw_field_t);
    gw_tag_t *tv = gw_arena_alloc(ps->a, tb + fb);
    gw_field_t *fv = (void *)((char *)tv + tb);
    gw_point_t *pt;

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
    return 0;
}

/* Parse the line starting at s (its first non-blank byte; ps->line, eol and
 * lend are set). Appends a point and returns 0, returns 1 when the line is
 * rejected, or -ENOMEM. ps->eol and ps->nl grow when a string spans lines. */
static int parse_line(parser_t *ps, const char *s)
{
    const char *p, *fset, *tail_end;
    gw_str_t series;
    int64_t ts;
    int rc;
    uint32_t dropped = 0;
    unsigned clean = GW_LP_CLEAN; /* see point.h; cleared by what the encoder would change */

    ps->ntags = ps->nfields = 0;
    if ((rc = parse_key(ps, s, &p, &series, &clean)) ||
        (rc = parse_fields(ps, s, &p, &fset, &clean, &dropped)))
        return rc;
    if ((ps->ntags >= DUP_LINEAR || ps->nfields >= DUP_LINEAR) && (rc = many_keys(ps, s, &clean)))
        return rc;
    if ((rc = parse_tail(ps, p, &tail_end, &ts, &clean)))
        return rc;
    if (dropped)
        note_time_dropped(ps, series, dropped);
    return push_point(ps, series, ts, clean, fset, tail_end);
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
    reject_line(ps, ps->line, "InfluxDB 1.x would read this line differently: it starts with a "
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
