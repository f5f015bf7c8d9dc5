/* batch.c — bounded batch queue, in memory or over a spool; see batch.h. */
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define SPARE_MAX 4 /* sealed batches' buffers kept for reuse */

struct gw_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled when a batch is sealed or on close */
    gw_batch_t *open;      /* owned: receiving appends (with a spool: being filled by take), or NULL */
    gw_batch_t *head;      /* owned: sealed batches, FIFO */
    gw_batch_t *tail;
    gw_batch_t *spare;     /* owned: released batches kept for reuse */
    int nspare;
    uint64_t points;       /* held: open + sealed + taken */
    uint32_t batch_size;
    uint32_t limit;
    double period;
    int closed;
    int drop_oldest;
    gw_spool_t *spool;     /* owned, or NULL */
    uint64_t dropped_unlogged;
    double last_drop_log;
};

double gw_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
    q->period = flushing_period;
    return q;
}

void gw_queue_set_drop_oldest(gw_queue_t *q, int on)
{
    q->drop_oldest = on;
}

void gw_queue_use_spool(gw_queue_t *q, gw_spool_t *spool)
{
    q->spool = spool;
}

gw_spool_t *gw_queue_spool(gw_queue_t *q)
{
    return q->spool;
}

json_t *gw_queue_spool_json(gw_queue_t *q)
{
    uint64_t appends, syncs;

    if (!q->spool)
        return json_null();
    gw_spool_counts(q->spool, &appends, &syncs);
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "points", (json_int_t)gw_spool_points(q->spool), "bytes",
                     (json_int_t)gw_spool_bytes(q->spool), "damaged_records",
                     (json_int_t)gw_spool_corrupt(q->spool), "appends", (json_int_t)appends, "syncs",
                     (json_int_t)syncs);
}

