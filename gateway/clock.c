/* clock.c — the monotonic and the wall clock, see clock.h. */
#include "clock.h"

#include <stdio.h>

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double gw_clock_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t gw_clock_mono_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

int64_t gw_clock_wall_ns(void)
{
    return read_ns(CLOCK_REALTIME);
}

size_t gw_clock_utc(char *out, size_t outlen, int64_t wall_ns)
{
    time_t sec = (time_t)(wall_ns / 1000000000);
    struct tm tm;
    size_t n;
    int k;

    gmtime_r(&sec, &tm);
    n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(out + n, outlen - n, ".%03dZ", (int)(wall_ns % 1000000000 / 1000000));
    return k > 0 && (size_t)k < outlen - n ? n + (size_t)k : n;
}

struct timespec gw_clock_timespec(double s)
{
    struct timespec ts;

    if (s < 0)
        s = 0;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000) /* rounding up to a whole second */
        ts.tv_nsec = 999999999;
    return ts;
}
