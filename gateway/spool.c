/* spool.c — the durable queue on disk, see spool.h. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "batch.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "spool records are written in host order, which must be little-endian"
#endif

_Static_assert((int)GW_SPOOL_FULL == (int)GW_QUEUE_FULL && (int)GW_SPOOL_CLOSED == (int)GW_QUEUE_CLOSED &&
                   (int)GW_SPOOL_TOO_BIG == (int)GW_QUEUE_TOO_BIG,
               "spool and queue answers must match");

#define SEG_MAGIC "luagwsp2"    /* then u64 seq, the segment's key: 32 bytes */
#define SEG_MAGIC_V1 "luagwsp1" /* an earlier luagw's: u64 seq, 16 bytes; records without hcrc */
#define SEG_HDR 32u
#define SEG_HDR_V1 16u
#define KEY_LEN 16u
#define REC_MAGIC 0x4c52f7a5u   /* bytes a5 f7 52 4c: never valid UTF-8 */
#define REC_HDR 20u
#define REC_HDR_V1 16u
#define ACK_MAGIC "luagwack"  /* then u64 seq, u64 off, u32 skip, u32 crc */
#define ACK_SIZE 32u
#define DROP_LOG_EVERY 10.0   /* seconds between "dropped the oldest points" lines */
#define SEG_MIN ((uint64_t)64 << 10)
#define SEG_MAX ((uint64_t)64 << 20)

/* How a segment's records are checked. */
typedef struct {
    int v1;                     /* an earlier luagw's: no header check */
    unsigned char key[KEY_LEN]; /* random, from the segment header */
} seg_fmt_t;

typedef struct {
    uint64_t seq;
    seg_fmt_t fmt;
    uint64_t size;   /* bytes in the file; for the active one, up to its last whole record */
    uint64_t points; /* good points in it (for an old one, behind the ack) */
    uint64_t read;   /* of those, how many the reader has taken */
    int old;         /* left by an earlier run: its damage was logged at open */
} segment_t;

struct gw_spool {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv; /* an fdatasync finished */
    pthread_cond_t data_cv;   /* a record was appended, or the spool closed */
    pthread_cond_t stop_cv;   /* wakes the interval syncer on destroy */
    char *dir;                /* owned */
    int dirfd, lockfd, ackfd, wfd;
    uint64_t max_bytes, segment_bytes;
    int fsync, drop_oldest;
    double fsync_interval;
    segment_t *segs;          /* owned: oldest first; the last one is the active one */
    size_t nsegs, segcap;
    uint64_t total_bytes;     /* every segment's size */
    uint64_t pending;         /* points appended or recovered, not acked, not dropped */
    uint64_t written, synced; /* bytes appended since open / made durable */
    uint64_t appends;         /* appends since open: the reader's wake-up test */
    uint64_t corrupt;
    uint64_t syncs;           /* fdatasync calls: appends / syncs is the group commit's gain */
    int syncing, closed, stopping, broken;
    pthread_t syncer;
    int have_syncer;
    double last_drop_log;
    uint64_t dropped_unlogged;
    gw_log_limit_t open_lim;  /* "cannot open a segment to read" */
    struct {                  /* the reader's; only the reader thread touches it */
        int fd;               /* open segment, -1 before the first (or when it was gone) */
        uint64_t seq;
        seg_fmt_t fmt;        /* of the open segment */
        uint64_t off;         /* the loaded record's offset, else the next record's */
        uint64_t next;        /* offset just behind the loaded record */
        uint32_t skip;        /* points of the loaded record already taken */
        uint32_t n, len;      /* the loaded record */
        int loaded;
        int started;
        uint32_t first_skip;  /* from the ack file: for the record at off */
        uint64_t seen;        /* appends seen at the last read */
        gw_buf_t rec;         /* owned: the loaded record's lines and ends */
        gw_buf_t scratch;     /* owned: for resynchronising */
    } r;
};

