/* spool_int.h — what the spool's files share (internal to spool*.c, hidden
 * from libluagw.so; spool.h is the API):
 *   spool.c          opening and closing; the writer (append, segments,
 *                    fsync and group commit, overflow)
 *   spool_reader.c   the one reader (the sender): read, wait, ack
 *   spool_recover.c  what an earlier run left, taken stock of at open
 *   spool_record.c   the files' bytes (spool_record.h)
 * Every field of struct gw_spool but r is guarded by mu; r belongs to the
 * reader thread. */
#ifndef GW_SPOOL_INT_H
#define GW_SPOOL_INT_H

#include <pthread.h>

#include "log.h"
#include "spool.h"
#include "spool_record.h"

#define SPOOL_DROP_LOG_EVERY 10.0 /* seconds between "dropped the oldest points" lines */

typedef struct {
    uint64_t seq;
    spool_fmt_t fmt;
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
    gw_log_limit_t drop_lim;  /* lines on the points dropped */
    uint64_t dropped_unlogged;
    gw_log_limit_t open_lim;  /* "cannot open a segment to read" */
    struct {                  /* the reader's; only the reader thread touches it */
        int fd;               /* open segment, -1 before the first (or when it was gone) */
        uint64_t seq;
        spool_fmt_t fmt;        /* of the open segment */
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

/* The segment numbered seq (and its index into s->segs), or NULL. mu held. */
segment_t *spool_find_seg(gw_spool_t *s, uint64_t seq, size_t *idx);

/* Add seg as the newest segment. 0 or -ENOMEM. mu held. */
int spool_add_seg(gw_spool_t *s, const segment_t *seg);

/* Unlink segment i (not the active one) and forget it. mu held. */
void spool_remove_seg(gw_spool_t *s, size_t i);

/* Create segment seq and make it the active one. 0, or -errno (logged). mu
 * held (or before any thread runs). */
int spool_open_active(gw_spool_t *s, uint64_t seq);

/* Log the points overflow dropped since the last such line: at most every
 * SPOOL_DROP_LOG_EVERY seconds, or now when forced. mu held. */
void spool_log_drops(gw_spool_t *s, int force);

/* Take stock of what an earlier run left in the directory, then open a new
 * active segment. 0 or -1 with the reason in err. Before any thread runs. */
int spool_recover(gw_spool_t *s, char *err, size_t errlen);

#endif
