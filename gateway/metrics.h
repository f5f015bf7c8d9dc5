/* metrics.h — process-wide counters, updated lock-free by every thread and
 * read by /health (http_status.c) and /metrics (prom.c); and the counters
 * per series below. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    atomic_uint_fast64_t requests;        /* ingest requests answered */
    atomic_uint_fast64_t points_received; /* points parsed or rejected by parsers */
    atomic_uint_fast64_t points_accepted; /* queued for InfluxDB */
    atomic_uint_fast64_t points_rejected; /* bad input, answered 400 */
    atomic_uint_fast64_t points_refused;  /* whole bodies refused by backpressure */
    atomic_uint_fast64_t points_written;  /* InfluxDB answered 2xx */
    atomic_uint_fast64_t points_dropped;  /* InfluxDB rejected them (400/422/413 alone) */
    atomic_uint_fast64_t points_overflowed; /* dropped by overflow: drop_oldest */
    atomic_uint_fast64_t time_fields_dropped; /* fields named time, dropped as InfluxDB drops them */
    atomic_uint_fast64_t batches_written;
    atomic_uint_fast64_t write_errors;    /* failed attempts, retried */
    atomic_int_fast64_t last_status;      /* InfluxDB's last HTTP status, 0 = none */
    atomic_int_fast64_t healthy;          /* 1 while the last attempt succeeded */
    atomic_int_fast64_t influx_refusing;  /* 401/403/404 while it lasts, else 0 */
} gw_metrics_t;

extern gw_metrics_t gw_metrics;

#define GW_COUNT(name, n) atomic_fetch_add_explicit(&gw_metrics.name, (n), memory_order_relaxed)
#define GW_GET(name) atomic_load_explicit(&gw_metrics.name, memory_order_relaxed)
#define GW_SET(name, v) atomic_store_explicit(&gw_metrics.name, (v), memory_order_relaxed)

/* Per-series counters, for /metrics. A lookup takes no lock: an index of
 * 4096 entries (open addressing on a hash of the name, at most half full)
 * points into a fixed array of slots, and counts are added to the slot
 * with relaxed atomics; callers add once per run of points of a series.
 *
 * Junk names cannot take it over. The series declared in the configuration
 * and those with scripts are pinned at start (and at each reload): their
 * slots are taken up front and never given to another name. Any other name
 * takes a new slot while fewer than GW_SERIES_DYNAMIC of them are in use,
 * else the slot of one that has not been looked up for GW_SERIES_IDLE
 * seconds (renamed, its counters from zero), else it counts under the
 * series "(other)" — as do names longer than GW_SERIES_NAME_MAX. */
#define GW_SERIES_DYNAMIC 1024 /* names that are not pinned, in use at most */
#define GW_SERIES_PINNED 1024  /* pinned names at most */
#define GW_SERIES_IDLE 60.0    /* seconds without a lookup before a slot may be renamed */
#define GW_SERIES_NAME_MAX 111

enum {
    GW_S_RECEIVED = 0, /* points that reached the checks (after scripts) */
    GW_S_ACCEPTED,     /* queued for InfluxDB */
    GW_S_REJECTED,     /* refused with a 400 (declaration, encoding) */
    GW_S_WRITTEN,      /* InfluxDB answered 2xx */
    GW_S_DROPPED,      /* InfluxDB refused them for good */
    GW_S_SCRIPT_NS,    /* script time, nanoseconds (a request's time shared by its points) */
    GW_S_NCOUNTERS
};

/* A slot. Its name may be read without the table's lock by whoever looked
 * it up, for as long as it keeps using the slot (well under
 * GW_SERIES_IDLE). */
typedef struct {
    atomic_uint state;    /* 0 never used; odd: its name is being written; even: in use */
    atomic_uint hash;     /* the high 32 bits of its name's hash (metrics.c) */
    _Atomic uint32_t len;
    atomic_uint used;     /* looked up since the table last looked at it */
    uint32_t pinned;      /* under the table's lock */
    double idle_since;    /* under the table's lock: monotonic, when used was last cleared */
    union {
        char name[GW_SERIES_NAME_MAX + 1];                /* NUL-padded to the end */
        uint64_t name_words[(GW_SERIES_NAME_MAX + 1) / 8]; /* the same, word by word */
    };
    atomic_uint_fast64_t v[GW_S_NCOUNTERS];
} gw_series_slot_t;

/* The slot of series name (n bytes): found, or taken as above. Never NULL. */
gw_series_slot_t *gw_series_slot(const char *name, size_t n);

/* Keep a slot for series name (n bytes) for good: a declared series, or
 * one with scripts. 0, or -1 when GW_SERIES_PINNED names are pinned already
 * or the name is longer than GW_SERIES_NAME_MAX (it is then counted like
 * any other). */
int gw_series_pin(const char *name, size_t n);

/* For specs: the clock the table tells idle slots by (monotonic seconds);
 * NULL restores the real one. */
void gw_series_set_clock(double (*now)(void));

/* Call fn for every slot in use (the "(other)" slot last, if used), under
 * the table's lock: names are stable meanwhile. */
void gw_series_each(void (*fn)(const gw_series_slot_t *slot, void *ud), void *ud);

#define GW_SERIES_ADD(slot, k, n) atomic_fetch_add_explicit(&(slot)->v[k], (n), memory_order_relaxed)

/* A histogram with fixed upper bounds (Prometheus "le"), lock-free. */
#define GW_HIST_MAX 16
typedef struct {
    const double *bounds;  /* borrowed: nbounds ascending upper bounds; +Inf implied */
    int nbounds;
    atomic_uint_fast64_t counts[GW_HIST_MAX]; /* per bucket, not cumulative; [nbounds] = +Inf */
    atomic_uint_fast64_t sum_micro;           /* sum of observations x 1e6 */
} gw_hist_t;

extern gw_hist_t gw_hist_batch_points;  /* points per write request to InfluxDB */
extern gw_hist_t gw_hist_write_seconds; /* duration of one write request */

void gw_hist_observe(gw_hist_t *h, double v);

/* InfluxDB's answers by HTTP status; [0] counts attempts without an answer. */
extern atomic_uint_fast64_t gw_influx_status[600];
void gw_influx_status_count(long status);

#endif