static inline uint32_t get32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t get64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void seg_name(char *out, size_t outlen, uint64_t seq)
{
    snprintf(out, outlen, "%016llx.seg", (unsigned long long)seq);
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* write(2) the whole of iov[0..cnt), resuming after short writes. 0 or -1. */
static int writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t k = writev(fd, iov, cnt);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        while (cnt > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ records */

static uint32_t rec_hdr(const seg_fmt_t *f)
{
    return f->v1 ? REC_HDR_V1 : REC_HDR;
}

static uint32_t seg_hdr(const seg_fmt_t *f)
{
    return f->v1 ? SEG_HDR_V1 : SEG_HDR;
}

/* The header check: crc32 over the segment's key and the header's first 16
 * bytes. Clients choose the bytes of string values, so they can write a
 * record that passes every other check into a value; not knowing the key,
 * they cannot make one that passes this, which is what lets a scan for the
 * next record after damage trust what it finds, and turn down a fake header
 * without reading the body it claims (no quadratic rescans). */
static uint32_t header_crc(const seg_fmt_t *f, const unsigned char *h)
{
    uLong c = crc32(0L, f->key, KEY_LEN);
    return (uint32_t)crc32(c, h, 16);
}

/* Does the record header h (rec_hdr(f) bytes) look like one this spool
 * wrote into a file of size bytes at off? */
static int header_ok(const seg_fmt_t *f, const unsigned char *h, uint64_t off, uint64_t size)
{
    uint32_t rlen = get32(h + 4), rn = get32(h + 8);
    uint64_t body = (uint64_t)rlen + 4 * (uint64_t)rn;

    if (get32(h) != REC_MAGIC || rn == 0 || rlen < rn || body > size - off - rec_hdr(f))
        return 0;
    return f->v1 || get32(h + 16) == header_crc(f, h);
}

/* Check the record at off of a file of size bytes and load its lines and
 * ends into rec. Returns 0 (with *n points, *len bytes of lines), or 1 when
 * the bytes there are not a good record (short, torn, damaged, or an I/O
 * error), or -ENOMEM. */
static int load_record(int fd, const seg_fmt_t *f, uint64_t off, uint64_t size, gw_buf_t *rec, uint32_t *n,
                       uint32_t *len)
{
    unsigned char h[REC_HDR];
    uint32_t rn, rlen, prev = 0, hl = rec_hdr(f);
    uint64_t body;
    uLong crc;

    if (off + hl > size || pread_all(fd, h, hl, off) || !header_ok(f, h, off, size))
        return 1;
    rlen = get32(h + 4);
    rn = get32(h + 8);
    body = (uint64_t)rlen + 4 * (uint64_t)rn;
    rec->len = 0;
    if (gw_buf_reserve(rec, body))
        return -ENOMEM;
    if (pread_all(fd, rec->data, body, off + hl))
        return 1;
    crc = crc32(0L, h + 4, 8);
    crc = crc32(crc, (const Bytef *)rec->data, (uInt)body);
    if ((uint32_t)crc != get32(h + 12))
        return 1;
    /* A good CRC over bad ends would be our own bug; check anyway, since a
     * reader must never hand on anything but whole lines. */
    for (uint32_t i = 0; i < rn; i++) {
        uint32_t e = get32(rec->data + rlen + 4 * (size_t)i);
        if (e <= prev || e > rlen || rec->data[e - 1] != '\n')
            return 1;
        prev = e;
    }
    if (prev != rlen)
        return 1;
    rec->len = body;
    *n = rn;
    *len = rlen;
    return 0;
}

/* The offset of the first good record at or after from, or size when there
 * is none (an I/O error or ENOMEM gives up the rest of the segment too).
 * Each magic found costs a header check from the buffer already read; only
 * a header that passes it (with a key: one this spool wrote) has its body
 * read. So the scan is linear in the bytes after from. */
static uint64_t resync(int fd, const seg_fmt_t *f, uint64_t from, uint64_t size, gw_buf_t *scratch)
{
    static const unsigned char magic[4] = {0xa5, 0xf7, 0x52, 0x4c};
    unsigned char buf[65536];
    uint64_t pos = from;
    uint32_t hl = rec_hdr(f);

    while (pos + hl <= size) {
        size_t want = size - pos < sizeof(buf) ? (size_t)(size - pos) : sizeof(buf);
        unsigned char *p = buf, *hit;
        size_t left;
        if (pread_all(fd, buf, want, pos))
            return size;
        left = want;
        while ((hit = memmem(p, left, magic, sizeof(magic))) != NULL) {
            uint32_t n, len;
            uint64_t at = pos + (uint64_t)(hit - buf);
            int rc = 1;
            /* A header straddling the chunk's end is checked by load_record. */
            if ((size_t)(hit - buf) + hl > want || header_ok(f, hit, at, size))
                rc = load_record(fd, f, at, size, scratch, &n, &len);
            if (rc == 0)
                return at;
            if (rc < 0)
                return size;
            left -= (size_t)(hit + 1 - p);
            p = hit + 1;
        }
        if (want < sizeof(buf))
            break;
        pos += want - (hl - 1); /* a header may straddle the chunks */
    }
    return size;
}

/* ------------------------------------------------------------------ segments */

static segment_t *find_seg(gw_spool_t *s, uint64_t seq, size_t *idx)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq == seq) {
            if (idx)
                *idx = i;
            return &s->segs[i];
        }
    return NULL;
}

