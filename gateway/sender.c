/* sender.c — deliver batches to InfluxDB, see sender.h and docs/delivery.md.
 *
 * A batch is worked as a stack of point ranges, starting with the whole of
 * it. Each range is sent until InfluxDB gives an answer that settles it:
 * stored, or split in two (413; a 400/422 that refused some of it), or, for
 * a single point InfluxDB will not take, refused for good. Everything else
 * keeps the range and retries it. So one bad point among n costs about
 * 2 log2(n) extra requests, never blocks the queue, and nothing is dropped
 * that InfluxDB did not refuse on its own.
 *
 * Resending is safe: every line luagw writes carries its timestamp, so a
 * point InfluxDB already stored (1.x keeps the good points of a partial
 * write) is overwritten by itself, not duplicated. */
#include "sender.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadletter.h"
#include "influx.h"
#include "log.h"
#include "metrics.h"

/* ------------------------------------------------------------ the answer table */

static const struct {
    long lo, hi;        /* HTTP status range; 0 = no answer */
    gw_action_t act;
} answers[] = {
    {200, 299, GW_ACT_DELIVERED}, /* stored */
    {400, 400, GW_ACT_REJECTED},  /* bad points: refined below into PARTIAL */
    {422, 422, GW_ACT_REJECTED},  /* 2.x: the same, refined below */
    {401, 401, GW_ACT_REFUSED},   /* credentials */
    {403, 403, GW_ACT_REFUSED},   /* permissions */
    {404, 404, GW_ACT_REFUSED},   /* database / bucket / organization missing */
    {413, 413, GW_ACT_TOO_LARGE}, /* body over InfluxDB's limit */
    {429, 429, GW_ACT_THROTTLED}, /* too many requests */
    {503, 503, GW_ACT_THROTTLED}, /* unavailable */
    {0, 0, GW_ACT_RETRY},         /* no answer: connection refused, reset, timeout */
    {500, 599, GW_ACT_RETRY},     /* other server errors */
    {1, 999, GW_ACT_RETRY},       /* anything else: keep the points and try again */
};

gw_action_t gw_delivery_classify(long status, const char *error, long *dropped)
{
    gw_action_t act = GW_ACT_RETRY;
    const char *d;

    *dropped = -1;
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
        if (status >= answers[i].lo && status <= answers[i].hi) {
            act = answers[i].act;
            break;
        }
    if (act != GW_ACT_REJECTED || !error)
        return act;
    /* InfluxDB 1.x answers 400 "partial write: <why> dropped=N" and 2.x 422
     * "... partial write: <why> dropped=N" after storing the other points.
     * 1.x also says "partial write" for lines it could not parse, with a
     * count that leaves them out (dropped=0): that, or no count at all
     * (2.x's 400 for a parse error stores nothing), stays REJECTED. */
    d = strstr(error, "dropped=");
    if (strstr(error, "partial write") && d && !strstr(error, "unable to parse")) {
        long n = strtol(d + 8, NULL, 10);
        if (n > 0) {
            *dropped = n;
            return GW_ACT_PARTIAL;
        }
    }
    return act;
}

/* ------------------------------------------------------------ one batch */

typedef struct {
    uint32_t lo, hi;
} range_t;

/* Depth-first, so the stack holds one pending sibling per level. Halving by
 * count gives log2(n) <= 32 levels; a split by bytes can be lopsided only
 * around a point heavier than all the rest of its range, which can happen
 * about log2(largest body / smallest line) ~ 25 times in a row. */
#define STACK_MAX 128

/* Delay before the next attempt: Retry-After when given (capped), else
 * 0.1 s * 2^attempt capped at retry_max, with jitter in [50%, 100%]. */
