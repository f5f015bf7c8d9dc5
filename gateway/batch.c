/* batch.c — bounded batch queue, in memory or over a spool; see batch.h. */
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define SPARE_MAX 4                 /* released batches kept for reuse... */
#define SPARE_BYTES ((size_t)1 << 20) /* ...when their buffers are no larger */
#define TRIM_MIN ((size_t)64 << 10)   /* a sealed batch's slack beyond this and a quarter is given back */
#define DROP_LOG_EVERY 10.0           /* seconds between "dropped the oldest points" lines */

struct gw_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled when a batch is sealed or on close */
    gw_batch_t *open;      /* owned: receiving appends (with a spool: being filled by take), or NULL */
    gw_batch_t *head;      /* owned: sealed batches, FIFO */
    gw_batch_t *tail;
    gw_batch_t *spare;     /* owned: released batches kept for reuse */
    int nspare;
    uint64_t points;       /* held: open + sealed + taken */
    uint64_t bytes;        /* their lines and ends */
    uint32_t batch_size;
    uint32_t limit;
    uint64_t limit_bytes;
    double period;
    int closed;
    int drop_oldest;
    gw_spool_t *spool;     /* owned, or NULL */
    uint64_t dropped_unlogged;
    gw_log_limit_t drop_lim; /* lines on them */
};

gw_queue_t *gw_queue_create(uint32_t batch_size, uint32_t buffer_limit, double flushing_period)
{
    gw_queue_t *q = calloc(1, sizeof(*q));
    pthread_condattr_t ca;

    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    q->batch_size = batch_size ? batch_size : 1;
    q->limit = buffer_limit;
    q->limit_bytes = UINT64_MAX;
    q->period = flushing_period;
    return q;
}

void gw_queue_set_drop_oldest(gw_queue_t *q, int on)
{
    q->drop_oldest = on;
}

void gw_queue_set_limit_bytes(gw_queue_t *q, uint64_t limit)
{
    q->limit_bytes = limit;
}

void gw_queue_use_spool(gw_queue_t *q, gw_spool_t *spool)
{
    q->spool = spool;
}

gw_spool_t *gw_queue_spool(gw_queue_t *q)
{
    return q->spool;
}

void gw_queue_spool_json(gw_queue_t *q, gw_jsonw_t *w)
{
    uint64_t appends, syncs;

    if (!q->spool) {
        gw_jsonw_null(w);
        return;
    }
    gw_spool_counts(q->spool, &appends, &syncs);
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "points", gw_spool_points(q->spool));
    gw_jsonw_member_uint(w, "bytes", gw_spool_bytes(q->spool));
    gw_jsonw_member_uint(w, "damaged_records", gw_spool_corrupt(q->spool));
    gw_jsonw_member_uint(w, "appends", appends);
    gw_jsonw_member_uint(w, "syncs", syncs);
    gw_jsonw_end(w);
}

gw_queue_t *gw_queue_open(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_queue_t *q = gw_queue_create(cfg->monitoring.batch_size, cfg->monitoring.buffer_limit,
                                    cfg->monitoring.flushing_period);
    int drop = cfg->monitoring.overflow == GW_OVERFLOW_DROP_OLDEST;

    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gw_queue_set_drop_oldest(q, drop);
    gw_queue_set_limit_bytes(q, cfg->monitoring.buffer_limit_bytes);
    if (cfg->spool.dir[0]) {
        gw_spool_opts_t o = {
            .dir = cfg->spool.dir,
            .max_bytes = cfg->spool.max_bytes,
            .fsync = cfg->spool.fsync,
            .fsync_interval = cfg->spool.fsync_interval,
            .drop_oldest = drop,
        };
        gw_spool_t *s = gw_spool_open(&o, err, errlen);
        if (!s) {
            gw_queue_destroy(q);
            return NULL;
        }
        gw_queue_use_spool(q, s);
        gw_queue_set_limit_bytes(q, cfg->spool.max_bytes);
    }
    return q;
}

static gw_batch_t *batch_new(gw_queue_t *q)
{
    gw_batch_t *b = q->spare;
    if (b) {
        q->spare = b->next;
        q->nspare--;
        b->data.len = 0;
        b->ends.len = 0;
    } else {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
    }
    b->npoints = 0;
    b->opened_at = 0;
    b->next = NULL;
    return b;
}

