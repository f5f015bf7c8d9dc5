/* spool.h — the durable queue: accepted line protocol on disk until InfluxDB
 * has taken it.
 *
 * A directory of segment files, each a header (with a random key) and then
 * records. One record is what one ingest request handed over:
 *
 *   u32 magic | u32 len | u32 npoints | u32 crc | u32 hcrc | len bytes of lines | npoints u32 ends
 *
 * little-endian; crc is zlib's crc32 over len, npoints, the lines and the
 * ends, hcrc a check of the header with the segment's key (spool_record.h);
 * ends[i] is the offset just past point i's line (a string field may hold a
 * raw newline, so lines are not found by searching for '\n'). A record that
 * fails its checks (torn by a kill mid-write, or damaged on disk) is skipped
 * with a log line and the reader resynchronises on the next record that
 * passes them: garbage is never replayed.
 *
 * Writers append under one lock and, with fsync "batch", wait for one
 * fdatasync that covers their record: concurrent requests share it (group
 * commit). The single reader (the sender) walks the records in order; ack()
 * records how far InfluxDB has accepted them in the file "ack" and deletes the
 * segments wholly behind that point. On open, segments left by an earlier run
 * are read first, from the last ack on; new records go to a new segment. */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct gw_spool gw_spool_t;

/* The same values as GW_FANOUT_FULL, _CLOSED and _TOO_BIG (fanout.h),
 * which passes a spool's answer on as its own. */
enum { GW_SPOOL_FULL = 1, GW_SPOOL_CLOSED = 2, GW_SPOOL_TOO_BIG = 3 };

enum { GW_SPOOL_FSYNC_BATCH = 0, GW_SPOOL_FSYNC_INTERVAL, GW_SPOOL_FSYNC_NEVER };

typedef struct {
    const char *dir;        /* borrowed; created if missing */
    uint64_t max_bytes;     /* segments on disk at most (503 beyond) */
    uint64_t segment_bytes; /* rotate after this much; 0 = max_bytes / 8 */
    int fsync;              /* GW_SPOOL_FSYNC_* */
    double fsync_interval;  /* seconds, for GW_SPOOL_FSYNC_INTERVAL */
    int drop_oldest;        /* when full, delete the oldest segments instead of refusing */
} gw_spool_opts_t;

/* A place in the spool: the record at byte off of segment seq, of which the
 * first skip points are behind it. */
typedef struct {
    uint64_t seq;
    uint64_t off;
    uint32_t skip;
} gw_spool_pos_t;

/* Open (or create) the spool in o->dir and recover what an earlier run left:
 * every old record is checked, the damaged ones logged. NULL on failure with
 * the reason in err. Free with gw_spool_destroy. */
gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen);

/* Append npoints lines (len bytes; ends as in the record) as one record and
 * make it durable per the fsync policy. Returns 0 once it is; GW_SPOOL_FULL
 * (no room under max_bytes, or the disk refused: try later),
 * GW_SPOOL_CLOSED, GW_SPOOL_TOO_BIG (could never fit). Thread-safe. */
int gw_spool_append(gw_spool_t *s, const char *lines, size_t len, const uint32_t *ends,
                    uint32_t npoints);

/* Reader: append up to max points that follow the read position to data
 * (their lines) and ends (uint32_t offsets into data, adjusted), without
 * blocking, and stop before data->len would pass max_bytes (one point is
 * taken into an empty data whatever its size). Sets *got to the number
 * appended and *end to the position just behind them. Returns 0, -ENOMEM,
 * or -errno when the next segment cannot be opened now (EMFILE...): the
 * reader then stays where it was, and a later call tries again. One reader
 * thread only. */
int gw_spool_read(gw_spool_t *s, gw_buf_t *data, gw_buf_t *ends, uint32_t max, size_t max_bytes, uint32_t *got,
                  gw_spool_pos_t *end);

/* Reader: block until there may be more to read, the spool is closed, or
 * until (monotonic seconds; 0 = no limit) passes. */
void gw_spool_wait(gw_spool_t *s, double until);

/* Reader: does the spool hold records the reader has not read? */
int gw_spool_unread(gw_spool_t *s);

/* Reader: InfluxDB has dealt with everything before pos (npoints points
 * since the last ack). Persists pos and deletes segments wholly behind it. */
void gw_spool_ack(gw_spool_t *s, const gw_spool_pos_t *pos, uint32_t npoints);

/* Refuse further appends (GW_SPOOL_CLOSED) and wake the reader. */
void gw_spool_close(gw_spool_t *s);

/* Points appended (or recovered) and not yet acked; bytes on disk. */
uint64_t gw_spool_points(gw_spool_t *s);
uint64_t gw_spool_bytes(gw_spool_t *s);

/* Records skipped as damaged since open (recovery included). */
uint64_t gw_spool_corrupt(gw_spool_t *s);

/* Appends and fdatasync calls since open. */
void gw_spool_counts(gw_spool_t *s, uint64_t *appends, uint64_t *syncs);

/* Sync, close and free. The files stay for the next run. NULL is a no-op. */
void gw_spool_destroy(gw_spool_t *s);

#endif
