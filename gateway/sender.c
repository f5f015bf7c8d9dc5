/* sender.c — deliver batches to InfluxDB, see sender.h and docs/delivery.md.
 *
 * A batch is worked as a stack of point ranges, starting with the whole of
 * it. Each range is sent until InfluxDB gives an answer that settles it:
 *
 *  - stored (2xx);
 *  - judged (400/422, 413): the lines InfluxDB's message names are moved
 *    apart and both parts sent again (refusal.h), or, when it names none,
 *    the range is split in halves; one point InfluxDB refuses alone is
 *    given up (dead letter). So one client sending a wrong type costs two or
 *    three requests a batch, and k bad points of unrelated kinds about
 *    2 k log2(n). After gw_delivery_budget(n) requests a batch stops
 *    looking: a partial write is then taken as InfluxDB counted it;
 *  - failed without a verdict (5xx, no answer, an answer that cannot be
 *    read; 401/403/404/429/503 once PATIENCE waits did not help): a probe
 *    (gw_delivery_t.probe) asks whether InfluxDB takes other writes. If it
 *    does not, InfluxDB is down: the range is kept and retried with backoff,
 *    and nothing is given up however long that lasts. If it does, the range
 *    itself is the trouble: it is halved at once, and a single point that
 *    fails ALONE_TRIES times in a row, each time while InfluxDB took another
 *    write, is poison and given up. Good points wait behind a poison one for
 *    about 3 log2(n) quick requests, not for an outage that never ends.
 *
 * Nothing is dropped that InfluxDB did not refuse or fail on alone, and the
 * order of the points that are stored is kept (the left part goes first).
 * Resending is safe: every line luagw writes carries its timestamp, so a
 * point InfluxDB already stored (1.x keeps the good points of a partial
 * write) is overwritten by itself, not duplicated. */
#include "sender.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "deadletter.h"
#include "influx.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "status.h"

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
    uint8_t tries; /* failures of this very range in a row while InfluxDB took other writes */
    uint8_t depth; /* splits above it */
} range_t;

/* Depth-first, so the stack holds the pending siblings of each level: one
 * per level for a split in two. Halving by count gives log2(n) <= 32
 * levels; a split by bytes can be lopsided only around a point heavier than
 * all the rest of its range, which can happen about log2(largest body /
 * smallest line) ~ 25 times in a row; a split by what InfluxDB named is
 * lopsided at will, so it is allowed only above NAMED_DEPTH_MAX and halving
 * takes over below; a slow failure's SLOW_PARTS - 1 siblings are pushed only
 * while the stack is below SLOW_ROOM. So it never holds more than about
 * 64 + 16 + 32 + 32 + 25 < STACK_MAX. */
#define STACK_MAX 256
#define NAMED_DEPTH_MAX 32
#define SLOW_ROOM 64

/* A single point is poison once it failed this many times in a row, each
 * time while InfluxDB stored another write (a sibling range or the probe). */
#define ALONE_TRIES 2
/* Before luagw has stored anything, the probe is an empty write, which
 * InfluxDB may take while it fails every real one (disk full): a point
 * failing alone then is waited for with backoff, and given up only after
 * this many seconds of waits. */
#define UNPROVEN_WAIT 10.0
/* 429/503 and 401/403/404 are waited for as the table says this many times
 * in a row before the probe may call the range the problem. */
#define PATIENCE 3
/* A range that failed slowly (a timeout) while InfluxDB answers is cut in
 * this many parts instead of two: 4 slow levels for 5000 points, not 13. */
#define SLOW_PARTS 16

/* What the last writes say about InfluxDB. */
enum { EV_DOWN = 0, EV_ANSWERS = 1, EV_STORES = 2 };

