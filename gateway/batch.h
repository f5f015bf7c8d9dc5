/* batch.h — the bounded buffer between ingest and output.
 *
 * Workers append encoded line protocol (one lock per request, never per
 * point) to the open batch; a batch is sealed when it holds batch_size points
 * or GW_BATCH_MAX_BYTES of lines, or has been open for flushing_period, then
 * waits in FIFO order for the sender. Every point counts against
 * buffer_limit, and its bytes (its line and its 4-byte end) against
 * buffer_limit_bytes, from the moment it is appended until the sender
 * releases its batch, so memory stays bounded whatever the points hold. A
 * sealed batch gives back the slack of its growing buffer, and the buffers
 * kept for reuse are small, so the bytes counted are the bytes held.
 *
 * With a spool (spool.h) the spool is the queue: a push appends a record to
 * it (durably, per its fsync policy) and take() reads the next batch back
 * from it, so memory holds only the batch being sent; release() acks the
 * batch in the spool. buffer_limit does not apply then; spool.max_bytes does.
 *
 * When the buffer is full a push is refused whole (GW_QUEUE_FULL: the client
 * gets 503 and nothing of its body was taken), or, with overflow drop_oldest,
 * the oldest waiting points make room and are counted in points_overflowed. */
#ifndef GW_BATCH_H
#define GW_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "jsonw.h"
#include "spool.h"

/* A batch is sealed once its lines reach this size (a point larger than it
 * gets a batch of its own): InfluxDB's default max-body-size is 25 MB, and
 * the sender's gzip copy of a batch stays small. */
#define GW_BATCH_MAX_BYTES ((size_t)8 << 20)

typedef struct gw_batch {
    gw_buf_t data;          /* owned: lines, each ending in '\n' */
    uint32_t npoints;
    double opened_at;       /* monotonic seconds of the first append */
    struct gw_batch *next;  /* queue link, owned by the queue */
    gw_buf_t ends;          /* owned: uint32_t offset just past each point's line */
    gw_spool_pos_t end;     /* with a spool: the position just behind the batch */
} gw_batch_t;

typedef struct gw_queue gw_queue_t;

enum {
    GW_QUEUE_FULL = 1,   /* not enough room under buffer_limit(_bytes): try later */
    GW_QUEUE_CLOSED = 2, /* shutting down */
    GW_QUEUE_TOO_BIG = 3 /* more points or bytes than the buffer could ever hold */
};

/* Create an in-memory queue. NULL on ENOMEM. Free with gw_queue_destroy. */
gw_queue_t *gw_queue_create(uint32_t batch_size, uint32_t buffer_limit, double flushing_period);

/* Create the queue cfg describes: monitoring.batch_size, buffer_limit,
 * buffer_limit_bytes, flushing_period and overflow, and the spool when
 * spool.dir is set (opened and recovered here, owned by the queue). NULL
 * with the reason in err. */
gw_queue_t *gw_queue_open(const gw_config_t *cfg, char *err, size_t errlen);

/* overflow: drop_oldest (1) or reject (0, the default). Before use. */
void gw_queue_set_drop_oldest(gw_queue_t *q, int on);

/* Bound the bytes held (lines and their 4-byte ends); none by default.
 * Before use. */
void gw_queue_set_limit_bytes(gw_queue_t *q, uint64_t limit);

/* Make spool (now owned by q) the queue's storage. Before use. */
void gw_queue_use_spool(gw_queue_t *q, gw_spool_t *spool);

/* Append npoints lines (len bytes). ends[i] is the offset just past point i's
 * line; it lets a request larger than the room in the open batch be split at
 * point boundaries. All or nothing: returns 0, GW_QUEUE_FULL,
 * GW_QUEUE_CLOSED, GW_QUEUE_TOO_BIG (nothing appended), or -ENOMEM. */
int gw_queue_push(gw_queue_t *q, const char *lines, size_t len, const uint32_t *ends,
                  uint32_t npoints);

/* Sender side: block until a batch is due (full, older than flushing_period,
 * or the queue is closing) and return it; the caller owns it until it calls
 * gw_queue_release. Returns NULL once the queue is closed and empty, or when
 * deadline (monotonic seconds, 0 = none) passes. */
gw_batch_t *gw_queue_take(gw_queue_t *q, double deadline);

/* Closed, and nothing left to take? */
int gw_queue_finished(gw_queue_t *q);

/* The sender is done with b (delivered or given up for good): free its room
 * (with a spool: ack it). */
void gw_queue_release(gw_queue_t *q, gw_batch_t *b);

/* The sender gave b up at shutdown with done of its points dealt with: free
 * b, keep the rest counted as undelivered (with a spool they stay in it for
 * the next run). */
void gw_queue_abandon(gw_queue_t *q, gw_batch_t *b, uint32_t done);

/* Stop accepting; seal the open batch so take() returns it at once. */
void gw_queue_close(gw_queue_t *q);

/* Points held (open + waiting + being sent; with a spool: not yet acked). */
uint64_t gw_queue_points(gw_queue_t *q);

/* The bytes of those points: in memory, their lines and ends (what
 * buffer_limit_bytes bounds); with a spool, the spool's bytes on disk. */
uint64_t gw_queue_bytes(gw_queue_t *q);

/* The limit gw_queue_bytes is held under: buffer_limit_bytes, or with a
 * spool spool.max_bytes. */
uint64_t gw_queue_limit_bytes(gw_queue_t *q);

/* The spool, or NULL (borrowed from q). */
gw_spool_t *gw_queue_spool(gw_queue_t *q);

/* For /health: {"points", "bytes", "damaged_records", "appends", "syncs"}
 * of the spool, or null without one, written as the next value of w. */
void gw_queue_spool_json(gw_queue_t *q, gw_jsonw_t *w);

/* Free the queue and any batches still in it (and its spool, whose files
 * stay). NULL is a no-op. */
void gw_queue_destroy(gw_queue_t *q);

#endif
