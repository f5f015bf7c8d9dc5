/* lp_names.c — the names InfluxDB 1.x reads back as written.
 *
 * A name luagw writes must come back from influxd as the same bytes, in
 * the same place: InfluxDB's scanners for series, tags and field keys each
 * read backslashes their own way (docs/hardening.md, "Line protocol as
 * InfluxDB reads it"), and some names they store but cannot read back, or
 * read as another line. gw_lp_bad_name says which and why; the parser
 * (lp_parse.c) refuses such names as it reads them, the encoder
 * (lp_encode.c) as it writes them, with the same words. Also here: the
 * printable copy of a token that every message quotes, and finding a
 * duplicate key among many. */
#include "lp_internal.h"

#include "utf8.h"

#include <stdlib.h>

const char *gw_lp_show(char *buf, const char *s, size_t n)
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
const char *gw_lp_bad_name(gw_str_t s, int kind)
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
int gw_lp_cmp_keys(const void *a, const void *b)
{
    return gw_str_cmp(*(const gw_str_t *)a, *(const gw_str_t *)b);
}

/* Sort keys[0..n) and return the first duplicate, or NULL. */
const gw_str_t *gw_lp_sorted_dup(gw_str_t *keys, uint32_t n)
{
    qsort(keys, n, sizeof(*keys), gw_lp_cmp_keys);
    for (uint32_t i = 1; i < n; i++)
        if (gw_str_eq(keys[i - 1], keys[i]))
            return &keys[i];
    return NULL;
}

