/* utf8.c — text a client sent, made safe to echo, see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t gw_utf8_char(const unsigned char *s, const unsigned char *e)
{
    unsigned c = s[0];
    uint32_t cp, min;
    size_t k;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)(e - s) < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

const char *gw_utf8_echo(char *out, size_t outlen, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    size_t o = 0, cut = 0; /* cut: the last boundary where "..." still fits */

    while (p < e) {
        size_t k = gw_utf8_char(p, e);
        char esc[5];
        const char *piece = (const char *)p;
        size_t len = k;

        if (k == 0 || (k == 1 && (*p < 0x20 || *p == 0x7f))) {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            piece = esc;
            len = 4;
            k = 1;
        }
        if (o + len > outlen - 1) {
            memcpy(out + cut, "...", 3);
            o = cut + 3;
            break;
        }
        memcpy(out + o, piece, len);
        o += len;
        p += k;
        if (o <= outlen - 4)
            cut = o;
    }
    out[o] = '\0';
    return out;
}
