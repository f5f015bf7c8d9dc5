/* fuzz/json_check.h — a strict JSON checker for the fuzz harnesses' answers.
 *
 * The gateway writes its answers with gateway/jsonw.c; a harness checks them
 * apart from that code, by the grammar of RFC 8259: one value, whitespace
 * around it, strings with only the escapes the RFC allows and no raw control
 * character, numbers without leading zeros. UTF-8 validity is not checked here
 * (jsonw guarantees it; the gateway's own specs test it). Nesting is bounded
 * (JSON_CHECK_DEPTH) so a runaway answer cannot overflow the stack.
 *
 * json_check(doc, len, &points_array) is 0 when doc is one valid JSON text,
 * -1 when not; *points_array is 1 when the text is an object whose top-level
 * member "points" is an array (the last such member, if repeated). */
#ifndef FUZZ_JSON_CHECK_H
#define FUZZ_JSON_CHECK_H

#include <stddef.h>
#include <string.h>

#define JSON_CHECK_DEPTH 512

typedef struct {
    const char *p, *end;
} jc_t;

static void jc_ws(jc_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int jc_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A string at c->p; on success *s and *n are its raw bytes between the quotes. */
static int jc_string(jc_t *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    *s = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20)
            return -1;
        if (ch != '\\')
            continue;
        if (c->p >= c->end)
            return -1;
        ch = (unsigned char)*c->p++;
        if (ch == 'u') {
            if (c->end - c->p < 4 || !jc_hex(c->p[0]) || !jc_hex(c->p[1]) || !jc_hex(c->p[2]) ||
                !jc_hex(c->p[3]))
                return -1;
            c->p += 4;
        } else if (!strchr("\"\\/bfnrt", ch) || ch == 0) {
            return -1;
        }
    }
    if (c->p >= c->end)
        return -1;
    *n = (size_t)(c->p++ - *s);
    return 0;
}

static int jc_digits(jc_t *c)
{
    const char *at = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > at ? 0 : -1;
}

static int jc_number(jc_t *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (jc_digits(c))
        return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (jc_digits(c))
            return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (jc_digits(c))
            return -1;
    }
    return 0;
}

static int jc_literal(jc_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n))
        return -1;
    c->p += n;
    return 0;
}

/* A value at c->p (whitespace skipped before it); *kind is its first byte. */
static int jc_value(jc_t *c, int depth, char *kind)
{
    const char *s;
    size_t n;
    char sub;

    jc_ws(c);
    if (c->p >= c->end || depth > JSON_CHECK_DEPTH)
        return -1;
    *kind = *c->p;
    switch (*c->p) {
    case '"': return jc_string(c, &s, &n);
    case 't': return jc_literal(c, "true");
    case 'f': return jc_literal(c, "false");
    case 'n': return jc_literal(c, "null");
    case '[':
        c->p++, jc_ws(c);
        if (c->p < c->end && *c->p == ']')
            return c->p++, 0;
        for (;;) {
            if (jc_value(c, depth + 1, &sub))
                return -1;
            jc_ws(c);
            if (c->p < c->end && *c->p == ']')
                return c->p++, 0;
            if (c->p >= c->end || *c->p++ != ',')
                return -1;
        }
    case '{':
        c->p++, jc_ws(c);
        if (c->p < c->end && *c->p == '}')
            return c->p++, 0;
        for (;;) {
            jc_ws(c);
            if (jc_string(c, &s, &n))
                return -1;
            jc_ws(c);
            if (c->p >= c->end || *c->p++ != ':' || jc_value(c, depth + 1, &sub))
                return -1;
            if (depth == 1 && n == 6 && !memcmp(s, "points", 6))
                *kind = sub == '[' ? 'P' : '{'; /* 'P': top-level object, "points" an array */
            jc_ws(c);
            if (c->p < c->end && *c->p == '}')
                return c->p++, 0;
            if (c->p >= c->end || *c->p++ != ',')
                return -1;
        }
    default: return jc_number(c);
    }
}

static int json_check(const char *doc, size_t len, int *points_array)
{
    jc_t c = { doc, doc + len };
    char kind;

    *points_array = 0;
    if (jc_value(&c, 1, &kind))
        return -1;
    jc_ws(&c);
    if (c.p != c.end)
        return -1;
    *points_array = kind == 'P';
    return 0;
}

#endif
