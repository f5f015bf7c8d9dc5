/* fanout.h — the bounded buffer between ingest and the outputs.
 *
 * Workers hand over encoded line protocol per *destination*: the outputs a
 * point is routed to and the database it names. Each destination (a
 * *group*) has one open batch, shared by all its outputs that buffer in
 * memory: a point routed to two outputs is copied once. A batch is sealed
 * when it holds batch_size points or GW_BATCH_MAX_BYTES of lines, or has
 * been open flushing_period (the smallest of its outputs'), and a reference
 * to it then waits in a *lane* of each of its outputs: one lane per
 * database the output writes to (its own, and those clients or scripts
 * name on it). The batch is freed when the last output has dealt with it.
 * An output with a spool has a spool per lane instead
 * (<spool.dir>/databases/<name> beside its own in <spool.dir>), and a
 * point routed to it is appended to that spool: its own copy on disk.
 *
 * Limits are per output: every point routed to an output, and its bytes
 * (its line and its 4-byte end), count against that output's buffer_limit
 * and buffer_limit_bytes from the moment it is accepted until that output
 * has dealt with it (with a spool: spool.max_bytes, over all its lanes).
 * A push is all or nothing, over every output of every destination it
 * holds: nothing is kept when one of them has no room (overflow: reject);
 * an output with overflow: drop_oldest drops its oldest waiting batches to
 * make room.
 *
 * Each output's sender takes batches from its lanes in turn, oldest first
 * within a lane, and may park a lane (its batch kept at its head) while it
 * waits to retry: the other lanes go on meanwhile. One lock covers
 * destinations, lanes and counts; spool appends and reads happen outside
 * it. Lanes and destinations nobody used for a while are retired, so what
 * clients name cannot grow them without bound (max_databases lanes per
 * output at most). */
#ifndef GW_FANOUT_H
#define GW_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A batch is sealed once its lines reach this size (a point larger than it
 * gets a batch of its own): InfluxDB's default max-body-size is 25 MB, and
 * the sender's gzip copy of a batch stays small. */
#define GW_BATCH_MAX_BYTES ((size_t)8 << 20)

typedef struct gw_fanout gw_fanout_t;

enum {
    GW_FANOUT_FULL = 1,    /* no room now in an output (overflow: reject): try later */
    GW_FANOUT_CLOSED = 2,  /* shutting down */
    GW_FANOUT_TOO_BIG = 3, /* more than an output could ever hold */
    GW_FANOUT_LANES = 4,   /* an output writes to max_databases databases already: try later */
};

/* One output, as the buffer sees it (strings are copied). */
typedef struct {
    const char *name;
    uint32_t batch_size;         /* points per batch */
    uint32_t buffer_limit;       /* points held at most (in memory) */
    uint64_t buffer_limit_bytes; /* their bytes at most */
    double flushing_period;      /* seconds a partly filled batch may wait */
    int drop_oldest;             /* overflow: drop_oldest */
    int passthrough;             /* a database the client names is used here */
    int uses_rp;                 /* 1.x: a retention policy is part of where points go */
    const char *database;        /* its own (bucket for 2.x); a write naming it goes to its own lane */
    const char *rp;              /* its own retention policy ("" = the default) */
    uint32_t max_databases;      /* lanes at most, its own included */
    const char *spool_dir;       /* NULL or "": in memory */
    uint64_t spool_max_bytes;    /* all its lanes' spools together */
    int fsync;                   /* GW_SPOOL_FSYNC_* */
    double fsync_interval;
} gw_fanout_output_t;

/* Where points go: outputs (bit i = output i), and the database and
 * retention policy they are for (p NULL = none named: each output's own).
 * The database is used on outputs with passthrough, or on all of them
 * when forced (a script's point.db). */
typedef struct {
    uint64_t outputs;
    gw_str_t db, rp;
    int forced;
} gw_fanout_dest_t;

/* npoints encoded lines (len bytes; ends[i] the offset just past point
 * i's line) for one destination. */
typedef struct {
    gw_fanout_dest_t dest;
    const char *lines;
    size_t len;
    const uint32_t *ends;
    uint32_t npoints;
} gw_fanout_part_t;

