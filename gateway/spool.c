/* spool.c — the durable queue on disk, see spool.h: opening and closing it,
 * and the writer. Workers append under one lock; with fsync "batch" each
 * waits for one fdatasync that covers its record (group commit), with
 * "interval" a syncer thread syncs on a timer. The reader is in
 * spool_reader.c, recovery at open in spool_recover.c, the bytes of the
 * files in spool_record.c (spool_int.h has the map). */
#include "spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "metrics.h"

#define SEG_MIN ((uint64_t)64 << 10)
#define SEG_MAX ((uint64_t)64 << 20)

/* ------------------------------------------------------------------ segments */

segment_t *spool_find_seg(gw_spool_t *s, uint64_t seq, size_t *idx)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq == seq) {
            if (idx)
                *idx = i;
            return &s->segs[i];
        }
    return NULL;
}

int spool_add_seg(gw_spool_t *s, const segment_t *seg)
{
    if (s->nsegs == s->segcap) {
        size_t cap = s->segcap ? s->segcap * 2 : 16;
        segment_t *v = realloc(s->segs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->segs = v;
        s->segcap = cap;
    }
    s->segs[s->nsegs++] = *seg;
    return 0;
}

void spool_remove_seg(gw_spool_t *s, size_t i)
{
    char name[32];

    spool_seg_name(name, sizeof(name), s->segs[i].seq);
    if (unlinkat(s->dirfd, name, 0) && errno != ENOENT)
        gw_log_warn("spool: cannot delete a delivered segment", "dir=\"%s\" file=%s error=\"%s\"", s->dir,
                    name, strerror(errno));
    s->total_bytes -= s->segs[i].size;
    memmove(&s->segs[i], &s->segs[i + 1], (s->nsegs - i - 1) * sizeof(s->segs[0]));
    s->nsegs--;
}

/* A directory that cannot be synced after the new name marks the spool
 * broken, as a failed fdatasync does. */
int spool_open_active(gw_spool_t *s, uint64_t seq)
{
    char name[32];
    unsigned char hdr[SPOOL_SEG_HDR];
    segment_t seg = {.seq = seq, .size = SPOOL_SEG_HDR};
    struct iovec iov = {hdr, SPOOL_SEG_HDR};
    int fd = -1, e;

    spool_seg_name(name, sizeof(name), seq);
    if (spool_new_key(seg.fmt.key)) {
        e = errno ? errno : EIO;
        goto fail;
    }
    fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
        goto fail;
    }
    spool_seg_header(hdr, seq, &seg.fmt);
    if (spool_writev_all(fd, &iov, 1)) {
        e = errno;
        goto fail;
    }
    /* The new name must survive a power loss as well as its records. */
    if (s->fsync != GW_SPOOL_FSYNC_NEVER && fsync(s->dirfd)) {
        e = errno;
        s->broken = 1;
        goto fail;
    }
    if (spool_add_seg(s, &seg)) {
        e = ENOMEM;
        goto fail;
    }
    s->wfd = fd;
    s->total_bytes += SPOOL_SEG_HDR;
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
        unlinkat(s->dirfd, name, 0);
    }
    gw_log_error(s->broken ? "spool: cannot sync the directory, refusing further writes"
                           : "spool: cannot create a segment",
                 "dir=\"%s\" file=%s error=\"%s\"", s->dir, name, strerror(e));
    return -e;
}

/* Seal the active segment and start the next one. mu held, no sync
 * running. 0 or -1. */
static int rotate(gw_spool_t *s)
{
    segment_t *last = &s->segs[s->nsegs - 1];
    int old = s->wfd;

    /* Callers wait until no syncer is using wfd outside the lock. */
    if (s->fsync != GW_SPOOL_FSYNC_NEVER && s->written > s->synced) {
        if (fdatasync(old)) {
            s->broken = 1;
            gw_log_error("spool: fdatasync failed, refusing further writes", "dir=\"%s\" error=\"%s\"",
                         s->dir, strerror(errno));
            return -1;
        }
        s->synced = s->written;
        pthread_cond_broadcast(&s->synced_cv);
    }
    if (spool_open_active(s, last->seq + 1))
        return -1;
    close(old);
    return 0;
}

/* Make durable everything written so far, as the one syncer: mu is
 * released around fdatasync so that appends go on meanwhile. mu held. */
static void sync_now(gw_spool_t *s)
{
    uint64_t target = s->written;
    int fd = s->wfd, rc, e;

    s->syncing = 1;
    pthread_mutex_unlock(&s->mu);
    rc = fdatasync(fd);
    e = errno;
    pthread_mutex_lock(&s->mu);
    s->syncing = 0;
    s->syncs++;
    if (rc) {
        /* After a failed fdatasync Linux may have dropped the dirty pages:
         * nothing written so far can be called durable any more. */
        if (!s->broken)
            gw_log_error("spool: fdatasync failed, refusing further writes", "dir=\"%s\" error=\"%s\"",
                         s->dir, strerror(e));
        s->broken = 1;
    } else if (target > s->synced) {
        s->synced = target;
    }
    pthread_cond_broadcast(&s->synced_cv);
}