/* The work on one batch. */
typedef struct {
    gw_delivery_t *d;      /* borrowed */
    char *data;            /* borrowed: the batch, rewritten in place by named splits */
    uint32_t *ends;        /* borrowed */
    range_t stack[STACK_MAX];
    int top;
    uint32_t done;         /* points stored or given up */
    int attempt;           /* backoff exponent while InfluxDB is down */
    int fresh_ok;          /* since the last failure: EV_STORES, EV_ANSWERS or EV_DOWN (none) */
    double took;           /* seconds the last write took */
    uint32_t alone_lo;     /* the single point waited for without proof (+1; 0 = none)... */
    double alone_waited;   /* ...and the seconds waited for it so far */
    uint32_t work;         /* requests InfluxDB answered with a 2xx, 400, 413 or 422 */
    uint32_t budget;       /* gw_delivery_budget(n) */
    int isolating;         /* InfluxDB is up and fails on this batch: no PATIENCE waits */
    int told_isolating;    /* logged that this batch holds poison */
    int told_settled;      /* logged that the budget is spent */
} job_t;

uint32_t gw_delivery_budget(uint32_t n)
{
    uint32_t levels = 0;

    while (levels < 32 && ((uint64_t)1 << levels) < n)
        levels++;
    return 32 + 4 * levels;
}

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

/* Push r's two parts, split at mid; the left one is sent first, unless
 * right_first. */
static void push_parts(job_t *j, range_t r, uint32_t mid, int right_first)
{
    uint8_t depth = r.depth < 255 ? r.depth + 1 : 255;

    if (j->top + 2 > STACK_MAX) {
        /* Cannot happen (the depth is bounded); retry it whole rather than lose it. */
        gw_log_error("sender: bisection stack exhausted", "points=%u", r.hi - r.lo);
        j->stack[j->top++] = r;
        return;
    }
    j->stack[j->top++] = right_first ? (range_t){r.lo, mid, 0, depth} : (range_t){mid, r.hi, 0, depth};
    j->stack[j->top++] = right_first ? (range_t){mid, r.hi, 0, depth} : (range_t){r.lo, mid, 0, depth};
}

/* Did InfluxDB store or judge the points (2xx, 400/422, 413)? Then it is up. */
static int judged(gw_action_t act)
{
    return act == GW_ACT_DELIVERED || act == GW_ACT_PARTIAL || act == GW_ACT_REJECTED || act == GW_ACT_TOO_LARGE;
}

/* Push r cut in k parts of about the same count (k >= 2, r.hi - r.lo >= k);
 * the leftmost is sent first. Halves once the stack holds SLOW_ROOM. */
static void push_many(job_t *j, range_t r, uint32_t k)
{
    uint8_t depth = r.depth < 255 ? r.depth + 1 : 255;
    uint32_t n = r.hi - r.lo;

    if (j->top + (int)k > SLOW_ROOM) {
        push_parts(j, r, middle(j->ends, r, 0), 0);
        return;
    }
    for (uint32_t i = k; i > 0; i--)
        j->stack[j->top++] = (range_t){r.lo + (uint32_t)((uint64_t)n * (i - 1) / k),
                                       r.lo + (uint32_t)((uint64_t)n * i / k), 0, depth};
}

/* The answer as the sender acts on it. */
static gw_action_t action_of(const gw_influx_answer_t *a, long *dropped)
{
    *dropped = -1;
    if (a->kind == GW_ANSWER_UNREADABLE)
        return GW_ACT_UNREADABLE;
    return gw_delivery_classify(a->kind == GW_ANSWER_HTTP ? a->status : 0, a->error, dropped);
}

/* Send range r once; count and classify the answer. */
static gw_action_t send_range(job_t *j, range_t r, gw_influx_answer_t *a, long *dropped)
{
    gw_delivery_t *d = j->d;
    size_t start = r.lo ? j->ends[r.lo - 1] : 0;
    double t0 = gw_clock_mono();
    gw_action_t act;

    d->write(d->ud, j->data + start, j->ends[r.hi - 1] - start, a);
    j->took = gw_clock_mono() - t0;
    gw_hist_observe(&gw_hist_write_seconds, j->took);
    gw_hist_observe(&gw_hist_batch_points, r.hi - r.lo);
    gw_influx_status_count(a->kind == GW_ANSWER_HTTP ? a->status : 0);
    d->requests++;
    act = action_of(a, dropped);
    GW_SET(last_status, a->kind == GW_ANSWER_HTTP ? a->status : 0);
    if (judged(act)) {
        if (j->fresh_ok < EV_STORES)
            j->fresh_ok = act == GW_ACT_DELIVERED ? EV_STORES : EV_ANSWERS;
        j->work++;
        GW_SET(healthy, 1);
        GW_SET(influx_refusing, 0);
        gw_status_write(1, a->status, NULL);
    }
    return act;
}

