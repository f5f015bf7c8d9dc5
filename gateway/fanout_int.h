/* fanout_int.h — what fanout.c (destinations, batches, lanes, limits,
 * pushing) and fanout_take.c (the senders' side: retiring, taking,
 * done/park/abandon) share; not an API. Everything here is guarded by
 * gw_fanout_t.mu. */
#ifndef GW_FANOUT_INT_H
#define GW_FANOUT_INT_H

#include "fanout.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"

#define SPARE_MAX 4                   /* released batches kept for reuse... */
#define SPARE_BYTES ((size_t)1 << 20) /* ...when their buffers are no larger */
#define TRIM_MIN ((size_t)64 << 10)   /* a sealed batch's slack beyond this and a quarter is given back */
#define DROP_LOG_EVERY 10.0           /* seconds between "dropped the oldest points" lines */
#define GROUP_IDLE 10.0               /* seconds a destination without an open batch is kept */
#define LANE_IDLE 60.0                /* seconds an empty lane (not an output's own) is kept */
#define GROUPS_MAX 4096               /* destinations at once */
#define SPOOL_RETRY 0.1               /* seconds before a spool that could not be read is read again */

typedef struct fbatch fbatch_t;
typedef struct lane lane_t;

/* A batch's place in one lane's FIFO. */
typedef struct link {
    fbatch_t *b;       /* borrowed: the batch this link belongs to */
    uint64_t seq;      /* when it was sealed: drop_oldest drops the smallest */
    struct link *next; /* in the lane */
} link_t;

struct fbatch {
    gw_buf_t data;      /* owned: lines */
    gw_buf_t ends;      /* owned: uint32_t offsets just past each line */
    uint32_t npoints;
    double opened_at;   /* monotonic, at the first append (or read) */
    int refs;           /* lanes holding it (memory) */
    link_t *links;      /* owned: one per lane it may be sealed into */
    int nlinks;
    gw_spool_pos_t end; /* spooled: the position behind it */
    fbatch_t *next;     /* in the spare list */
};

struct lane {
    struct output *out;  /* borrowed */
    char *db, *rp;       /* owned; NULL: the output's own */
    link_t *head, *tail; /* memory: sealed batches waiting, oldest first */
    gw_spool_t *spool;   /* owned, with a spool */
    fbatch_t *current;   /* taken by the sender (memory: holds a reference) */
    fbatch_t *filling;   /* spooled: read back, not yet due (the sender's) */
    double held_until;   /* parked until then; 0 = not parked */
    int groups;          /* destinations that feed it */
    int pins;            /* pushers appending to its spool outside the lock */
    uint64_t points;     /* memory: points waiting and current */
    double used_at;      /* monotonic, when last pushed to or served */
    void *state;         /* the sender's (lane_free frees it) */
    lane_t *next;        /* in out->lanes, its own lane first */
};

typedef struct output {
    gw_fanout_output_t o;   /* its strings owned */
    int idx;
    pthread_cond_t cv;      /* the sender waits on it */
    lane_t *lanes;          /* owned */
    uint32_t nlanes;
    uint32_t gen;           /* lanes added: a spooled sender looks again */
    lane_t *rr;             /* where the next take starts looking */
    uint64_t points, bytes; /* memory: held, open batches included */
    uint64_t overflowed;
    uint64_t dropped_unlogged;
    double last_drop_log;
    int spooled;
    lane_t **snap;          /* spooled: the sender's copy of the lane list */
    uint32_t snapcap;
} output_t;

typedef struct group {
    uint64_t mask;        /* outputs */
    char *db, *rp;        /* owned; NULL = none */
    int forced;
    uint32_t hash;
    lane_t **mem;         /* owned array: the memory lanes it seals into */
    int nmem;
    lane_t **spl;         /* owned array: the spooled lanes it appends to */
    int nspl;
    fbatch_t *open;       /* shared by the memory lanes */
    uint32_t batch_size;  /* the smallest of its memory outputs' */
    double period;        /* likewise */
    int pins;             /* pushers between two lock sections */
    double used_at;
    struct group *next;   /* hash chain */
} group_t;

struct gw_fanout {
    pthread_mutex_t mu;
    output_t *out;        /* owned */
    int n;
    group_t **buckets;    /* owned */
    uint32_t nbuckets;    /* a power of two */
    uint32_t ngroups;
    fbatch_t *spare;      /* owned */
    int nspare;
    uint64_t seq;
    int closed;
    double last_sweep;
    double group_idle, lane_idle; /* GROUP_IDLE, LANE_IDLE (specs shorten them) */
    double sweep_every;           /* seconds between looks for what to retire */
    void (*lane_free)(void *state);
};


/* The bytes b holds, as counted against buffer_limit_bytes. */
static inline uint64_t batch_bytes(const fbatch_t *b)
{
    return (uint64_t)b->data.len + b->ends.len;
}

/* Defined in fanout.c, used by fanout_take.c too. */
fbatch_t *fanout_batch_new(gw_fanout_t *f, int nlinks);
void fanout_group_free(group_t *g);
void fanout_lane_destroy(gw_fanout_t *f, lane_t *l);
/* Log the points overflow dropped since the last such line: at most every
 * DROP_LOG_EVERY seconds, or now when forced. Under the lock. */
void fanout_log_drops(output_t *out, int force);
/* Keep b for reuse, or free it. Under the lock. */
void fanout_recycle(gw_fanout_t *f, fbatch_t *b);
/* Seal g's open batch: a link in each of its memory lanes. Under the lock. */
void fanout_seal(gw_fanout_t *f, group_t *g);
void fanout_unref(gw_fanout_t *f, fbatch_t *b);

#endif