static double next_delay(gw_delivery_t *d, const gw_influx_answer_t *a, gw_action_t act, int attempt)
{
    double cap = d->retry_max, x;

    if (act == GW_ACT_REFUSED)
        return cap; /* a configuration problem will not fix itself soon */
    if (act == GW_ACT_THROTTLED && a->retry_after >= 0)
        return a->retry_after < cap ? a->retry_after : cap;
    x = 0.1 * ldexp(1.0, attempt < 30 ? attempt : 30);
    if (x > cap)
        x = cap;
    return x * (0.5 + 0.5 * (double)rand_r(&d->seed) / (double)RAND_MAX);
}

/* Where to cut [lo, hi) (hi - lo >= 2) so that both halves carry about the
 * same bytes (for 413) or the same points. */
static uint32_t middle(const uint32_t *ends, range_t r, int by_bytes)
{
    uint32_t a, b, m;
    size_t start = r.lo ? ends[r.lo - 1] : 0, target;

    if (!by_bytes)
        return r.lo + (r.hi - r.lo) / 2;
    target = start + (ends[r.hi - 1] - start) / 2;
    a = r.lo;
    b = r.hi - 1;
    while (a < b) { /* first point whose line ends at or past target */
        m = a + (b - a) / 2;
        if (ends[m] < target)
            a = m + 1;
        else
            b = m;
    }
    m = a + 1;
    if (m <= r.lo)
        m = r.lo + 1;
    if (m >= r.hi)
        m = r.hi - 1;
    return m;
}

/* InfluxDB's message made fit for a log value: one line, no double quotes. */
static const char *loggable(const char *in, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < outlen; i++)
        out[j++] = in[i] == '"' ? '\'' : (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
    out[j] = 0;
    return out;
}

/* Add lines lo..hi of a batch to counter k of their series (/metrics): one
 * table lookup per run of lines of the same series. The name is the line's
 * measurement as encoded (escapes kept). */
static void count_series(const char *data, const uint32_t *ends, uint32_t lo, uint32_t hi, int k)
{
    gw_series_slot_t *slot = NULL;
    const char *name = NULL;
    size_t n = 0;
    uint64_t run = 0;

    for (uint32_t i = lo; i < hi; i++) {
        const char *p = data + (i ? ends[i - 1] : 0);
        size_t len = ends[i] - (i ? ends[i - 1] : 0), m = 0;
        while (m < len && p[m] != ',' && p[m] != ' ' && p[m] != '\n')
            m += p[m] == '\\' && m + 1 < len ? 2 : 1;
        if (m > len)
            m = len;
        if (name && m == n && memcmp(p, name, n) == 0) {
            run++;
            continue;
        }
        if (slot)
            GW_SERIES_ADD(slot, k, run);
        slot = gw_series_slot(p, m);
        name = p;
        n = m;
        run = 1;
    }
    if (slot)
        GW_SERIES_ADD(slot, k, run);
}

static int push_halves(range_t *stack, int *top, range_t r, uint32_t mid)
{
    if (*top + 2 > STACK_MAX)
        return -1;
    stack[(*top)++] = (range_t){mid, r.hi}; /* the left half goes first */
    stack[(*top)++] = (range_t){r.lo, mid};
    return 0;
}