/* Keep the first short line of r as the next probe. */
static void keep_probe(job_t *j, range_t r)
{
    for (uint32_t i = r.lo; i < r.hi && i < r.lo + 8; i++) {
        size_t a = i ? j->ends[i - 1] : 0, n = j->ends[i] - a;
        if (n < GW_PROBE_MAX) {
            memcpy(j->d->probe, j->data + a, n);
            j->d->probe_len = (uint32_t)n;
            return;
        }
    }
}

static void stored(job_t *j, range_t r)
{
    uint32_t count = r.hi - r.lo;

    j->d->delivered += count;
    j->done += count;
    GW_COUNT(points_written, count);
    if (!j->d->no_series)
        count_series(j->data, j->ends, r.lo, r.hi, GW_S_WRITTEN);
    GW_COUNT(batches_written, 1);
    if (j->attempt > 0)
        gw_log_info("influx write recovered", "points=%u attempts=%d", count, j->attempt + 1);
    j->attempt = 0;
    keep_probe(j, r);
}

/* Give up r for reason, counted as dropped. */
static void give_up(job_t *j, range_t r, long status, int reason, const char *why)
{
    uint32_t count = r.hi - r.lo;

    j->d->reject(j->d->ud, j->data, j->ends, r.lo, r.hi, status, reason, why);
    j->d->rejected += count;
    j->done += count;
    GW_COUNT(points_dropped, count);
    if (!j->d->no_series)
        count_series(j->data, j->ends, r.lo, r.hi, GW_S_DROPPED);
}

/* The budget is spent: take InfluxDB's count of a partial write as the
 * answer. It stored all of r but dropped points; the whole range goes to
 * the dead letter (replaying the stored ones rewrites them unchanged). */
static void settle(job_t *j, range_t r, long dropped, const gw_influx_answer_t *a)
{
    uint32_t count = r.hi - r.lo;
    char why[sizeof(a->error) + 160], msg[sizeof(a->error)];

    snprintf(why, sizeof(why), "%ld of these %u points refused, the others stored; not looked into: %s", dropped,
             count, a->error);
    j->d->reject(j->d->ud, j->data, j->ends, r.lo, r.hi, a->status, GW_DL_UNRESOLVED, why);
    j->d->rejected += (uint64_t)dropped;
    j->d->delivered += count - (uint64_t)dropped;
    j->done += count;
    GW_COUNT(points_dropped, (uint64_t)dropped);
    GW_COUNT(points_written, count - (uint64_t)dropped);
    if (!j->told_settled++) {
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT; /* a client can make every batch do this */
        gw_log_limited(&lim, 10.0, GW_LOG_WARN, "influx refused many points of one batch: partial writes taken as counted",
                       "requests=%u budget=%u status=%ld error=\"%s\"", j->work, j->budget, a->status,
                       loggable(a->error, msg, sizeof(msg)));
    }
}

