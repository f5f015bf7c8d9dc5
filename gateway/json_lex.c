/* json_lex.c — what json.c calls only on cold paths, see json_lex.h: number
 * texts (an integer beyond int64, a real tag value) and the message of a
 * body that is not JSON. */
#include "json_lex.h"

#include "utf8.h"

#include <stdio.h>

/* How much a body error quotes of the text where it is: characters, with
 * control characters and bytes that are not UTF-8 written \xHH. */
#define NEAR_SHOW 24

/* ---- number texts ------------------------------------------------------------ */

/* See json_lex.h. */
int gw_json_text_u64(gw_str_t t, uint64_t *out)
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

/* See json_lex.h. */
size_t gw_json_real_text(double d, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return (size_t)n;
}

/* ---- body errors -------------------------------------------------------- */

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

/* The body is not JSON (the tokenizer or one of our checks said so): one
 * error saying what (why) and where: the line and column (in characters)
 * of byte why_at, and the text from there, echoed safely (utf8.h). */
void gw_json_body_error(const char *body, size_t len, gw_result_t *res, const char *why, size_t why_at)
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
