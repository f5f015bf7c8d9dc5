/* refusal.c — which lines of a write InfluxDB's refusal names, see refusal.h. */
#include "refusal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What a message names: a field type conflict or a quoted line. */
typedef struct {
    const char *meas, *field, *type; /* conflict: unescaped names, borrowed from the message */
    size_t meas_n, field_n, type_n;
    const char *line;                /* unparsable: the quoted text, up to the end of the message */
} named_t;

/* The text of s from just past start up to stop: *p, *n. Returns the rest
 * of s after stop, or NULL when either is missing. */
static const char *between(const char *s, const char *start, const char *stop, const char **p, size_t *n)
{
    const char *a = strstr(s, start), *b;

    if (!a)
        return NULL;
    a += strlen(start);
    b = strstr(a, stop);
    if (!b)
        return NULL;
    *p = a;
    *n = (size_t)(b - a);
    return b + strlen(stop);
}

/* Read error into *w. 0, or -1 when it names nothing usable. The conflict
 * text is the same in 1.x's 400 and 2.x's 422: `input field "F" on
 * measurement "M" is type T, already exists as type U`. */
static int parse_message(const char *error, named_t *w)
{
    const char *rest;

    memset(w, 0, sizeof(*w));
    rest = between(error, "input field \"", "\" on measurement \"", &w->field, &w->field_n);
    if (rest && (rest = between(rest, "", "\" is type ", &w->meas, &w->meas_n)) != NULL) {
        w->type = rest;
        w->type_n = strcspn(rest, ", ");
        return w->type_n ? 0 : -1;
    }
    w->line = strstr(error, "unable to parse '");
    if (!w->line)
        return -1;
    w->line += strlen("unable to parse '");
    return 0;
}

/* Is c one of set? (Never for a NUL byte.) */
static int in(const char *set, char c)
{
    return c && strchr(set, c);
}

/* Does the escaped name at p (up to an unescaped byte of stops, or end)
 * equal the plain name? As influxd reads names: a backslash pairs with the
 * byte after it, so that byte never ends the name, and the pair stands for
 * that byte alone when it is one of , space = " (escape.Unescape), else for
 * both. *next is set just past the name. */
static int name_eq(const char *p, const char *end, const char *stops, const char *name, size_t n,
                   const char **next)
{
    size_t k = 0;
    int eq = 1;

    while (p < end && !in(stops, *p)) {
        char c = *p++;
        if (c == '\\' && p < end) {
            if (!in(",= \"", *p)) {
                eq &= k < n && name[k] == '\\';
                k++;
            }
            c = *p++;
        }
        eq &= k < n && name[k] == c;
        k++;
    }
    *next = p;
    return eq && k == n;
}

/* The type InfluxDB gives the field value at p (up to end of the line):
 * its name as InfluxDB writes it; *next just past the value. */
static const char *value_type(const char *p, const char *end, const char **next)
{
    const char *v = p;
    size_t n;

    if (p < end && *p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\' && p + 1 < end)
                p++;
        *next = p < end ? p + 1 : p;
        return "string";
    }
    while (p < end && *p != ',' && *p != ' ')
        p++;
    *next = p;
    n = (size_t)(p - v);
    if (n == 0)
        return "";
    if (v[n - 1] == 'i')
        return "integer";
    if (v[n - 1] == 'u')
        return "unsigned";
    if (in("tTfF", v[0]))
        return "boolean";
    return "float";
}

/* Does the line [p, end) carry the named conflict? */
static int has_conflict(const char *p, const char *end, const named_t *w)
{
    const char *q;
    int meas = name_eq(p, end, ", ", w->meas, w->meas_n, &q);

    if (!meas)
        return 0;
    if (q < end && *q == ',') /* the tags, up to the first unescaped space */
        name_eq(q, end, " ", "", 0, &q);
    while (q < end && *q == ' ')
        q++;
    while (q < end && *q != ' ' && *q != '\n') {
        int key = name_eq(q, end, "=, ", w->field, w->field_n, &q);
        const char *type;
        if (q >= end || *q != '=')
            return 0;
        type = value_type(q + 1, end, &q);
        if (key)
            return strlen(type) == w->type_n && memcmp(type, w->type, w->type_n) == 0;
        if (q < end && *q == ',')
            q++;
    }
    return 0;
}

/* Is the line [p, end) (its '\n' left out) the one the message quotes? */
static int is_quoted(const char *p, const char *end, const named_t *w)
{
    size_t n = (size_t)(end - p);

    if (n && p[n - 1] == '\n')
        n--;
    return strncmp(w->line, p, n) == 0 && memchr(p, 0, n) == NULL && strncmp(w->line + n, "': ", 3) == 0;
}

int gw_refusal_partition(const char *error, char *data, uint32_t *ends, uint32_t lo, uint32_t hi)
{
    size_t base = lo ? ends[lo - 1] : 0, w = base, t = 0;
    uint32_t moved = 0, kept = 0, *lens;
    named_t named;
    char *tmp;

    if (!error || hi <= lo || parse_message(error, &named))
        return 0;
    tmp = malloc(ends[hi - 1] - base);
    lens = malloc(sizeof(*lens) * (hi - lo));
    if (!tmp || !lens) {
        free(tmp);
        free(lens);
        return -ENOMEM;
    }
    /* Named lines go to tmp; the others slide down over the gaps. */
    for (uint32_t i = lo; i < hi; i++) {
        size_t a = i ? ends[i - 1] : 0, n = ends[i] - a;
        const char *p = data + a;
        int hit = named.line ? is_quoted(p, p + n, &named) : has_conflict(p, p + n, &named);
        if (hit) {
            memcpy(tmp + t, p, n);
            t += n;
            lens[moved++] = (uint32_t)n;
        } else {
            memmove(data + w, p, n);
            w += n;
            ends[lo + kept++] = (uint32_t)w;
        }
    }
    memcpy(data + w, tmp, t);
    for (uint32_t i = 0; i < moved; i++) {
        w += lens[i];
        ends[lo + kept + i] = (uint32_t)w;
    }
    free(tmp);
    free(lens);
    return (int)moved;
}