static void batch_free(gw_batch_t *b)
{
    gw_buf_free(&b->data);
    gw_buf_free(&b->ends);
    free(b);
}

/* The bytes b holds, as counted against buffer_limit_bytes. */
static uint64_t batch_bytes(const gw_batch_t *b)
{
    return (uint64_t)b->data.len + b->ends.len;
}

/* Give back the slack a growing buffer keeps beyond its length. */
static void trim(gw_buf_t *buf)
{
    char *p;

    if (buf->cap - buf->len <= TRIM_MIN || buf->cap - buf->len <= buf->len / 4 || buf->len == 0)
        return;
    p = realloc(buf->data, buf->len);
    if (p) {
        buf->data = p;
        buf->cap = buf->len;
    }
}

/* Keep b for reuse, or free it. mu held. Returns b when the caller must free
 * it (outside the lock), else NULL. */
static gw_batch_t *recycle(gw_queue_t *q, gw_batch_t *b)
{
    if (q->nspare >= SPARE_MAX || b->data.cap > SPARE_BYTES || b->ends.cap > SPARE_BYTES)
        return b;
    b->next = q->spare;
    q->spare = b;
    q->nspare++;
    return NULL;
}

/* Move the open batch to the tail of the sealed list. */
static void seal(gw_queue_t *q)
{
    gw_batch_t *b = q->open;
    if (!b)
        return;
    trim(&b->data);
    trim(&b->ends);
    q->open = NULL;
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    pthread_cond_signal(&q->cv);
}

/* Log the points overflow dropped since the last such line: at most every
 * DROP_LOG_EVERY seconds, or now when forced (shutdown). take() wakes for
 * it, so the last burst is logged too. mu held. */
static void log_drops(gw_queue_t *q, int force)
{
    if (!q->dropped_unlogged || !gw_log_limit_pass(&q->drop_lim, DROP_LOG_EVERY, force))
        return;
    gw_log_warn("buffer full: dropped the oldest points (overflow: drop_oldest)",
                "points=%llu buffer_limit=%u buffer_limit_bytes=%llu", (unsigned long long)q->dropped_unlogged,
                q->limit, (unsigned long long)q->limit_bytes);
    q->dropped_unlogged = 0;
}

/* Would npoints more points of nbytes fit? mu held. */
static int fits(const gw_queue_t *q, uint32_t npoints, uint64_t nbytes)
{
    return q->points + npoints <= q->limit && q->bytes + nbytes <= q->limit_bytes;
}

/* overflow: drop_oldest. Drop waiting batches, oldest first (the open one
 * last), until need more points of nbytes fit. The batch being sent is not
 * touched. mu held. Returns the points dropped. */
static uint64_t drop_oldest(gw_queue_t *q, uint32_t need, uint64_t nbytes)
{
    uint64_t lost = 0;

    while (!fits(q, need, nbytes) && (q->head || q->open)) {
        gw_batch_t *b = q->head ? q->head : q->open;
        if (b == q->head) {
            q->head = b->next;
            if (!q->head)
                q->tail = NULL;
        } else {
            q->open = NULL;
        }
        q->points -= b->npoints;
        q->bytes -= batch_bytes(b);
        lost += b->npoints;
        b = recycle(q, b);
        if (b)
            batch_free(b);
    }
    return lost;
}

/* Append points [from, to) of a request to b. 0 or -ENOMEM. */
static int append(gw_batch_t *b, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to)
{
    size_t start = from ? ends[from - 1] : 0, base = b->data.len;

    if (gw_buf_reserve(&b->ends, 4 * (size_t)(to - from)) ||
        gw_buf_append(&b->data, lines + start, ends[to - 1] - start))
        return -ENOMEM;
    for (uint32_t i = from; i < to; i++) {
        uint32_t e = (uint32_t)(base + ends[i] - start);
        memcpy(b->ends.data + b->ends.len, &e, 4);
        b->ends.len += 4;
    }
    b->npoints += to - from;
    return 0;
}

/* How many of points [from, n) fit in a batch already holding have bytes of
 * lines and room points: at least one when the batch is empty. */