static int add_seg(gw_spool_t *s, const segment_t *seg)
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

/* Unlink segment i (not the active one) and forget it. */
static void remove_seg(gw_spool_t *s, size_t i)
{
    char name[32];

    seg_name(name, sizeof(name), s->segs[i].seq);
    if (unlinkat(s->dirfd, name, 0) && errno != ENOENT)
        gw_log_warn("spool: cannot delete a delivered segment", "dir=\"%s\" file=%s error=\"%s\"", s->dir,
                    name, strerror(errno));
    s->total_bytes -= s->segs[i].size;
    memmove(&s->segs[i], &s->segs[i + 1], (s->nsegs - i - 1) * sizeof(s->segs[0]));
    s->nsegs--;
}

/* A new segment's key: random, so no client can know it. 0 or -1. */
static int new_key(unsigned char *key)
{
    size_t got = 0;

    while (got < KEY_LEN) {
        ssize_t k = getrandom(key + got, KEY_LEN - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

/* Create segment seq and make it the active one. Called with mu held (or
 * before any thread runs). 0, or -errno (logged). A directory that cannot
 * be synced after the new name marks the spool broken, as a failed
 * fdatasync does. */
static int open_active(gw_spool_t *s, uint64_t seq)
{
    char name[32];
    unsigned char hdr[SEG_HDR];
    segment_t seg = {.seq = seq, .size = SEG_HDR};
    struct iovec iov = {hdr, SEG_HDR};
    int fd = -1, e;

    seg_name(name, sizeof(name), seq);
    if (new_key(seg.fmt.key)) {
        e = errno ? errno : EIO;
        goto fail;
    }
    fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
        goto fail;
    }
    memcpy(hdr, SEG_MAGIC, 8);
    memcpy(hdr + 8, &seq, 8);
    memcpy(hdr + 16, seg.fmt.key, KEY_LEN);
    if (writev_all(fd, &iov, 1)) {
        e = errno;
        goto fail;
    }
    /* The new name must survive a power loss as well as its records. */
    if (s->fsync != GW_SPOOL_FSYNC_NEVER && fsync(s->dirfd)) {
        e = errno;
        s->broken = 1;
        goto fail;
    }
    if (add_seg(s, &seg)) {
        e = ENOMEM;
        goto fail;
    }
    s->wfd = fd;
    s->total_bytes += SEG_HDR;
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
    if (open_active(s, last->seq + 1))
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
            if (s->segs[0].size == SEG_HDR || rotate(s))
                break;
            continue;
        }
        lost += s->segs[0].points - s->segs[0].read;
        s->pending -= s->segs[0].points - s->segs[0].read;
        remove_seg(s, 0);
    }
    return lost;
}

/* Log the points overflow dropped since the last such line: at most every
 * DROP_LOG_EVERY seconds, or now when forced (shutdown). The reader's wait
 * wakes for it, so the last burst is logged too. mu held. */
static void log_drops(gw_spool_t *s, int force)
{
    double now = gw_clock_mono();

    if (!s->dropped_unlogged || (!force && now - s->last_drop_log < DROP_LOG_EVERY))
        return;
    gw_log_warn("spool full: dropped the oldest points (overflow: drop_oldest)", "points=%llu dir=\"%s\" max_bytes=%llu",
                (unsigned long long)s->dropped_unlogged, s->dir, (unsigned long long)s->max_bytes);
    s->dropped_unlogged = 0;
    s->last_drop_log = now;
}

/* ------------------------------------------------------------------ append */