/* 400/422/413: InfluxDB judged r and refused some or all of it. */
static void on_refusal(job_t *j, range_t r, gw_action_t act, long dropped, const gw_influx_answer_t *a)
{
    uint32_t count = r.hi - r.lo;
    char why[sizeof(a->error)];
    int k;

    j->attempt = 0;
    if (act == GW_ACT_TOO_LARGE) {
        size_t len = j->ends[r.hi - 1] - (r.lo ? j->ends[r.lo - 1] : 0);
        if (count == 1) {
            give_up(j, r, a->status, GW_DL_TOO_LARGE, a->error[0] ? a->error : "request too large");
            return;
        }
        if (j->d->byte_cap == 0 || len / 2 < j->d->byte_cap)
            j->d->byte_cap = len / 2 > 0 ? len / 2 : 1;
        push_parts(j, r, middle(j->ends, r, 1), 0);
        return;
    }
    if (count == 1 || (act == GW_ACT_PARTIAL && (uint64_t)dropped >= count)) {
        give_up(j, r, a->status, GW_DL_REFUSED, a->error);
        return;
    }
    if (act == GW_ACT_PARTIAL && j->work > j->budget) {
        settle(j, r, dropped, a);
        return;
    }
    gw_log_debug("influx refused part of a batch, splitting it", "status=%ld points=%u error=\"%s\"", a->status,
                 count, loggable(a->error, why, sizeof(why)));
    /* The lines InfluxDB's message names go apart from the others, and
     * first: they are likely refused together in one request. */
    k = r.depth < NAMED_DEPTH_MAX && (!j->d->own || j->d->own(j->d->ud, &j->data, &j->ends) == 0)
            ? gw_refusal_partition(a->error, j->data, j->ends, r.lo, r.hi)
            : 0;
    if (k > 0 && (uint32_t)k < count)
        push_parts(j, r, r.hi - (uint32_t)k, 1);
    else
        push_parts(j, r, middle(j->ends, r, 0), 0);
}

/* Does InfluxDB take other writes? Sends the probe: the last line it stored
 * (which overwrites itself), or an empty write before any. EV_STORES when
 * it stored the line; EV_ANSWERS when it took the empty write or judged
 * the line (400/413/422: up, but the line is retired); else EV_DOWN. */
static int probe(job_t *j)
{
    gw_delivery_t *d = j->d;
    gw_influx_answer_t a;
    gw_action_t act;
    long dropped;
    int had_line = d->probe_len > 0;

    d->write(d->ud, d->probe, d->probe_len, &a);
    d->probes++;
    act = action_of(&a, &dropped);
    if (act == GW_ACT_DELIVERED)
        return had_line ? EV_STORES : EV_ANSWERS;
    if (!judged(act))
        return EV_DOWN;
    d->probe_len = 0;
    return EV_ANSWERS;
}

/* InfluxDB is down (or asks to wait): keep r, wait as the table says.
 * Returns 1 when sleep() gave up; *waited (if given) grows by the wait. */
static int wait_and_retry(job_t *j, range_t r, gw_action_t act, const gw_influx_answer_t *a, double *waited)
{
    double wait = next_delay(j->d, a, act, j->attempt);
    char why[sizeof(a->error)];
    int attempt = j->attempt;

    GW_SET(healthy, 0);
    if (act == GW_ACT_REFUSED)
        GW_SET(influx_refusing, a->status);
    gw_status_write(0, a->kind == GW_ANSWER_HTTP ? a->status : 0, a->error);
    /* Loud on the first failure and on every refusal (those come at
     * retry_max pace), then on attempts 2, 4, 8...: a long outage must not
     * flood the log. */
    if (act == GW_ACT_REFUSED || (attempt & (attempt + 1)) == 0)
        gw_log(act == GW_ACT_REFUSED || attempt == 0 ? GW_LOG_ERROR : GW_LOG_WARN,
               act == GW_ACT_REFUSED ? "influx refuses writes: check monitoring settings"
                                     : "influx write failed, will retry",
               "status=%ld points=%u attempt=%d retry_in=%.2f error=\"%s\"", a->status, r.hi - r.lo, attempt + 1,
               wait, loggable(a->error, why, sizeof(why)));
    j->attempt++;
    j->stack[j->top++] = r;
    if (waited)
        *waited += wait;
    return j->d->sleep(j->d->ud, wait);
}