static uint32_t take_count(const uint32_t *ends, uint32_t from, uint32_t n, uint32_t room, size_t have)
{
    size_t start = from ? ends[from - 1] : 0;
    uint32_t take = n - from < room ? n - from : room;

    if (have + (ends[from + take - 1] - start) <= GW_BATCH_MAX_BYTES)
        return take;
    /* Cut by size: the last point whose line still fits. */
    for (take = 0; take < room && from + take < n; take++)
        if (have + (ends[from + take] - start) > GW_BATCH_MAX_BYTES)
            break;
    return take || have ? take : 1;
}

int gw_queue_push(gw_queue_t *q, const char *lines, size_t len, const uint32_t *ends,
                  uint32_t npoints)
{
    uint64_t lost = 0, nbytes = (uint64_t)len + 4 * (uint64_t)npoints;
    uint32_t done = 0;
    int rc = 0;

    if (npoints == 0)
        return 0;
    if (q->spool)
        return gw_spool_append(q->spool, lines, len, ends, npoints);
    if (npoints > q->limit || nbytes > q->limit_bytes)
        return GW_QUEUE_TOO_BIG;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        rc = GW_QUEUE_CLOSED;
        goto out;
    }
    if (!fits(q, npoints, nbytes) && q->drop_oldest)
        lost = drop_oldest(q, npoints, nbytes);
    if (!fits(q, npoints, nbytes)) {
        rc = GW_QUEUE_FULL;
        goto out;
    }
    while (done < npoints) {
        gw_batch_t *b = q->open;
        uint32_t take;

        if (!b) {
            b = batch_new(q);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            b->opened_at = gw_clock_mono();
            q->open = b;
            /* The flusher may be sleeping without a deadline: wake it so it
             * starts timing this batch. */
            pthread_cond_signal(&q->cv);
        }
        take = take_count(ends, done, npoints, q->batch_size - b->npoints, b->data.len);
        if (take == 0) { /* full by size */
            seal(q);
            continue;
        }
        if (append(b, lines, ends, done, done + take)) {
            rc = -ENOMEM;
            break;
        }
        q->points += take;
        q->bytes += (ends[done + take - 1] - (done ? ends[done - 1] : 0)) + 4 * (uint64_t)take;
        done += take;
        if (b->npoints >= q->batch_size || b->data.len >= GW_BATCH_MAX_BYTES)
            seal(q);
    }
    /* On ENOMEM part of the request may be queued; the caller reports the
     * whole request as failed (500) and the queued part is still delivered,
     * which at worst duplicates points on a client retry (harmless in
     * InfluxDB: an identical point overwrites itself). */