gw_queue_t *gw_queue_open(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_queue_t *q = gw_queue_create(cfg->monitoring.batch_size, cfg->monitoring.buffer_limit,
                                    cfg->monitoring.flushing_period);
    int drop = strcmp(cfg->monitoring.overflow, "drop_oldest") == 0;

    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gw_queue_set_drop_oldest(q, drop);
    if (cfg->spool.dir[0]) {
        gw_spool_opts_t o = {
            .dir = cfg->spool.dir,
            .max_bytes = cfg->spool.max_bytes,
            .fsync = strcmp(cfg->spool.fsync, "never") == 0      ? GW_SPOOL_FSYNC_NEVER
                     : strcmp(cfg->spool.fsync, "interval") == 0 ? GW_SPOOL_FSYNC_INTERVAL
                                                                 : GW_SPOOL_FSYNC_BATCH,
            .fsync_interval = cfg->spool.fsync_interval,
            .drop_oldest = drop,
        };
        gw_spool_t *s = gw_spool_open(&o, err, errlen);
        if (!s) {
            gw_queue_destroy(q);
            return NULL;
        }
        gw_queue_use_spool(q, s);
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

/* Keep b for reuse, or free it. mu held. Returns b when the caller must free
 * it (outside the lock), else NULL. */
static gw_batch_t *recycle(gw_queue_t *q, gw_batch_t *b)
{
    if (q->nspare >= SPARE_MAX)
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
    q->open = NULL;
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    pthread_cond_signal(&q->cv);
}

/* overflow: drop_oldest. Drop waiting batches, oldest first (the open one
 * last), until need more points fit. The batch being sent is not touched.
 * mu held. Returns the points dropped. */
static uint64_t drop_oldest(gw_queue_t *q, uint32_t need)
{
    uint64_t lost = 0;

    while (q->points + need > q->limit && (q->head || q->open)) {
        gw_batch_t *b = q->head ? q->head : q->open;
        if (b == q->head) {
            q->head = b->next;
            if (!q->head)
                q->tail = NULL;
        } else {
            q->open = NULL;
        }
        q->points -= b->npoints;
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

int gw_queue_push(gw_queue_t *q, const char *lines, size_t len, const uint32_t *ends,
                  uint32_t npoints)
{
    uint32_t done = 0;
    uint64_t lost = 0;
    int rc = 0;

    if (npoints == 0)
        return 0;
    if (q->spool)
        return gw_spool_append(q->spool, lines, len, ends, npoints);
    if (npoints > q->limit)
        return GW_QUEUE_TOO_BIG;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        rc = GW_QUEUE_CLOSED;
        goto out;
    }
    if (q->points + npoints > q->limit && q->drop_oldest)
        lost = drop_oldest(q, npoints);
    if (q->points + npoints > q->limit) {
        rc = GW_QUEUE_FULL;
        goto out;
    }
    while (done < npoints) {
        gw_batch_t *b = q->open;
        uint32_t take, room;

        if (!b) {
            b = batch_new(q);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            b->opened_at = gw_now_mono();
            q->open = b;
            /* The flusher may be sleeping without a deadline: wake it so it
             * starts timing this batch. */
            pthread_cond_signal(&q->cv);
        }
        room = q->batch_size - b->npoints;
        take = npoints - done < room ? npoints - done : room;
        if (append(b, lines, ends, done, done + take)) {
            rc = -ENOMEM;
            break;
        }
        q->points += take;
        done += take;
        if (b->npoints >= q->batch_size)
            seal(q);
    }
    /* On ENOMEM part of the request may be queued; the caller reports the
     * whole request as failed (500) and the queued part is still delivered,
     * which at worst duplicates points on a client retry (harmless in
     * InfluxDB: an identical point overwrites itself). */
out:
    if (lost) {
        double now = gw_now_mono();
        GW_COUNT(points_overflowed, lost);
        q->dropped_unlogged += lost;
        if (now - q->last_drop_log >= 10) {
            gw_log_warn("buffer full: dropped the oldest points (overflow: drop_oldest)",
                        "points=%llu buffer_limit=%u", (unsigned long long)q->dropped_unlogged, q->limit);
            q->dropped_unlogged = 0;
            q->last_drop_log = now;
        }
    }
    pthread_mutex_unlock(&q->mu);
    (void)len;
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
                gw_spool_wait(q->spool, gw_now_mono() + 0.1); /* ENOMEM: try again soon */
                continue;
            }
            q->open = b;
        }
        if (b->npoints < q->batch_size &&
            gw_spool_read(q->spool, &b->data, &b->ends, q->batch_size - b->npoints, &got, &b->end)) {
            gw_log_error("spool: out of memory reading", "%s", "");
            gw_spool_wait(q->spool, gw_now_mono() + 0.1);
        }
        now = gw_now_mono();
        if (got && b->opened_at == 0)
            b->opened_at = now;
        b->npoints += got;
        pthread_mutex_lock(&q->mu);
        closed = q->closed;
        pthread_mutex_unlock(&q->mu);
        if (b->npoints >= q->batch_size || (b->npoints && (closed || now >= b->opened_at + q->period))) {
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
        double now = gw_now_mono(), wake;
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
        wake = q->open ? q->open->opened_at + q->period : 0;
        if (deadline > 0 && (wake == 0 || deadline < wake))
            wake = deadline;
        if (wake == 0) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else {
            ts.tv_sec = (time_t)wake;
            ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

void gw_queue_release(gw_queue_t *q, gw_batch_t *b)
{
    if (q->spool)
        gw_spool_ack(q->spool, &b->end, b->npoints);
    pthread_mutex_lock(&q->mu);
    if (!q->spool)
        q->points -= b->npoints;
    b = recycle(q, b);
    pthread_mutex_unlock(&q->mu);
    if (b)
        batch_free(b);
}

void gw_queue_abandon(gw_queue_t *q, gw_batch_t *b, uint32_t done)
{
    if (!q->spool) {
        pthread_mutex_lock(&q->mu);
        q->points -= done;
        pthread_mutex_unlock(&q->mu);
    }
    batch_free(b);
}

void gw_queue_close(gw_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    if (!q->spool)
        seal(q);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->spool)
        gw_spool_close(q->spool);
}

uint64_t gw_queue_points(gw_queue_t *q)
{
    uint64_t n;
    if (q->spool)
        return gw_spool_points(q->spool);
    pthread_mutex_lock(&q->mu);
    n = q->points;
    pthread_mutex_unlock(&q->mu);
    return n;
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
