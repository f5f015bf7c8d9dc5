/* spool_recover.c — what an earlier run left in the spool directory, taken
 * stock of at open (spool_int.h): the segments behind the last ack deleted,
 * every record after it checked, the damaged ones logged and counted, the
 * reader set where the ack file says. */
#include "spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    unsigned char a[SPOOL_ACK_SIZE];

    return spool_pread_all(s->ackfd, a, SPOOL_ACK_SIZE, 0) == 0 && spool_ack_decode(a, pos);
}

/* Check every record of an old segment from start on, logging damage.
 * Fills seg->points. 0 or -ENOMEM. */
static int scan_segment(gw_spool_t *s, int fd, segment_t *seg, uint64_t start, uint32_t skip)
{
    char name[32];
    uint64_t off = start;

    spool_seg_name(name, sizeof(name), seg->seq);
    while (off < seg->size) {
        uint32_t n, len;
        int rc = spool_load_record(fd, &seg->fmt, off, seg->size, &s->r.scratch, &n, &len);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            seg->points += n - (off == start && skip < n ? skip : 0);
            off += spool_rec_hdr(&seg->fmt) + len + 4 * (uint64_t)n;
            continue;
        }
        {
            uint64_t next = spool_resync(fd, &seg->fmt, off + 1, seg->size, &s->r.scratch);
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

/* Take stock of old segment seq: a segment wholly behind the ack (ack NULL:
 * none) was delivered, one without points left is done: both are deleted.
 * Otherwise it is checked from the ack on and kept. 0 or -1 with the reason
 * in err. */
static int recover_segment(gw_spool_t *s, uint64_t seq, const gw_spool_pos_t *ack, char *err, size_t errlen)
{
    char name[32];
    segment_t seg = {.seq = seq, .old = 1};
    struct stat st;
    int fd, rc = 0;

    spool_seg_name(name, sizeof(name), seq);
    if (ack && seq < ack->seq) {
        unlinkat(s->dirfd, name, 0); /* delivered; the deletion had not happened */
        return 0;
    }
    fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        snprintf(err, errlen, "spool.dir %s: cannot read %s: %s", s->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    seg.size = (uint64_t)st.st_size;
    spool_read_format(fd, seg.size, &seg.fmt);
    if (seg.size > spool_seg_hdr(&seg.fmt)) {
        uint64_t start = spool_seg_hdr(&seg.fmt);
        uint32_t skip = 0;
        if (ack && seq == ack->seq && ack->off >= start) {
            start = ack->off;
            skip = ack->skip;
        }
        if (scan_segment(s, fd, &seg, start, skip)) {
            snprintf(err, errlen, "spool.dir %s: out of memory reading %s", s->dir, name);
            rc = -1;
        }
    }
    close(fd);
    if (rc || seg.points == 0) {
        if (!rc)
            unlinkat(s->dirfd, name, 0); /* nothing left to deliver in it */
        return rc;
    }
    if (spool_add_seg(s, &seg)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->total_bytes += seg.size;
    s->pending += seg.points;
    return 0;
}

int spool_recover(gw_spool_t *s, char *err, size_t errlen)
{
    uint64_t *seqs = NULL, last = 0;
    size_t n = 0;
    gw_spool_pos_t ack = {0};
    int have_ack = read_ack(s, &ack), e;

    e = list_segments(s, &seqs, &n);
    if (e) {
        snprintf(err, errlen, "spool.dir %s: cannot list: %s", s->dir, strerror(-e));
        return -1;
    }
    s->pending = 0;
    for (size_t i = 0; i < n; i++) {
        last = seqs[i];
        if (recover_segment(s, seqs[i], have_ack ? &ack : NULL, err, errlen)) {
            free(seqs);
            return -1;
        }
    }
    free(seqs);
    if (have_ack && ack.seq > last)
        last = ack.seq;
    if (s->nsegs && have_ack && s->segs[0].seq == ack.seq && ack.off >= spool_seg_hdr(&s->segs[0].fmt)) {
        s->r.seq = ack.seq;
        s->r.off = ack.off;
        s->r.first_skip = ack.skip;
    }
    if (s->nsegs || s->corrupt)
        gw_log_info("spool: recovered points from an earlier run, delivering them first",
                    "dir=\"%s\" points=%llu segments=%zu damaged_records=%llu", s->dir,
                    (unsigned long long)s->pending, s->nsegs, (unsigned long long)s->corrupt);
    e = spool_open_active(s, last + 1);
    if (e) {
        snprintf(err, errlen, "spool.dir %s: cannot create a segment: %s", s->dir, strerror(-e));
        return -1;
    }
    return 0;
}