int gw_spool_append(gw_spool_t *s, const char *lines, size_t len, const uint32_t *ends,
                    uint32_t npoints)
{
    unsigned char h[REC_HDR];
    struct iovec iov[3];
    uint64_t reclen = REC_HDR + (uint64_t)len + 4 * (uint64_t)npoints, mine, lost = 0;
    uint32_t v;
    uLong crc;
    segment_t *act;
    int rc = 0;

    if (npoints == 0)
        return 0;
    if (len > UINT32_MAX || reclen > s->max_bytes - SEG_HDR)
        return GW_SPOOL_TOO_BIG;
    /* The checksum outside the lock: workers compute theirs in parallel. */
    v = REC_MAGIC;
    memcpy(h, &v, 4);
    v = (uint32_t)len;
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, &npoints, 4);
    crc = crc32(0L, h + 4, 8);
    crc = crc32(crc, (const Bytef *)lines, (uInt)len);
    crc = crc32(crc, (const Bytef *)ends, (uInt)(4 * (size_t)npoints));
    v = (uint32_t)crc;
    memcpy(h + 12, &v, 4);
    iov[0] = (struct iovec){h, REC_HDR};    /* its check, h + 16, once the segment is known */
    iov[1] = (struct iovec){(void *)lines, len};
    iov[2] = (struct iovec){(void *)ends, 4 * (size_t)npoints};

    pthread_mutex_lock(&s->mu);
    for (;;) {
        int rotate_due, room_short;
        if (s->closed) {
            rc = GW_SPOOL_CLOSED;
            goto out;
        }
        if (s->broken) {
            rc = GW_SPOOL_FULL;
            goto out;
        }
        act = &s->segs[s->nsegs - 1];
        rotate_due = act->size > SEG_HDR && act->size + reclen > s->segment_bytes;
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
            lost += drop_oldest(s, reclen);
        if (s->total_bytes + reclen > s->max_bytes) {
            rc = GW_SPOOL_FULL;
            goto out;
        }
        act = &s->segs[s->nsegs - 1];
        if (act->size > SEG_HDR && act->size + reclen > s->segment_bytes && rotate(s)) {
            rc = GW_SPOOL_FULL;
            goto out;
        }
        act = &s->segs[s->nsegs - 1];
        break;
    }
    v = header_crc(&act->fmt, h);
    memcpy(h + 16, &v, 4);
    if (writev_all(s->wfd, iov, 3)) {
        int e = errno;
        /* Cut off whatever part of the record got written, so that the file
         * stays a sequence of whole records. */
        if (ftruncate(s->wfd, (off_t)act->size) || lseek(s->wfd, (off_t)act->size, SEEK_SET) < 0)
            s->broken = 1;
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT; /* once per request otherwise */
        gw_log_limited(&lim, 1.0, GW_LOG_ERROR, "spool: cannot write, refusing this request",
                       "dir=\"%s\" error=\"%s\"", s->dir, strerror(e));
        rc = GW_SPOOL_FULL;
        goto out;
    }
    act->size += reclen;
    act->points += npoints;
    s->total_bytes += reclen;
    s->pending += npoints;
    s->written += reclen;
    s->appends++;
    mine = s->written;
    pthread_cond_broadcast(&s->data_cv);
    if (s->fsync == GW_SPOOL_FSYNC_BATCH) {
        /* Group commit: whoever finds no fdatasync running starts one that
         * covers every record written so far; the others wait for it. */
        while (s->synced < mine && !s->broken) {
            if (!s->syncing)
                sync_now(s);
            else
                pthread_cond_wait(&s->synced_cv, &s->mu);
        }
        if (s->synced < mine)
            rc = GW_SPOOL_FULL; /* written but not durable: the client must not count on it */
    }
