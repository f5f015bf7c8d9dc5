/* utf8.h — text a client sent, made safe to echo.
 *
 * Answers are JSON and the Prometheus text format, and both must be UTF-8:
 * a JSON reader refuses a string that is not, and a scraper the whole page
 * (jsonw.h writes invalid bytes the same way).
 * A path, a header, a query parameter or a name from a body that goes back
 * to a client goes through gw_utf8_echo first: valid characters are kept,
 * every byte of an invalid sequence and every control character becomes the
 * four characters \xHH, and a cut falls between characters. */
#ifndef GW_UTF8_H
#define GW_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 character at s (before e): 1 to 4, or 0 when
 * the bytes there are not one (overlong, a surrogate, beyond U+10FFFF, cut
 * short). */
size_t gw_utf8_char(const unsigned char *s, const unsigned char *e);

/* Write the n bytes of s into out (outlen >= 8 bytes) as described above,
 * NUL-terminated; when it does not fit, as much as fits whole, then "...".
 * Returns out. */
const char *gw_utf8_echo(char *out, size_t outlen, const char *s, size_t n);

#endif
