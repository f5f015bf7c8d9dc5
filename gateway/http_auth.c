/* http_auth.c — listen.tokens (http_int.h): a request carries a token as
 * Authorization: Bearer or Token (InfluxDB 2.x clients), as Basic's
 * password (1.x clients given a user and password), or as ?p= on /write;
 * looked up in the routes and tokens in force (dispatch.h, tenant.c, which
 * compares in time that does not tell where tokens differ). */
#include "http_int.h"

#include <strings.h>

static int b64val(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 s into out (at most outlen-1 bytes, NUL-terminated).
 * Length, or -1. */
static long b64decode(const char *s, char *out, size_t outlen)
{
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;

    for (; *s && *s != '='; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (long)n;
}

/* listen.tokens: does the request carry one? Authorization: Bearer T or
 * Token T (InfluxDB 2.x clients), Basic with T as the password (1.x clients
 * given a user and password), ?p=T (1.x query parameters, /write and
 * /query), or ?token=T (the status page, which is opened by a link): the
 * token it names, or NULL. */
const gw_tenant_t *http_authorized(const gw_access_t *acc, struct MHD_Connection *c, enum route route)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *p;

    if (a) {
        while (*a == ' ')
            a++;
        if (!strncasecmp(a, "Bearer ", 7) || !strncasecmp(a, "Token ", 6)) {
            a += a[0] == 'B' || a[0] == 'b' ? 7 : 6;
            while (*a == ' ')
                a++;
            return gw_access_find(acc, a, strlen(a));
        }
        if (!strncasecmp(a, "Basic ", 6)) {
            char up[1024], *colon;
            long n = b64decode(a + 6, up, sizeof(up));
            if (n < 0 || !(colon = memchr(up, ':', (size_t)n)))
                return NULL;
            return gw_access_find(acc, colon + 1, (size_t)(up + n - (colon + 1)));
        }
        return NULL;
    }
    if (route == R_WRITE_V1 || route == R_QUERY)
        p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "p");
    else if (route == R_STATUS || route == R_STATUS_JSON)
        p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    else
        p = NULL;
    return p ? gw_access_find(acc, p, strlen(p)) : NULL;
}

/* See http_int.h. */
int http_let_in(struct MHD_Connection *c, enum route route)
{
    gw_access_t *a = gw_access_acquire();
    int ok = !gw_access_tokens(a) || http_authorized(a, c, route) != NULL;

    gw_access_release(a);
    return ok;
}
