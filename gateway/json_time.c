/* json_time.c — RFC 3339 strings and real seconds to nanoseconds, see
 * json_time.h. */
#include "json_time.h"

#include <math.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* See json_time.h. */
int gw_json_rfc3339_ns(const char *s, size_t n, int64_t *ns, const char **why)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, off = 0;
    int64_t frac = 0, t;
    size_t i = 19;

    *why = "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)";
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return -1;
    if (s[i] == '.') {
        int nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd == 9) {
                *why = "more than 9 fractional digits";
                return -1;
            }
            frac = frac * 10 + (s[i] - '0');
        }
        if (nd == 0)
            return -1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    if (i == n)
        return -1;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (n - i != 6 || s[i + 3] != ':' || (oh = digits(s + i + 1, 2)) < 0 ||
            (om = digits(s + i + 4, 2)) < 0)
            return -1;
        if (oh > 23 || om > 59) {
            *why = "offset out of range";
            return -1;
        }
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    if (mo < 1 || mo > 12) {
        *why = "month out of range";
        return -1;
    }
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        *why = "day out of range";
        return -1;
    }
    /* 60 would be a leap second, which Unix time cannot name. */
    if (h > 23 || mi > 59 || sec > 59) {
        *why = "hour, minute or second out of range";
        return -1;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (t < 0 && frac > 0) {
        t++; /* so that t * 10^9 can reach INT64_MIN */
        frac -= NS_PER_SEC;
    }
    if (__builtin_mul_overflow(t, NS_PER_SEC, &t) || __builtin_add_overflow(t, frac, &t))
        return -2;
    *ns = t;
    return 0;
}

/* See json_time.h. */
int gw_json_real_ns(double t, int64_t *ns)
{
    double sec;
    int64_t s, r, frac;

    if (!(t > -9223372037.0 && t < 9223372037.0))
        return -1;
    sec = floor(t);
    s = (int64_t)sec;
    frac = llround((t - sec) * 1e6) * 1000;
    if (s < 0 && frac > 0) {
        s++; /* so that s * 10^9 can reach INT64_MIN */
        frac -= NS_PER_SEC;
    }
    if (__builtin_mul_overflow(s, NS_PER_SEC, &r) || __builtin_add_overflow(r, frac, &r))
        return -1;
    *ns = r;
    return 0;
}

