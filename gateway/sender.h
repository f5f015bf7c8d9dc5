/* sender.h — the delivery of one batch (output.c runs it for each output's
 * sealed batches): it writes the batch to InfluxDB, deciding per answer
 * what happens (see the answer table in sender.c and docs/delivery.md):
 * delivered; split and resent (413); the refused points isolated and
 * dead-lettered (400/422); or, for a failure (5xx, no answer, an unreadable
 * answer, 401/403/404/429/503), a probe asks whether InfluxDB takes other
 * writes: if not, it is down and the points are kept and retried with
 * backoff; if so, the points that fail alone are isolated and
 * dead-lettered as poison. */
#ifndef GW_SENDER_H
#define GW_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "influx.h"

/* What the sender does with an answer (the rows of the answer table). */
typedef enum {
    GW_ACT_DELIVERED = 0, /* 2xx: stored */
    GW_ACT_PARTIAL,       /* 400/422 "partial write ... dropped=N": the rest is stored */
    GW_ACT_REJECTED,      /* other 400/422: some points are bad, which ones unknown */
    GW_ACT_TOO_LARGE,     /* 413: split in halves */
    GW_ACT_REFUSED,       /* 401/403/404: configuration; keep, retry at retry_max */
    GW_ACT_THROTTLED,     /* 429/503: keep, wait Retry-After (capped) */
    GW_ACT_RETRY,         /* 5xx, no answer, anything else: keep, back off */
    GW_ACT_UNREADABLE,    /* an answer that could not be read (never from the status alone) */
} gw_action_t;

/* Classify InfluxDB's answer (status 0 = none; error its message). For
 * GW_ACT_PARTIAL *dropped is the N it reported, else -1. */
gw_action_t gw_delivery_classify(long status, const char *error, long *dropped);

/* Longest line kept as the probe (see gw_delivery_t.probe). */
#define GW_PROBE_MAX 512

/* One output's delivery state, apart from the thread and the HTTP client
 * so that specs can drive it with a fake InfluxDB through the FFI. Plain
 * data: zero it, set the callbacks and retry_max; nothing to free. */
typedef struct gw_delivery {
    /* POST body; fill ans; return as gw_influx_write does. */
    int (*write)(void *ud, const char *body, size_t len, gw_influx_answer_t *ans);
    /* Wait secs before the next try; return 1 to give the batch up (stop). */
    int (*sleep)(void *ud, double secs);
    /* Points [from, to) of the batch were given up; reason a gw_dl_reason_t. */
    void (*reject)(void *ud, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to,
                   long status, int reason, const char *why);
    /* NULL, or called before the batch's lines are first rewritten (the
     * bytes are shared): set *data and *ends to a private copy; 0, or -1
     * (not rewritten then: halves instead). */
    int (*own)(void *ud, char **data, uint32_t **ends);
    void *ud;               /* borrowed: passed to the callbacks */
    double retry_max;       /* seconds: cap of every wait */
    unsigned seed;          /* jitter */
    size_t byte_cap;        /* learned from 413s: bodies larger than this are split first; 0 = none */
    double slow;            /* seconds: a failed write this slow (a timeout) cuts its range 16 ways; 0 = never */
    uint64_t requests;      /* counters since creation: writes of points */
    uint64_t delivered;
    uint64_t rejected;
    uint64_t probes;        /* probe writes */
    uint32_t probe_len;     /* bytes in probe */
    int no_series;          /* 1: leave the per-series written/dropped counts to another output */
    /* A line InfluxDB stored, sent again to ask whether it takes writes (the
     * point overwrites itself); empty before the first, then the probe is
     * an empty write. */
    char probe[GW_PROBE_MAX];
} gw_delivery_t;

/* Deliver the n points of a batch (data; ends[i] the offset just past point
 * i). Every point ends up stored (a 2xx covered it) or given up (reject()
 * got it, alone or in a range InfluxDB refused whole). The lines of the
 * batch may be reordered in place (data and ends rewritten) when InfluxDB
 * names the ones it refuses. Returns 0 when done, 1 when sleep() gave up
 * first; *done is the points dealt with either way. */
int gw_delivery_run(gw_delivery_t *d, char *data, uint32_t *ends, uint32_t n, uint32_t *done);

/* The most requests spent looking for refused points of one batch of n
 * before partial writes are taken as InfluxDB counted them (docs/delivery.md,
 * "Bounds"). */
uint32_t gw_delivery_budget(uint32_t n);

#endif
