/* json_time.h — a point's "time" in JSON, to int64 nanoseconds since the
 * Unix epoch: Unix seconds as a number, or an RFC 3339 string.
 *
 * Seconds written plainly with up to six decimals (1700000000.123456, what
 * clients send) are converted from their text, exactly and inline here:
 * that runs for every point. Any other real goes through its double, rounded
 * to the microsecond (gw_json_real_ns); strings are read by
 * gw_json_rfc3339_ns (json_time.c). */
#ifndef GW_JSON_TIME_H
#define GW_JSON_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "json_lex.h"

#define NS_PER_SEC 1000000000LL

/* What time values int64 nanoseconds can hold, for messages. */
#define TIME_RANGE "out of range (int64 nanoseconds: 1677-09-21 to 2262-04-11)"

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), T and Z in
 * either case, up to 9 fractional digits kept exactly. Returns 0; or -1 with
 * *why set (static text); or -2 when valid but outside int64 nanoseconds. */
int gw_json_rfc3339_ns(const char *s, size_t n, int64_t *ns, const char **why);

/* Unix seconds as a double to nanoseconds, rounded to the microsecond: near
 * today a double is good to about 0.24 µs, so a seventh digit is noise while
 * the first six come back exactly (the error stays below 0.5 µs up to 2^33 s,
 * the year 2242). Returns 0, or -1 when out of range. */
int gw_json_real_ns(double t, int64_t *ns);

/* Unix seconds written d+.d{1,6} with fewer than 2^33 whole seconds, to
 * nanoseconds, exactly: the common case, and what gw_json_real_ns gives for
 * it. Returns 0, or -1 for anything else. */
static inline int gw_json_text_ns(const gw_json_num_t *num, int64_t *ns)
{
    static const int64_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int64_t s = (int64_t)num->ip, us;

    /* Nothing but digits, a point and digits: no exponent. */
    if (num->is_int || num->n != num->nd + num->nf + 1 + (num->t[0] == '-') || num->nd > 10 ||
        num->nf > 6 || s >= ((int64_t)1 << 33))
        return -1;
    us = (int64_t)(num->m - num->ip * (uint64_t)p10[num->nf]) * p10[6 - num->nf];
    *ns = (s * 1000000 + us) * 1000;
    if (num->t[0] == '-')
        *ns = -*ns;
    return 0;
}

#endif
