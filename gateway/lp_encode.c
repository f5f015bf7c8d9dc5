/* lp_encode.c — points written as InfluxDB 1.x line protocol.
 *
 * Every point luagw delivers is written here, once, at the edge: the line
 * is what the batch holds and what InfluxDB receives. Three encoders, tried
 * in turn, each faster than the next and trusting more:
 *  - encode_clean: a point the parser marked clean (point.h) is copied in
 *    slices of the body it was read from, with what a script or a
 *    declaration added written from values;
 *  - encode_fast: one pass that writes and checks together, and gives up
 *    (with no message) at anything unusual;
 *  - encode_checked: every check in order, the first failure named, for
 *    the points refused and the few that need it.
 * Tags are sorted by key as InfluxDB sorts them, names escaped as InfluxDB
 * reads them back (lp_names.c), numbers written by numconv.h. */
#include "lp_internal.h"

#include "numconv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * with no byte of class slow are copied as they are. NULL when gw_lp_bad_name
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
    /* Most names that need escapes hold no byte gw_lp_bad_name looks at (with
     * C_HIGH in slow, a byte that is not ASCII is one). */
    if (has_class(s, C_ODD | (slow & C_HIGH)) && gw_lp_bad_name(s, k))
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
        return isfinite(f->v.f) ? gw_num_put_double(d, f->v.f) : NULL;
    case GW_FIELD_INT:
        d = gw_num_put_i64(d, f->v.i);
        *d++ = 'i';
        return d;
    case GW_FIELD_UINT:
        if ((flags & GW_LP_NO_UINT) && f->v.u > (uint64_t)INT64_MAX)
            return NULL;
        d = gw_num_put_u64(d, f->v.u);
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
        need += 2 + 2 * f->key.n + (f->type == GW_FIELD_STRING ? 2 + 2 * f->v.s.n : GW_NUM_DOUBLE_CHARS);
    }
    return need;
}

/* Sort p's tags by key, bytewise as InfluxDB does (Go bytes.Compare):
 * insertion sort, as tag counts are small and often already sorted. */
static void sort_tags(gw_point_t *p)
{
    gw_tag_t *v = p->tags;

    if (p->ntags > DUP_LINEAR) /* many (a script's, a JSON body's): not quadratic */
        qsort(v, p->ntags, sizeof(*v), gw_lp_cmp_keys); /* the key is the first member */
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
                         gw_lp_show(sb, p->series.p, p->series.n), gw_lp_show(kb, k, (size_t)(v - k)),
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
        need += 2 + 2 * f->key.n + (f->type == GW_FIELD_STRING ? 2 + 2 * f->v.s.n : GW_NUM_DOUBLE_CHARS);
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
        d = gw_num_put_i64(d, p->time_ns);
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
    d = gw_num_put_i64(d, p->time_ns);
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

    gw_lp_show(sb, p->series.p, p->series.n);
    gw_lp_show(kb, f->key.p, f->key.n);
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

/* The point's series as a message quotes it, in buf. */
#define SERIES(buf, p) gw_lp_show((buf), (p)->series.p, (p)->series.n)

/* encode_checked, first: what refuses the point as a whole (its series,
 * its fields, its time), with the reason in err. 0 or 1. */
static int point_error(const gw_point_t *p, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4];
    const char *why;

    gw_lp_show(sb, p->series.p, p->series.n);
    if ((why = gw_lp_bad_name(p->series, N_SERIES))) {
        snprintf(err, errlen, "series \"%s\" %s", sb, why);
        return 1;
    }
    /* A line starting with '#' is a comment, and InfluxDB skips leading
     * tabs and NULs: none of them can be escaped. */
    if (p->series.p[0] == '#' || is_unescapable_blank(p->series.p[0])) {
        snprintf(err, errlen, "series \"%s\" cannot start with %s", sb, lead_name(p->series.p[0]));
        return 1;
    }
    if (p->nfields == 0) {
        snprintf(err, errlen, "series \"%s\": a point needs at least one field", sb);
        return 1;
    }
    if (p->time_ns < TIME_MIN || p->time_ns > TIME_MAX) {
        snprintf(err, errlen, "series \"%s\": time %lld is outside InfluxDB's range", sb, (long long)p->time_ns);
        return 1;
    }
    return 0;
}

/* encode_checked, for a point of many fields: a key given twice, found by
 * sorting a copy of the keys. 0, 1 with the reason in err, or -ENOMEM. */
static int many_fields_dup(const gw_point_t *p, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];
    gw_str_t *keys = malloc((size_t)p->nfields * sizeof(*keys));
    const gw_str_t *dup;

    if (!keys)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->nfields; i++)
        keys[i] = p->fields[i].key;
    dup = gw_lp_sorted_dup(keys, p->nfields);
    if (dup)
        snprintf(err, errlen, "series \"%s\": duplicate field \"%s\"", gw_lp_show(sb, p->series.p, p->series.n),
                 gw_lp_show(kb, dup->p, dup->n));
    free(keys);
    return dup != NULL;
}