out:
    if (lost) {
        s->dropped_unlogged += lost;
        GW_COUNT(points_overflowed, lost);
        log_drops(s, 0);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------------ reader */

/* Does the file header hdr (seg_hdr(f) bytes) belong to segment seq? */
static int header_matches(const unsigned char *hdr, uint64_t seq, const seg_fmt_t *f)
{
    return memcmp(hdr, f->v1 ? SEG_MAGIC_V1 : SEG_MAGIC, 8) == 0 && get64(hdr + 8) == seq &&
           (f->v1 || memcmp(hdr + 16, f->key, KEY_LEN) == 0);
}

/* Move the reader to the first segment after the current one (the first of
 * all before it has started). Returns 0; 1 when there is none yet; or
 * -errno when it cannot be opened now (EMFILE...): then the reader stays
 * where it was, to try again, and the segment is never taken as read. A
 * segment whose file is gone (ENOENT: dropped by overflow, or deleted by
 * hand) is passed over with r.fd = -1. mu must not be held. */
static int next_segment(gw_spool_t *s)
{
    char name[32];
    unsigned char hdr[SEG_HDR];
    int found = 0, fd;
    uint64_t seq = 0;
    seg_fmt_t fmt = {0};

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
    seg_name(name, sizeof(name), seq);
    fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        int e = errno;
        gw_log_limited(&s->open_lim, 10.0, GW_LOG_ERROR, "spool: cannot open a segment to read, will retry",
                       "dir=\"%s\" file=%s error=\"%s\"", s->dir, name, strerror(e));
        return -e;
    }
    if (fd < 0)
        gw_log_error("spool: a segment file is gone, its points with it", "dir=\"%s\" file=%s", s->dir, name);
    else if (pread_all(fd, hdr, seg_hdr(&fmt), 0) || !header_matches(hdr, seq, &fmt))
        gw_log_warn("spool: segment header damaged, reading its records anyway", "dir=\"%s\" file=%s",
                    s->dir, name);
    if (s->r.fd >= 0)
        close(s->r.fd);
    s->r.fd = fd;
    s->r.fmt = fmt;
    /* Only the first segment read may start where the ack file says. */
    if (s->r.started || s->r.seq != seq || s->r.off < seg_hdr(&fmt)) {
        s->r.off = seg_hdr(&fmt);
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
        int lrc = load_record(s->r.fd, &s->r.fmt, s->r.off, size, &s->r.rec, &s->r.n, &s->r.len);
        uint64_t next;
        char name[32];

        if (lrc < 0)
            return lrc;
        if (lrc == 0) {
            s->r.loaded = 1;
            s->r.next = s->r.off + rec_hdr(&s->r.fmt) + s->r.rec.len;
            s->r.skip = s->r.first_skip < s->r.n ? s->r.first_skip : 0;
            s->r.first_skip = 0;
            return 0;
        }
        next = resync(s->r.fd, &s->r.fmt, s->r.off + 1, size, &s->r.scratch);
        seg_name(name, sizeof(name), s->r.seq);
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
    uint32_t k = 0, from = s->r.skip ? get32(e + 4 * (size_t)(s->r.skip - 1)) : 0, to = from;
    size_t base = data->len;

    while (k < max && s->r.skip + k < s->r.n) {
        uint32_t next = get32(e + 4 * (size_t)(s->r.skip + k));
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
        uint32_t off = (uint32_t)(base + get32(e + 4 * (size_t)(s->r.skip + i)) - from);
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

int gw_spool_read(gw_spool_t *s, gw_buf_t *data, gw_buf_t *ends, uint32_t max, size_t max_bytes, uint32_t *got,
                  gw_spool_pos_t *end)
{
    uint64_t taken = 0; /* from the current segment, not yet added to its read count */
    int rc = 0;

    *got = 0;
    pthread_mutex_lock(&s->mu);
    s->r.seen = s->appends;
    pthread_mutex_unlock(&s->mu);
    if (!s->r.started) {
        rc = next_segment(s);
        if (rc)
            goto done;
    }
    while (*got < max && data->len < max_bytes) {
        int64_t k;
        if (!s->r.loaded) {
            uint64_t size;
            int active, old;
            segment_t *seg;
            size_t idx = 0;

            pthread_mutex_lock(&s->mu);
            seg = find_seg(s, s->r.seq, &idx);
            if (seg && taken) {
                seg->read += taken;
                taken = 0;
            }
            size = seg ? seg->size : 0;
            active = seg && idx == s->nsegs - 1;
            old = seg ? seg->old : 0;
            pthread_mutex_unlock(&s->mu);
            if (!seg || s->r.fd < 0 || (!active && s->r.off >= size)) {
                /* Done with it (or it was dropped, or its file is gone): on to the next. */
                taken = 0;
                rc = next_segment(s);
                if (rc)
                    break;
                continue;
            }
            rc = load_next(s, size, old);
            if (rc)
                break; /* caught up with the writer, or ENOMEM */
        }
        k = take_points(s, data, ends, max - *got, max_bytes - data->len, data->len == 0);
        if (k < 0) {
            rc = (int)k;
            break;
        }
        if (k == 0)
            break;
        *got += (uint32_t)k;
        taken += (uint64_t)k;
    }
    if (taken) {
        segment_t *seg;
        pthread_mutex_lock(&s->mu);
        seg = find_seg(s, s->r.seq, NULL);
        if (seg)
            seg->read += taken;
        pthread_mutex_unlock(&s->mu);
    }
done:
    if (rc > 0)
        rc = 0;
    end->seq = s->r.seq;
    end->off = s->r.off;
    end->skip = s->r.loaded ? s->r.skip : 0;
    return rc;
}

void gw_spool_wait(gw_spool_t *s, double until)
{
    pthread_mutex_lock(&s->mu);
    while (s->appends == s->r.seen && !s->closed) {
        double wake = until;
        if (s->dropped_unlogged && (wake == 0 || s->last_drop_log + DROP_LOG_EVERY < wake))
            wake = s->last_drop_log + DROP_LOG_EVERY;
        if (wake > 0) {
            struct timespec ts = gw_clock_timespec(wake);
            if (gw_clock_mono() >= wake || pthread_cond_timedwait(&s->data_cv, &s->mu, &ts) == ETIMEDOUT) {
                log_drops(s, 0);
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
            more = seg->size > seg_hdr(&seg->fmt);
        else if (seg->seq == s->r.seq)
            more = s->r.off < seg->size;
    }
    pthread_mutex_unlock(&s->mu);
    return more;
}

void gw_spool_ack(gw_spool_t *s, const gw_spool_pos_t *pos, uint32_t npoints)
{
    unsigned char a[ACK_SIZE];
    uLong crc;

    memcpy(a, ACK_MAGIC, 8);
    memcpy(a + 8, &pos->seq, 8);
    memcpy(a + 16, &pos->off, 8);
    memcpy(a + 24, &pos->skip, 4);
    crc = crc32(0L, a, 28);
    {
        uint32_t c = (uint32_t)crc;
        memcpy(a + 28, &c, 4);
    }
    pthread_mutex_lock(&s->mu);
    s->pending -= npoints < s->pending ? npoints : s->pending;
    /* Not synced: losing it only means delivering some points again. */
    if (pwrite(s->ackfd, a, ACK_SIZE, 0) != (ssize_t)ACK_SIZE)
        gw_log_warn("spool: cannot write the ack file", "dir=\"%s\" error=\"%s\"", s->dir, strerror(errno));
    while (s->nsegs > 1 && (s->segs[0].seq < pos->seq ||
                            (s->segs[0].seq == pos->seq && pos->off >= s->segs[0].size)))
        remove_seg(s, 0);
    pthread_mutex_unlock(&s->mu);
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

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The segment numbers in the directory, sorted. 0 or -errno. */
static int list_segments(gw_spool_t *s, uint64_t **out, size_t *n)
{
    int fd = dup(s->dirfd), err;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    uint64_t *v = NULL;
    size_t cap = 0;

    *n = 0;
    if (!d) {
        err = errno;
        if (fd >= 0)
            close(fd);
        return -err;
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long long seq;
        if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".seg"))
            continue;
        seq = strtoull(e->d_name, &end, 16);
        if (end != e->d_name + 16)
            continue;
        if (*n == cap) {
            uint64_t *w = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
            if (!w) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = w;
        }
        v[(*n)++] = seq;
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof(*v), cmp_u64); /* v is NULL when there are none */
    *out = v;
    return 0;
}

/* The ack file's position, or 0 when there is none (or it is damaged). */
static int read_ack(gw_spool_t *s, gw_spool_pos_t *pos)
{
    unsigned char a[ACK_SIZE];

    if (pread_all(s->ackfd, a, ACK_SIZE, 0) || memcmp(a, ACK_MAGIC, 8) ||
        (uint32_t)crc32(0L, a, 28) != get32(a + 28))
        return 0;
    pos->seq = get64(a + 8);
    pos->off = get64(a + 16);
    pos->skip = get32(a + 24);
    return 1;
}

/* Check every record of an old segment from start on, logging damage.
 * Fills seg->points. 0 or -ENOMEM. */
static int scan_segment(gw_spool_t *s, int fd, segment_t *seg, uint64_t start, uint32_t skip)
{
    char name[32];
    uint64_t off = start;

    seg_name(name, sizeof(name), seg->seq);
    while (off < seg->size) {
        uint32_t n, len;
        int rc = load_record(fd, &seg->fmt, off, seg->size, &s->r.scratch, &n, &len);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            seg->points += n - (off == start && skip < n ? skip : 0);
            off += rec_hdr(&seg->fmt) + len + 4 * (uint64_t)n;
            continue;
        }
        {
            uint64_t next = resync(fd, &seg->fmt, off + 1, seg->size, &s->r.scratch);
            s->corrupt++;
            if (next == seg->size)
                gw_log_warn("spool: torn or damaged record at the end of a segment skipped",
                            "dir=\"%s\" file=%s offset=%llu bytes=%llu", s->dir, name,
                            (unsigned long long)off, (unsigned long long)(next - off));
            else
                gw_log_error("spool: damaged record skipped", "dir=\"%s\" file=%s offset=%llu bytes=%llu",
                             s->dir, name, (unsigned long long)off, (unsigned long long)(next - off));
            off = next;
        }
    }
    return 0;
}

/* The format of an earlier run's segment, from its header. A damaged magic
 * is taken for the current format: its records then fail their checks
 * unless the key survived. */
static void read_format(int fd, segment_t *seg)
{
    unsigned char hdr[SEG_HDR] = {0};

    if (pread_all(fd, hdr, SEG_HDR_V1, 0) == 0 && memcmp(hdr, SEG_MAGIC_V1, 8) == 0) {
        seg->fmt.v1 = 1;
        return;
    }
    if (seg->size >= SEG_HDR && pread_all(fd, hdr, SEG_HDR, 0) == 0)
        memcpy(seg->fmt.key, hdr + 16, KEY_LEN);
}

/* Take stock of what an earlier run left. 0 or -1 with err set. */
static int recover(gw_spool_t *s, char *err, size_t errlen)
{
    uint64_t *seqs = NULL, last = 0, points = 0;
    size_t n = 0, kept = 0;
    gw_spool_pos_t ack = {0};
    int have_ack = read_ack(s, &ack), e;

    e = list_segments(s, &seqs, &n);
    if (e) {
        snprintf(err, errlen, "spool.dir %s: cannot list: %s", s->dir, strerror(-e));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char name[32];
        segment_t seg = {.seq = seqs[i], .old = 1};
        struct stat st;
        int fd;

        last = seqs[i];
        seg_name(name, sizeof(name), seqs[i]);
        if (have_ack && seqs[i] < ack.seq) {
            unlinkat(s->dirfd, name, 0); /* delivered; the deletion had not happened */
            continue;
        }
        fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st)) {
            snprintf(err, errlen, "spool.dir %s: cannot read %s: %s", s->dir, name, strerror(errno));
            if (fd >= 0)
                close(fd);
            free(seqs);
            return -1;
        }
        seg.size = (uint64_t)st.st_size;
        read_format(fd, &seg);
        if (seg.size > seg_hdr(&seg.fmt)) {
            uint64_t start = seg_hdr(&seg.fmt);
            uint32_t skip = 0;
            if (have_ack && seqs[i] == ack.seq && ack.off >= start) {
                start = ack.off;
                skip = ack.skip;
            }
            if (scan_segment(s, fd, &seg, start, skip)) {
                snprintf(err, errlen, "spool.dir %s: out of memory reading %s", s->dir, name);
                close(fd);
                free(seqs);
                return -1;
            }
        }
        close(fd);
        if (seg.points == 0) {
            unlinkat(s->dirfd, name, 0); /* nothing left to deliver in it */
            continue;
        }
        if (add_seg(s, &seg)) {
            snprintf(err, errlen, "out of memory");
            free(seqs);
            return -1;
        }
        s->total_bytes += seg.size;
        points += seg.points;
        kept++;
    }
    free(seqs);
    s->pending = points;
    if (have_ack && ack.seq > last)
        last = ack.seq;
    if (kept && have_ack && s->segs[0].seq == ack.seq && ack.off >= seg_hdr(&s->segs[0].fmt)) {
        s->r.seq = ack.seq;
        s->r.off = ack.off;
        s->r.first_skip = ack.skip;
    }
    if (kept || s->corrupt)
        gw_log_info("spool: recovered points from an earlier run, delivering them first",
                    "dir=\"%s\" points=%llu segments=%zu damaged_records=%llu", s->dir,
                    (unsigned long long)points, kept, (unsigned long long)s->corrupt);
    e = open_active(s, last + 1);
    if (e) {
        snprintf(err, errlen, "spool.dir %s: cannot create a segment: %s", s->dir, strerror(-e));
        return -1;
    }
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
    if (recover(s, err, errlen))
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
    log_drops(s, 1);
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