/* Create the buffer of n outputs (at most 64), and open their spools: the
 * lanes an earlier run left points in are recovered. lane_free (may be
 * NULL) frees what a sender keeps per lane (gw_fanout_job_t.state) when a
 * lane is retired. NULL with the reason in err. Free with
 * gw_fanout_destroy. */
gw_fanout_t *gw_fanout_create(const gw_fanout_output_t *outputs, int n, void (*lane_free)(void *state),
                              char *err, size_t errlen);

/* Hand over the parts of one request, all or nothing. Returns 0;
 * GW_FANOUT_FULL, _TOO_BIG or _LANES with *full the outputs that said so;
 * GW_FANOUT_CLOSED; or -ENOMEM (part of it may have been taken). */
int gw_fanout_push(gw_fanout_t *f, const gw_fanout_part_t *parts, int nparts, uint64_t *full);

/* A batch an output's sender is to deliver, from gw_fanout_take until
 * gw_fanout_done, _park or _abandon. */
typedef struct {
    const char *data;     /* the lines: other outputs may be reading them */
    const uint32_t *ends; /* ends[i]: just past point i's line */
    uint32_t npoints;
    int writable;         /* no other output holds these bytes: they may be rewritten in place */
    const char *db, *rp;  /* the lane's database and retention policy; NULL: the output's own */
    void **state;         /* the sender's slot in the lane (NULL at first; freed by lane_free) */
    void *lane_;          /* private */
} gw_fanout_job_t;

/* Output o's next batch: the first due in the lane after the last one
 * served (a lane that is not parked). Blocks until there is one, or until
 * deadline (monotonic seconds; 0 = none) passes, or the buffer is closed
 * and o has nothing left. 1 with *job filled, else 0. One thread per
 * output. */
int gw_fanout_take(gw_fanout_t *f, int o, double deadline, gw_fanout_job_t *job);

/* The batch is dealt with (delivered, or given up for good): its room is
 * free (with a spool: acked). */
void gw_fanout_done(gw_fanout_t *f, int o, gw_fanout_job_t *job);

/* Not now: the lane keeps the batch and is not served before until
 * (monotonic seconds); take() then hands out the same batch again. */
void gw_fanout_park(gw_fanout_t *f, int o, gw_fanout_job_t *job, double until);

/* Shutdown: done of the batch's points were dealt with; the rest stay
 * counted as undelivered (with a spool they stay in it). */
void gw_fanout_abandon(gw_fanout_t *f, int o, gw_fanout_job_t *job, uint32_t done);

/* Stop taking pushes (GW_FANOUT_CLOSED); seal every open batch so that the
 * senders take them at once. */
void gw_fanout_close(gw_fanout_t *f);

/* Is output o closed and left with nothing to deliver? */
int gw_fanout_finished(gw_fanout_t *f, int o);

typedef struct {
    uint64_t points, bytes;  /* held: in memory, or in its spools (bytes on disk) */
    uint64_t limit_points;   /* buffer_limit (0 with a spool) */
    uint64_t limit_bytes;    /* buffer_limit_bytes, or spool.max_bytes */
    uint64_t overflowed;     /* points dropped by overflow: drop_oldest */
    uint32_t lanes, parked;  /* databases in use; those waiting to retry */
    int spooled;
    uint64_t damaged, appends, syncs; /* with a spool: summed over its lanes */
} gw_fanout_stats_t;

void gw_fanout_stats(gw_fanout_t *f, int o, gw_fanout_stats_t *st);

typedef struct {
    const char *db, *rp; /* NULL: the output's own */
    uint64_t points;     /* held for it */
    double parked_for;   /* seconds until it is served again; 0 when not parked */
} gw_fanout_lane_t;

/* Call fn for each lane of output o, under the buffer's lock (fn must not
 * call back into f). */
void gw_fanout_each_lane(gw_fanout_t *f, int o, void (*fn)(const gw_fanout_lane_t *l, void *ud), void *ud);

/* Destinations in use, over all outputs (their open batches). */
uint32_t gw_fanout_groups(gw_fanout_t *f);

/* For specs: seconds a destination without an open batch, and an empty
 * lane that is not an output's own, are kept unused before they are
 * retired (10 and 60 by default). Before use. */
void gw_fanout_set_idle(gw_fanout_t *f, double group_idle, double lane_idle);

/* Free everything (spool files stay). NULL is a no-op. */
void gw_fanout_destroy(gw_fanout_t *f);

#endif