static void *syncer(void *arg)
{
    gw_spool_t *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        double until = gw_clock_mono() + s->fsync_interval;
        struct timespec ts = gw_clock_timespec(until);
        pthread_cond_timedwait(&s->stop_cv, &s->mu, &ts);
        if (!s->stopping && !s->syncing && !s->broken && s->written > s->synced)
            sync_now(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* overflow: drop_oldest. Delete the oldest segments until need more bytes
 * fit; what the reader had not taken from them is lost, and counted. mu held,
 * no sync running. Returns the points dropped. */
static uint64_t drop_oldest(gw_spool_t *s, uint64_t need)
{
    uint64_t lost = 0;

    while (s->total_bytes + need > s->max_bytes) {
        if (s->nsegs == 1) {
            if (s->segs[0].size == SPOOL_SEG_HDR || rotate(s))
                break;
            continue;
        }
        lost += s->segs[0].points - s->segs[0].read;
        s->pending -= s->segs[0].points - s->segs[0].read;
        spool_remove_seg(s, 0);
    }
    return lost;
}

void spool_log_drops(gw_spool_t *s, int force)
{
    if (!s->dropped_unlogged || !gw_log_limit_pass(&s->drop_lim, SPOOL_DROP_LOG_EVERY, force))
        return;
    gw_log_warn("spool full: dropped the oldest points (overflow: drop_oldest)", "points=%llu dir=\"%s\" max_bytes=%llu",
                (unsigned long long)s->dropped_unlogged, s->dir, (unsigned long long)s->max_bytes);
    s->dropped_unlogged = 0;
}

/* ------------------------------------------------------------------ append */

/* Find the record (reclen bytes) its place: rotate the active segment when
 * the record would overfill it, and make room under max_bytes (overflow
 * drop_oldest deletes the oldest segments; *lost counts their unread
 * points). Returns 0 with the segment to write to in *act; GW_SPOOL_CLOSED
 * or GW_SPOOL_FULL. mu held. */
static int make_room(gw_spool_t *s, uint64_t reclen, segment_t **act, uint64_t *lost)
{
    for (;;) {
        segment_t *a;
        int rotate_due, room_short;

        if (s->closed)
            return GW_SPOOL_CLOSED;
        if (s->broken)
            return GW_SPOOL_FULL;
        a = &s->segs[s->nsegs - 1];
        rotate_due = a->size > SPOOL_SEG_HDR && a->size + reclen > s->segment_bytes;
        room_short = s->total_bytes + reclen > s->max_bytes;
        if (!rotate_due && !room_short)
            break;
        if (s->syncing && (rotate_due || s->drop_oldest)) {
            /* Rotation swaps wfd, which a syncer is using outside the lock;
             * look again once it is done. */
            pthread_cond_wait(&s->synced_cv, &s->mu);
            continue;
        }
        if (room_short && s->drop_oldest)
            *lost += drop_oldest(s, reclen);
        if (s->total_bytes + reclen > s->max_bytes)
            return GW_SPOOL_FULL;
        a = &s->segs[s->nsegs - 1];
        if (a->size > SPOOL_SEG_HDR && a->size + reclen > s->segment_bytes && rotate(s))
            return GW_SPOOL_FULL;
        break;
    }
    *act = &s->segs[s->nsegs - 1];
    return 0;
}

/* Write the record (iov: its header, lines, ends; reclen bytes) at the end
 * of act, the active segment, and count it. 0, or GW_SPOOL_FULL when the
 * disk refused it. mu held. */
static int write_record(gw_spool_t *s, segment_t *act, struct iovec *iov, uint64_t reclen, uint32_t npoints)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT; /* once per request otherwise */

    spool_rec_seal(iov[0].iov_base, &act->fmt);
    if (spool_writev_all(s->wfd, iov, 3)) {
        int e = errno;
        /* Cut off whatever part of the record got written, so that the file
         * stays a sequence of whole records. */
        if (ftruncate(s->wfd, (off_t)act->size) || lseek(s->wfd, (off_t)act->size, SEEK_SET) < 0)
            s->broken = 1;
        gw_log_limited(&lim, 1.0, GW_LOG_ERROR, "spool: cannot write, refusing this request",
                       "dir=\"%s\" error=\"%s\"", s->dir, strerror(e));
        return GW_SPOOL_FULL;
    }
    act->size += reclen;
    act->points += npoints;
    s->total_bytes += reclen;
    s->pending += npoints;
    s->written += reclen;
    s->appends++;
    pthread_cond_broadcast(&s->data_cv);
    return 0;
}

/* fsync batch: wait until everything written up to mine is durable. Group
 * commit: whoever finds no fdatasync running starts one that covers every
 * record written so far; the others wait for it. 0, or GW_SPOOL_FULL when
 * the record is written but not durable (the client must not count on it).
 * mu held. */
static int wait_durable(gw_spool_t *s, uint64_t mine)
{
    while (s->synced < mine && !s->broken) {
        if (!s->syncing)
            sync_now(s);
        else
            pthread_cond_wait(&s->synced_cv, &s->mu);
    }
    return s->synced < mine ? GW_SPOOL_FULL : 0;
}

int gw_spool_append(gw_spool_t *s, const char *lines, size_t len, const uint32_t *ends,
                    uint32_t npoints)
{
    unsigned char h[SPOOL_REC_HDR];
    struct iovec iov[3] = {{h, SPOOL_REC_HDR}, {(void *)lines, len}, {(void *)ends, 4 * (size_t)npoints}};
    uint64_t reclen = SPOOL_REC_HDR + (uint64_t)len + 4 * (uint64_t)npoints, lost = 0;
    segment_t *act = NULL;
    int rc;

    if (npoints == 0)
        return 0;
    if (len > UINT32_MAX || reclen > s->max_bytes - SPOOL_SEG_HDR)
        return GW_SPOOL_TOO_BIG;
    /* The checksum outside the lock: workers compute theirs in parallel. */
    spool_rec_header(h, lines, (uint32_t)len, ends, npoints);
    pthread_mutex_lock(&s->mu);
    rc = make_room(s, reclen, &act, &lost);
    if (!rc)
        rc = write_record(s, act, iov, reclen, npoints);
    if (!rc && s->fsync == GW_SPOOL_FSYNC_BATCH)
        rc = wait_durable(s, s->written);
    if (lost) {
        s->dropped_unlogged += lost;
        GW_COUNT(points_overflowed, lost);
        spool_log_drops(s, 0);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void gw_spool_close(gw_spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_cond_broadcast(&s->data_cv);
    pthread_mutex_unlock(&s->mu);
}

/* One of s's counters, read under its lock. */
static uint64_t read_locked(gw_spool_t *s, const uint64_t *counter)
{
    uint64_t n;
    pthread_mutex_lock(&s->mu);
    n = *counter;
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t gw_spool_points(gw_spool_t *s)
{
    return read_locked(s, &s->pending);
}

uint64_t gw_spool_bytes(gw_spool_t *s)
{
    return read_locked(s, &s->total_bytes);
}

uint64_t gw_spool_corrupt(gw_spool_t *s)
{
    return read_locked(s, &s->corrupt);
}

void gw_spool_counts(gw_spool_t *s, uint64_t *appends, uint64_t *syncs)
{
    pthread_mutex_lock(&s->mu);
    *appends = s->appends;
    *syncs = s->syncs;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ open */

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen)
{
    gw_spool_t *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->dirfd = s->lockfd = s->ackfd = s->wfd = s->r.fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->synced_cv, &ca);
    pthread_cond_init(&s->data_cv, &ca);
    pthread_cond_init(&s->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->dir = strdup(o->dir);
    s->max_bytes = o->max_bytes;
    s->segment_bytes = o->segment_bytes ? o->segment_bytes : o->max_bytes / 8;
    if (!o->segment_bytes && s->segment_bytes < SEG_MIN)
        s->segment_bytes = SEG_MIN;
    if (!o->segment_bytes && s->segment_bytes > SEG_MAX)
        s->segment_bytes = SEG_MAX;
    s->fsync = o->fsync;
    s->fsync_interval = o->fsync_interval > 0 ? o->fsync_interval : 1;
    s->drop_oldest = o->drop_oldest;
    if (!s->dir) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (mkdir_p(s->dir) || (s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "spool.dir %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen, "spool.dir %s: %s", s->dir,
                 errno == EWOULDBLOCK ? "in use by another luagw process" : strerror(errno));
        goto fail;
    }
    s->ackfd = openat(s->dirfd, "ack", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->ackfd < 0) {
        snprintf(err, errlen, "spool.dir %s: cannot open the ack file: %s", s->dir, strerror(errno));
        goto fail;
    }
    if (spool_recover(s, err, errlen))
        goto fail;
    if (s->fsync == GW_SPOOL_FSYNC_INTERVAL) {
        if (pthread_create(&s->syncer, NULL, syncer, s)) {
            snprintf(err, errlen, "cannot start the spool's fsync thread");
            goto fail;
        }
        s->have_syncer = 1;
    }
    return s;
fail:
    gw_spool_destroy(s);
    return NULL;
}

void gw_spool_destroy(gw_spool_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->stop_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->have_syncer)
        pthread_join(s->syncer, NULL);
    pthread_mutex_lock(&s->mu);
    spool_log_drops(s, 1);
    pthread_mutex_unlock(&s->mu);
    if (s->wfd >= 0) {
        if (s->fsync != GW_SPOOL_FSYNC_NEVER && s->written > s->synced && fdatasync(s->wfd))
            gw_log_error("spool: fdatasync failed at shutdown: the last appends may not be on disk",
                         "dir=\"%s\" error=\"%s\"", s->dir, strerror(errno));
        close(s->wfd);
    }
    if (s->r.fd >= 0)
        close(s->r.fd);
    if (s->ackfd >= 0)
        close(s->ackfd);
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    gw_buf_free(&s->r.rec);
    gw_buf_free(&s->r.scratch);
    free(s->segs);
    free(s->dir);
    pthread_cond_destroy(&s->synced_cv);
    pthread_cond_destroy(&s->data_cv);
    pthread_cond_destroy(&s->stop_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