out:
    if (lost) {
        GW_COUNT(points_overflowed, lost);
        q->dropped_unlogged += lost;
        log_drops(q, 0);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* take() with a spool: fill q->open from the spool until it is due. */
static gw_batch_t *take_spooled(gw_queue_t *q, double deadline)
{
    gw_batch_t *b = q->open;

    for (;;) {
        uint32_t got = 0;
        double now, wake;
        int closed;

        if (!b) {
            pthread_mutex_lock(&q->mu);
            b = batch_new(q);
            pthread_mutex_unlock(&q->mu);
            if (!b) {
                gw_spool_wait(q->spool, gw_clock_mono() + 0.1); /* ENOMEM: try again soon */
                continue;
            }
            q->open = b;
        }
        if (b->npoints < q->batch_size && b->data.len < GW_BATCH_MAX_BYTES) {
            int rc = gw_spool_read(q->spool, &b->data, &b->ends, q->batch_size - b->npoints, GW_BATCH_MAX_BYTES,
                                   &got, &b->end);
            if (rc == -ENOMEM)
                gw_log_error("spool: out of memory reading", "%s", "");
            if (rc) /* ENOMEM, or a segment that cannot be opened now (logged): try again soon */
                gw_spool_wait(q->spool, gw_clock_mono() + 0.1);
        }
        now = gw_clock_mono();
        if (got && b->opened_at == 0)
            b->opened_at = now;
        b->npoints += got;
        pthread_mutex_lock(&q->mu);
        closed = q->closed;
        pthread_mutex_unlock(&q->mu);
        /* Full: by count, or by size (nothing more fits though more is there). */
        if (b->npoints >= q->batch_size || b->data.len >= GW_BATCH_MAX_BYTES ||
            (b->npoints && !got && gw_spool_unread(q->spool)) ||
            (b->npoints && (closed || now >= b->opened_at + q->period))) {
            q->open = NULL;
            return b;
        }
        if (closed && !got && !gw_spool_unread(q->spool))
            return NULL; /* drained; b stays as q->open, freed by destroy */
        if (got)
            continue; /* more may be there already */
        if (deadline > 0 && now >= deadline)
            return NULL;
        wake = b->npoints ? b->opened_at + q->period : 0;
        if (deadline > 0 && (wake == 0 || deadline < wake))
            wake = deadline;
        gw_spool_wait(q->spool, wake);
    }
}

gw_batch_t *gw_queue_take(gw_queue_t *q, double deadline)
{
    gw_batch_t *b = NULL;

    if (q->spool)
        return take_spooled(q, deadline);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        double now = gw_clock_mono(), wake;
        struct timespec ts;

        if (q->open && (q->closed || now >= q->open->opened_at + q->period))
            seal(q);
        if (q->head) {
            b = q->head;
            q->head = b->next;
            if (!q->head)
                q->tail = NULL;
            b->next = NULL;
            break;
        }
        if (q->closed && !q->open)
            break;
        if (deadline > 0 && now >= deadline)
            break;
        log_drops(q, 0);
        wake = q->open ? q->open->opened_at + q->period : 0;
        if (deadline > 0 && (wake == 0 || deadline < wake))
            wake = deadline;
        if (q->dropped_unlogged && (wake == 0 || gw_log_limit_next(&q->drop_lim, DROP_LOG_EVERY) < wake))
            wake = gw_log_limit_next(&q->drop_lim, DROP_LOG_EVERY);
        if (wake == 0) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else {
            ts = gw_clock_timespec(wake);
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

int gw_queue_finished(gw_queue_t *q)
{
    int done;

    pthread_mutex_lock(&q->mu);
    done = q->closed && !q->head && (q->spool ? !q->open || !q->open->npoints : !q->open);
    pthread_mutex_unlock(&q->mu);
    return done && (!q->spool || !gw_spool_unread(q->spool));
}

void gw_queue_release(gw_queue_t *q, gw_batch_t *b)
{
    if (q->spool)
        gw_spool_ack(q->spool, &b->end, b->npoints);
    pthread_mutex_lock(&q->mu);
    if (!q->spool) {
        q->points -= b->npoints;
        q->bytes -= batch_bytes(b);
    }
    b = recycle(q, b);
    pthread_mutex_unlock(&q->mu);
    if (b)
        batch_free(b);
}

void gw_queue_abandon(gw_queue_t *q, gw_batch_t *b, uint32_t done)
{
    if (!q->spool) {
        /* Its memory goes; its points left stay counted (as undelivered). */
        pthread_mutex_lock(&q->mu);
        q->points -= done;
        q->bytes -= batch_bytes(b);
        pthread_mutex_unlock(&q->mu);
    }
    batch_free(b);
}

void gw_queue_close(gw_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    log_drops(q, 1);
    q->closed = 1;
    if (!q->spool)
        seal(q);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->spool)
        gw_spool_close(q->spool);
}

/* One of q's counters, read under its lock. */
static uint64_t read_locked(gw_queue_t *q, const uint64_t *counter)
{
    uint64_t n;
    pthread_mutex_lock(&q->mu);
    n = *counter;
    pthread_mutex_unlock(&q->mu);
    return n;
}

uint64_t gw_queue_points(gw_queue_t *q)
{
    return q->spool ? gw_spool_points(q->spool) : read_locked(q, &q->points);
}

uint64_t gw_queue_bytes(gw_queue_t *q)
{
    return q->spool ? gw_spool_bytes(q->spool) : read_locked(q, &q->bytes);
}

uint64_t gw_queue_limit_bytes(gw_queue_t *q)
{
    return q->limit_bytes;
}

void gw_queue_destroy(gw_queue_t *q)
{
    gw_batch_t *lists[3], *b;

    if (!q)
        return;
    lists[0] = q->open;
    lists[1] = q->head;
    lists[2] = q->spare;
    for (int i = 0; i < 3; i++) {
        b = lists[i];
        while (b) {
            gw_batch_t *next = i == 0 ? NULL : b->next;
            batch_free(b);
            b = next;
        }
    }
    gw_spool_destroy(q->spool);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