int gw_delivery_run(gw_delivery_t *d, const char *data, const uint32_t *ends, uint32_t n, uint32_t *done)
{
    range_t stack[STACK_MAX];
    int top = 0, attempt = 0;

    *done = 0;
    if (n == 0)
        return 0;
    stack[top++] = (range_t){0, n};
    while (top > 0) {
        range_t r = stack[--top];
        size_t start = r.lo ? ends[r.lo - 1] : 0, len = ends[r.hi - 1] - start;
        uint32_t count = r.hi - r.lo;
        gw_influx_answer_t a;
        char why[sizeof(a.error)];
        gw_action_t act;
        long dropped;
        int split = 0, by_bytes = 0;
        double t0;

        if (d->byte_cap && len > d->byte_cap && count > 1) {
            /* InfluxDB refused this size before: do not ask again. */
            if (push_halves(stack, &top, r, middle(ends, r, 1)) == 0)
                continue;
        }
        t0 = gw_now_mono();
        d->write(d->ud, data + start, len, &a);
        gw_hist_observe(&gw_hist_write_seconds, gw_now_mono() - t0);
        gw_hist_observe(&gw_hist_batch_points, count);
        gw_influx_status_count(a.status);
        d->requests++;
        act = gw_delivery_classify(a.status, a.error, &dropped);
        GW_SET(last_status, a.status);
        switch (act) {
        case GW_ACT_DELIVERED:
            d->delivered += count;
            *done += count;
            GW_COUNT(points_written, count);
            count_series(data, ends, r.lo, r.hi, GW_S_WRITTEN);
            GW_COUNT(batches_written, 1);
            GW_SET(healthy, 1);
            GW_SET(influx_refusing, 0);
            if (attempt > 0)
                gw_log_info("influx write recovered", "points=%u attempts=%d", count, attempt + 1);
            attempt = 0;
            continue;
        case GW_ACT_TOO_LARGE:
            split = by_bytes = 1;
            if (count > 1 && (d->byte_cap == 0 || len / 2 < d->byte_cap))
                d->byte_cap = len / 2 > 0 ? len / 2 : 1;
            break;
        case GW_ACT_PARTIAL:
            if ((uint64_t)dropped >= count) {
                /* All of it refused: nothing to look for. */
                d->reject(d->ud, data, ends, r.lo, r.hi, a.status, a.error);
                d->rejected += r.hi - r.lo;
                *done += r.hi - r.lo;
                GW_COUNT(points_dropped, r.hi - r.lo);
                count_series(data, ends, r.lo, r.hi, GW_S_DROPPED);
                attempt = 0;
                continue;
            }
            split = 1;
            break;
        case GW_ACT_REJECTED:
            split = 1;
            break;
        default:
            break;
        }
        if (split) {
            GW_SET(healthy, 1);
            GW_SET(influx_refusing, 0);
            attempt = 0;
            if (count == 1) {
                d->reject(d->ud, data, ends, r.lo, r.hi, a.status,
                          act == GW_ACT_TOO_LARGE && !a.error[0] ? "request too large" : a.error);
                d->rejected++;
                *done += 1;
                GW_COUNT(points_dropped, 1);
                count_series(data, ends, r.lo, r.hi, GW_S_DROPPED);
                continue;
            }
            gw_log_debug("influx refused part of a batch, splitting it",
                         "status=%ld points=%u bytes=%zu error=\"%s\"", a.status, count, len,
                         loggable(a.error, why, sizeof(why)));
            if (push_halves(stack, &top, r, middle(ends, r, by_bytes)) == 0)
                continue;
            /* Cannot happen (the depth is bounded); retry it whole rather than lose it. */
            gw_log_error("sender: bisection stack exhausted", "points=%u", count);
        }
        /* Keep the range and try it again later. */
        GW_COUNT(write_errors, 1);
        GW_SET(healthy, 0);
        if (act == GW_ACT_REFUSED)
            GW_SET(influx_refusing, a.status);
        {
            double wait = next_delay(d, &a, act, attempt);
            /* Loud on the first failure and on every refusal (those come at
             * retry_max pace), then on attempts 2, 4, 8...: a long outage
             * must not flood the log. */
            if (act == GW_ACT_REFUSED || (attempt & (attempt + 1)) == 0)
                gw_log(act == GW_ACT_REFUSED || attempt == 0 ? GW_LOG_ERROR : GW_LOG_WARN,
                       act == GW_ACT_REFUSED ? "influx refuses writes: check monitoring settings"
                                             : "influx write failed, will retry",
                       "status=%ld points=%u attempt=%d retry_in=%.2f error=\"%s\"", a.status, count,
                       attempt + 1, wait, loggable(a.error, why, sizeof(why)));
            attempt++;
            stack[top++] = r;
            if (d->sleep(d->ud, wait))
                return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the thread */

struct gw_sender {
    const gw_config_t *cfg; /* borrowed */
    gw_queue_t *q;          /* borrowed */
    gw_influx_t *influx;    /* owned */
    gw_delivery_t d;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes a backoff sleep on stop */
    int stopping;
    double deadline;        /* monotonic; valid when stopping */
};

static int influx_write(void *ud, const char *body, size_t len, gw_influx_answer_t *ans)
{
    gw_sender_t *s = ud;
    return gw_influx_write(s->influx, body, len, ans);
}

/* Sleep up to secs, returning early when stop() is called. Returns 1 when
 * the sender must give up the current batch (stopping and past deadline). */
static int backoff_sleep(void *ud, double secs)
{
    gw_sender_t *s = ud;
    double until = gw_now_mono() + secs;
    struct timespec ts;
    int give_up;

    pthread_mutex_lock(&s->mu);
    if (s->stopping && until > s->deadline)
        until = s->deadline;
    ts.tv_sec = (time_t)until;
    ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
    while (gw_now_mono() < until) {
        int stopping = s->stopping;
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
        if (!stopping && s->stopping) {
            /* Stop began: re-aim at the shutdown deadline. */
            if (until > s->deadline)
                until = s->deadline;
            ts.tv_sec = (time_t)until;
            ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        }
    }
    give_up = s->stopping && gw_now_mono() >= s->deadline;
    pthread_mutex_unlock(&s->mu);
    return give_up;
}

static void on_reject(void *ud, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to,
                      long status, const char *why)
{
    (void)ud;
    gw_deadletter_add(lines, ends, from, to, status, why);
}

static void *run(void *arg)
{
    gw_sender_t *s = arg;

    for (;;) {
        double deadline;
        gw_batch_t *b;
        uint32_t done;

        pthread_mutex_lock(&s->mu);
        deadline = s->stopping ? s->deadline : 0;
        pthread_mutex_unlock(&s->mu);
        if (deadline > 0 && gw_now_mono() >= deadline)
            break;
        b = gw_queue_take(s->q, deadline);
        if (!b)
            break;
        if (gw_delivery_run(&s->d, b->data.data, (const uint32_t *)(void *)b->ends.data, b->npoints, &done)) {
            /* Given up at shutdown: what is left stays counted as
             * undelivered (and, with a spool, stays in it). */
            gw_queue_abandon(s->q, b, done);
            break;
        }
        gw_queue_release(s->q, b);
    }
    return NULL;
}

gw_sender_t *gw_sender_start(const gw_config_t *cfg, gw_queue_t *q, char *err, size_t errlen)
{
    gw_sender_t *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->q = q;
    s->influx = gw_influx_create(cfg, err, errlen);
    if (!s->influx) {
        free(s);
        return NULL;
    }
    if (cfg->monitoring.use_ssl && !cfg->access.tls_verify)
        gw_log_warn("TLS to InfluxDB without certificate verification (monitoring.tls_verify: false)",
                    "host=%s port=%d", cfg->monitoring.host, cfg->monitoring.port);
    if (gw_deadletter_open(cfg->monitoring.dead_letter, err, errlen)) {
        gw_influx_destroy(s->influx);
        free(s);
        return NULL;
    }
    s->d = (gw_delivery_t){
        .write = influx_write,
        .sleep = backoff_sleep,
        .reject = on_reject,
        .ud = s,
        .retry_max = cfg->monitoring.retry_max,
        .seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s,
    };
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, run, s)) {
        snprintf(err, errlen, "cannot start sender thread");
        gw_deadletter_close();
        gw_influx_destroy(s->influx);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

uint64_t gw_sender_stop(gw_sender_t *s, double deadline)
{
    uint64_t left;

    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->deadline = deadline;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    gw_queue_close(s->q);
    pthread_join(s->thread, NULL);
    left = gw_queue_points(s->q);
    gw_deadletter_close();
    gw_influx_destroy(s->influx);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return left;
}
