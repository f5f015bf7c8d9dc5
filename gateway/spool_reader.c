/* spool_reader.c — the spool's one reader, the sender (spool_int.h): it
 * walks the records in order, segment by segment, into batches; skips the
 * damaged ones (resynchronising on the next good record); and acks what
 * InfluxDB took, which deletes the segments wholly behind it. The reader's
 * place (s->r) is its own; the segment list and counters are read under mu. */
#include "spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* Move the reader to the first segment after the current one (the first of
 * all before it has started). Returns 0; 1 when there is none yet; or
 * -errno when it cannot be opened now (EMFILE...): then the reader stays
 * where it was, to try again, and the segment is never taken as read. A
 * segment whose file is gone (ENOENT: dropped by overflow, or deleted by
 * hand) is passed over with r.fd = -1. mu must not be held. */
static int next_segment(gw_spool_t *s)
{
    char name[32];
    unsigned char hdr[SPOOL_SEG_HDR];
    int found = 0, fd;
    uint64_t seq = 0;
    spool_fmt_t fmt = {0};

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nsegs; i++)
        if (!s->r.started || s->segs[i].seq > s->r.seq) {
            seq = s->segs[i].seq;
            fmt = s->segs[i].fmt;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    if (!found)
        return 1;
    spool_seg_name(name, sizeof(name), seq);
    fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        int e = errno;
        gw_log_limited(&s->open_lim, 10.0, GW_LOG_ERROR, "spool: cannot open a segment to read, will retry",
                       "dir=\"%s\" file=%s error=\"%s\"", s->dir, name, strerror(e));
        return -e;
    }
    if (fd < 0)
        gw_log_error("spool: a segment file is gone, its points with it", "dir=\"%s\" file=%s", s->dir, name);
    else if (spool_pread_all(fd, hdr, spool_seg_hdr(&fmt), 0) || !spool_seg_header_matches(hdr, seq, &fmt))
        gw_log_warn("spool: segment header damaged, reading its records anyway", "dir=\"%s\" file=%s",
                    s->dir, name);
    if (s->r.fd >= 0)
        close(s->r.fd);
    s->r.fd = fd;
    s->r.fmt = fmt;
    /* Only the first segment read may start where the ack file says. */
    if (s->r.started || s->r.seq != seq || s->r.off < spool_seg_hdr(&fmt)) {
        s->r.off = spool_seg_hdr(&fmt);
        s->r.first_skip = 0;
    }
    s->r.seq = seq;
    s->r.started = 1;
    s->r.loaded = 0;
    return 0;
}

/* Load the next good record of the reader's segment (size bytes; the end
 * of the spool when active). 0 with r.loaded set; 1 when there is no
 * record there (yet); -ENOMEM. Damaged records on the way are skipped. */
static int load_next(gw_spool_t *s, uint64_t size, int old)
{
    while (s->r.off < size) {
        int lrc = spool_load_record(s->r.fd, &s->r.fmt, s->r.off, size, &s->r.rec, &s->r.n, &s->r.len);
        uint64_t next;
        char name[32];

        if (lrc < 0)
            return lrc;
        if (lrc == 0) {
            s->r.loaded = 1;
            s->r.next = s->r.off + spool_rec_hdr(&s->r.fmt) + s->r.rec.len;
            s->r.skip = s->r.first_skip < s->r.n ? s->r.first_skip : 0;
            s->r.first_skip = 0;
            return 0;
        }
        next = spool_resync(s->r.fd, &s->r.fmt, s->r.off + 1, size, &s->r.scratch);
        spool_seg_name(name, sizeof(name), s->r.seq);
        /* An old segment's damage was reported when the spool was opened. */
        if (!old) {
            gw_log_error("spool: damaged record skipped", "dir=\"%s\" file=%s offset=%llu bytes=%llu", s->dir,
                         name, (unsigned long long)s->r.off, (unsigned long long)(next - s->r.off));
            pthread_mutex_lock(&s->mu);
            s->corrupt++;
            pthread_mutex_unlock(&s->mu);
        }
        s->r.off = next;
        s->r.first_skip = 0;
    }
    return 1;
}

/* Copy up to max points of the loaded record, and no more than room bytes
 * of lines (but at least one point when data has none yet), to data and
 * ends. Returns the points copied, or -ENOMEM. */
static int64_t take_points(gw_spool_t *s, gw_buf_t *data, gw_buf_t *ends, uint32_t max, size_t room,
                           int first)
{
    const char *lines = s->r.rec.data, *e = s->r.rec.data + s->r.len;
    uint32_t k = 0, from = s->r.skip ? spool_get32(e + 4 * (size_t)(s->r.skip - 1)) : 0, to = from;
    size_t base = data->len;

    while (k < max && s->r.skip + k < s->r.n) {
        uint32_t next = spool_get32(e + 4 * (size_t)(s->r.skip + k));
        if (next - from > room && !(first && k == 0))
            break;
        to = next;
        k++;
    }
    if (k == 0)
        return 0;
    if (gw_buf_reserve(data, to - from) || gw_buf_reserve(ends, 4 * (size_t)k))
        return -ENOMEM;
    memcpy(data->data + data->len, lines + from, to - from);
    data->len += to - from;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t off = (uint32_t)(base + spool_get32(e + 4 * (size_t)(s->r.skip + i)) - from);
        memcpy(ends->data + ends->len, &off, 4);
        ends->len += 4;
    }
    s->r.skip += k;
    if (s->r.skip == s->r.n) {
        s->r.loaded = 0;
        s->r.off = s->r.next;
    }
    return k;
}