/* Why a point that fails alone is given up. */
static int poison_reason(gw_action_t act, const gw_influx_answer_t *a)
{
    if (act == GW_ACT_UNREADABLE)
        return GW_DL_UNREADABLE;
    return a->kind == GW_ANSWER_NONE ? GW_DL_NO_ANSWER : GW_DL_SERVER_ERROR;
}

/* r failed without a verdict (5xx, no answer, unreadable, and 401/403/404/
 * 429/503 past PATIENCE). Down, or poison in r? Returns 1 when sleep() gave
 * up. */
static int on_failure(job_t *j, range_t r, gw_action_t act, const gw_influx_answer_t *a)
{
    char why[sizeof(a->error)];
    int ev;

    GW_COUNT(write_errors, 1);
    if (++r.tries < PATIENCE && !j->isolating && (act == GW_ACT_THROTTLED || act == GW_ACT_REFUSED))
        return wait_and_retry(j, r, act, a, NULL);
    ev = j->fresh_ok;
    if (ev < EV_STORES) {
        int p = probe(j);
        ev = p > ev ? p : ev;
    }
    j->fresh_ok = EV_DOWN;
    j->isolating = ev != EV_DOWN;
    if (ev == EV_DOWN) {
        r.tries = 0;
        return wait_and_retry(j, r, act, a, NULL);
    }
    /* InfluxDB takes other writes: the trouble is in r. */
    if (ev == EV_STORES)
        j->attempt = 0;
    GW_SET(healthy, 1);
    GW_SET(influx_refusing, 0);
    if (!j->told_isolating++) {
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT; /* a client can make every batch do this */
        gw_log_limited(&lim, 10.0, GW_LOG_WARN,
                       "influx fails on part of a batch while it takes other writes: isolating the points",
                       "status=%ld points=%u error=\"%s\"", a->status, r.hi - r.lo,
                       loggable(a->error, why, sizeof(why)));
    }
    if (r.hi - r.lo > 1) {
        uint32_t k = j->d->slow > 0 && j->took >= j->d->slow ? SLOW_PARTS : 2;
        push_many(j, r, k < r.hi - r.lo ? k : r.hi - r.lo);
        return 0;
    }
    if (ev == EV_ANSWERS) {
        /* Not proven: InfluxDB may be failing every real write. */
        if (j->alone_lo != r.lo + 1) {
            j->alone_lo = r.lo + 1;
            j->alone_waited = 0;
        }
        if (j->alone_waited < UNPROVEN_WAIT || r.tries < ALONE_TRIES)
            return wait_and_retry(j, r, act, a, &j->alone_waited);
    } else if (r.tries < ALONE_TRIES) {
        j->stack[j->top++] = r;
        return 0;
    }
    give_up(j, r, a->status, poison_reason(act, a), a->error[0] ? a->error : "no error message");
    return 0;
}

int gw_delivery_run(gw_delivery_t *d, char *data, uint32_t *ends, uint32_t n, uint32_t *done)
{
    job_t job = {.d = d, .data = data, .ends = ends, .budget = gw_delivery_budget(n)}, *j = &job;
    int rc = 0;

    *done = 0;
    if (n == 0)
        return 0;
    j->stack[j->top++] = (range_t){0, n, 0, 0};
    while (j->top > 0 && rc == 0) {
        range_t r = j->stack[--j->top];
        size_t len = ends[r.hi - 1] - (r.lo ? ends[r.lo - 1] : 0);
        gw_influx_answer_t a;
        gw_action_t act;
        long dropped;

        if (d->byte_cap && len > d->byte_cap && r.hi - r.lo > 1) {
            /* InfluxDB refused this size before: do not ask again. */
            push_parts(j, r, middle(ends, r, 1), 0);
            continue;
        }
        act = send_range(j, r, &a, &dropped);
        if (act == GW_ACT_DELIVERED)
            stored(j, r);
        else if (judged(act))
            on_refusal(j, r, act, dropped, &a);
        else
            rc = on_failure(j, r, act, &a);
    }
    *done = j->done;
    return rc;
}