/* encode_checked's tags (sorted), each checked and written at d; returns
 * the end, or NULL with the reason in err. */
static char *put_checked_tags(char *d, const gw_point_t *p, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];
    const gw_str_t *prev = NULL;
    const char *why;

    for (uint32_t i = 0; i < p->ntags; i++) {
        const gw_tag_t *t = &p->tags[i];
        if (t->val.n == 0)
            continue; /* InfluxDB treats an empty tag value as no tag */
        if ((why = gw_lp_bad_name(t->key, N_TAG))) {
            snprintf(err, errlen, "series \"%s\": tag key \"%s\" %s", SERIES(sb, p), gw_lp_show(kb, t->key.p, t->key.n),
                     why);
            return NULL;
        }
        if (is_time(t->key)) {
            snprintf(err, errlen, "series \"%s\": tag key \"time\" is not allowed", SERIES(sb, p));
            return NULL;
        }
        if (prev && gw_str_eq(*prev, t->key)) {
            snprintf(err, errlen, "series \"%s\": duplicate tag \"%s\"", SERIES(sb, p),
                     gw_lp_show(kb, t->key.p, t->key.n));
            return NULL;
        }
        if ((why = gw_lp_bad_name(t->val, N_TAG))) {
            snprintf(err, errlen, "series \"%s\": value of tag \"%s\" %s", SERIES(sb, p),
                     gw_lp_show(kb, t->key.p, t->key.n), why);
            return NULL;
        }
        prev = &t->key;
        *d++ = ',';
        d = put_escaped(d, t->key, C_KEY_ESC);
        *d++ = '=';
        d = put_escaped(d, t->val, C_KEY_ESC);
    }
    return d;
}

/* encode_checked's fields, each checked and written at d; returns the end,
 * or NULL with the reason in err. */
static char *put_checked_fields(char *d, const gw_point_t *p, unsigned flags, char *err, size_t errlen)
{
    char sb[SHOW_MAX + 4], kb[SHOW_MAX + 4];
    const char *why;

    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        if ((why = gw_lp_bad_name(f->key, N_FIELD))) {
            snprintf(err, errlen, "series \"%s\": field key \"%s\" %s", SERIES(sb, p),
                     gw_lp_show(kb, f->key.p, f->key.n), why);
            return NULL;
        }
        if (is_time(f->key)) {
            snprintf(err, errlen, "series \"%s\": field key \"time\" is not allowed", SERIES(sb, p));
            return NULL;
        }
        /* The first key follows the space before the field set, where
         * InfluxDB skips tabs and NULs; a later one could follow a comma,
         * but the key is refused everywhere to keep one rule. */
        if (is_unescapable_blank(f->key.p[0])) {
            snprintf(err, errlen, "series \"%s\": field key \"%s\" cannot start with %s", SERIES(sb, p),
                     gw_lp_show(kb, f->key.p, f->key.n), lead_name(f->key.p[0]));
            return NULL;
        }
        for (uint32_t j = 0; p->nfields <= DUP_LINEAR && j < i; j++) {
            if (same_key(p->fields[j].key, f->key)) {
                snprintf(err, errlen, "series \"%s\": duplicate field \"%s\"", SERIES(sb, p),
                         gw_lp_show(kb, f->key.p, f->key.n));
                return NULL;
            }
        }
        *d++ = i ? ',' : ' ';
        d = put_escaped(d, f->key, C_NAME_UNESC);
        *d++ = '=';
        d = put_value(d, f, flags);
        if (!d) {
            value_error(p, f, err, errlen);
            return NULL;
        }
    }
    return d;
}

/* gw_lp_encode with every check in order, each failure with its message:
 * the first check that fails is the one reported. Written and checked in
 * one pass; on a bad name or value, out keeps its length. */
static int encode_checked(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen)
{
    size_t start = out->len, need;
    char *d;
    int rc;

    if (point_error(p, err, errlen))
        return 1;
    need = line_size(p);
    sort_tags(p);
    if (p->nfields > DUP_LINEAR && (rc = many_fields_dup(p, err, errlen)))
        return rc;
    if (gw_buf_reserve(out, need))
        return -ENOMEM;
    d = put_escaped(out->data + start, p->series, C_MEAS_ESC);
    if (!(d = put_checked_tags(d, p, err, errlen)) || !(d = put_checked_fields(d, p, flags, err, errlen)))
        return 1;
    *d++ = ' ';
    d = gw_num_put_i64(d, p->time_ns);
    *d++ = '\n';
    if (too_long(p, out->data + start, d, err, errlen))
        return 1;
    out->len = (size_t)(d - out->data);
    return 0;
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