/* Add the points taken from the reader's segment to its read count. */
static void count_read(gw_spool_t *s, uint64_t taken)
{
    segment_t *seg;

    if (!taken)
        return;
    pthread_mutex_lock(&s->mu);
    seg = spool_find_seg(s, s->r.seq, NULL);
    if (seg)
        seg->read += taken;
    pthread_mutex_unlock(&s->mu);
}

/* Load the reader's next record, moving on to the next segment when done
 * with one (or when it was dropped, or its file is gone); *taken (points
 * taken from the current segment) is counted first. 0 with r.loaded set; 1
 * when there is nothing more to read now; -ENOMEM or -errno. */
static int advance(gw_spool_t *s, uint64_t *taken)
{
    for (;;) {
        uint64_t size;
        int active, old, rc;
        segment_t *seg;
        size_t idx = 0;

        count_read(s, *taken);
        *taken = 0;
        pthread_mutex_lock(&s->mu);
        seg = spool_find_seg(s, s->r.seq, &idx);
        size = seg ? seg->size : 0;
        active = seg && idx == s->nsegs - 1;
        old = seg ? seg->old : 0;
        pthread_mutex_unlock(&s->mu);
        if (seg && s->r.fd >= 0 && (active || s->r.off < size))
            return load_next(s, size, old); /* 1: caught up with the writer */
        if ((rc = next_segment(s)))
            return rc;
    }
}

int gw_spool_read(gw_spool_t *s, gw_buf_t *data, gw_buf_t *ends, uint32_t max, size_t max_bytes, uint32_t *got,
                  gw_spool_pos_t *end)
{
    uint64_t taken = 0; /* from the current segment, not yet added to its read count */
    int rc = 0;

    *got = 0;
    pthread_mutex_lock(&s->mu);
    s->r.seen = s->appends;
    pthread_mutex_unlock(&s->mu);
    if (!s->r.started)
        rc = next_segment(s);
    while (!rc && *got < max && data->len < max_bytes) {
        int64_t k;

        if (!s->r.loaded && (rc = advance(s, &taken)))
            break;
        k = take_points(s, data, ends, max - *got, max_bytes - data->len, data->len == 0);
        if (k <= 0) {
            rc = (int)k;
            break;
        }
        *got += (uint32_t)k;
        taken += (uint64_t)k;
    }
    count_read(s, taken);
    end->seq = s->r.seq;
    end->off = s->r.off;
    end->skip = s->r.loaded ? s->r.skip : 0;
    return rc > 0 ? 0 : rc;
}

void gw_spool_wait(gw_spool_t *s, double until)
{
    pthread_mutex_lock(&s->mu);
    while (s->appends == s->r.seen && !s->closed) {
        double wake = until;
        if (s->dropped_unlogged && (wake == 0 || gw_log_limit_next(&s->drop_lim, SPOOL_DROP_LOG_EVERY) < wake))
            wake = gw_log_limit_next(&s->drop_lim, SPOOL_DROP_LOG_EVERY);
        if (wake > 0) {
            struct timespec ts = gw_clock_timespec(wake);
            if (gw_clock_mono() >= wake || pthread_cond_timedwait(&s->data_cv, &s->mu, &ts) == ETIMEDOUT) {
                spool_log_drops(s, 0);
                if (until > 0 && gw_clock_mono() >= until)
                    break;
            }
        } else {
            pthread_cond_wait(&s->data_cv, &s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

int gw_spool_unread(gw_spool_t *s)
{
    int more = 0;

    pthread_mutex_lock(&s->mu);
    if (s->r.loaded && s->r.skip < s->r.n)
        more = 1;
    for (size_t i = 0; i < s->nsegs && !more; i++) {
        const segment_t *seg = &s->segs[i];
        if (!s->r.started || seg->seq > s->r.seq)
            more = seg->size > spool_seg_hdr(&seg->fmt);
        else if (seg->seq == s->r.seq)
            more = s->r.off < seg->size;
    }
    pthread_mutex_unlock(&s->mu);
    return more;
}

void gw_spool_ack(gw_spool_t *s, const gw_spool_pos_t *pos, uint32_t npoints)
{
    unsigned char a[SPOOL_ACK_SIZE];

    spool_ack_encode(a, pos);
    pthread_mutex_lock(&s->mu);
    s->pending -= npoints < s->pending ? npoints : s->pending;
    /* Not synced: losing it only means delivering some points again. */
    if (pwrite(s->ackfd, a, SPOOL_ACK_SIZE, 0) != (ssize_t)SPOOL_ACK_SIZE)
        gw_log_warn("spool: cannot write the ack file", "dir=\"%s\" error=\"%s\"", s->dir, strerror(errno));
    while (s->nsegs > 1 && (s->segs[0].seq < pos->seq ||
                            (s->segs[0].seq == pos->seq && pos->off >= s->segs[0].size)))
        spool_remove_seg(s, 0);
    pthread_mutex_unlock(&s->mu);
}
