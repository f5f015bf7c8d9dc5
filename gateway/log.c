/* log.c — structured one-line logs to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

static int min_level = GW_LOG_INFO;
static __thread const char *context; /* this thread's "key=value" for every line; NULL = none */
static const char *const names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(int level)
{
    min_level = level;
}

void gw_log_set_context(const char *kv)
{
    context = kv;
}

int gw_log_enabled(int level)
{
    return level >= min_level;
}

void gw_log(int level, const char *msg, const char *fmt, ...)
{
    char line[2048];
    size_t n;
    int k;
    va_list ap;

    if (level < min_level)
        return;
    if (level < GW_LOG_DEBUG || level > GW_LOG_ERROR)
        level = GW_LOG_ERROR;
    n = gw_clock_utc(line, sizeof(line), gw_clock_wall_ns());
    k = snprintf(line + n, sizeof(line) - n, " level=%s msg=\"%s\"", names[level], msg);
    if (k > 0)
        n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    if (fmt && *fmt && n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (k > 0)
            n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    }
    if (context && n < sizeof(line) - 2) {
        k = snprintf(line + n, sizeof(line) - n, " %s", context);
        if (k > 0)
            n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    }
    line[n++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    fwrite(line, 1, n, stderr);
}

int gw_log_limit_pass(gw_log_limit_t *lim, double every_s, int force)
{
    long long now = gw_clock_mono_ns(), last = atomic_load_explicit(&lim->last_ns, memory_order_relaxed);

    if (force) {
        atomic_store_explicit(&lim->last_ns, now, memory_order_relaxed);
        return 1;
    }
    if (last && now - last < (long long)(every_s * 1e9))
        return 0;
    return atomic_compare_exchange_strong(&lim->last_ns, &last, now); /* one thread of those that raced */
}

double gw_log_limit_next(const gw_log_limit_t *lim, double every_s)
{
    return (double)atomic_load_explicit(&lim->last_ns, memory_order_relaxed) / 1e9 + every_s;
}

void gw_log_limited(gw_log_limit_t *lim, double every_s, int level, const char *msg, const char *fmt, ...)
{
    unsigned n;
    char kv[1536];
    va_list ap;

    if (level < min_level)
        return;
    if (!gw_log_limit_pass(lim, every_s, 0)) {
        atomic_fetch_add_explicit(&lim->suppressed, 1, memory_order_relaxed);
        return;
    }
    n = atomic_exchange_explicit(&lim->suppressed, 0, memory_order_relaxed);
    kv[0] = '\0';
    if (fmt && *fmt) {
        va_start(ap, fmt);
        vsnprintf(kv, sizeof(kv), fmt, ap);
        va_end(ap);
    }
    if (n)
        gw_log(level, msg, "%s%ssuppressed=%u", kv, *kv ? " " : "", n);
    else
        gw_log(level, msg, "%s", kv);
}
