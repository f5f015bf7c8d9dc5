/* metrics.h — process-wide counters, updated lock-free by every thread and
 * read by /health (and /metrics later). */
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

/* Per-series counters, for /metrics. A fixed table of GW_SERIES_SLOTS slots,
 * open addressing on an FNV-1a hash of the name: a series claims a slot
 * once (compare-and-swap) and from then on every thread finds it without a
 * lock and adds with relaxed atomics. Beyond the table, or for names longer
 * than GW_SERIES_NAME_MAX, points count under the series "(other)". */
#define GW_SERIES_SLOTS 1024
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

typedef struct {
    atomic_uint state; /* 0 free, 1 being claimed, 2 in use */
    uint32_t hash;
    uint32_t len;
    char name[GW_SERIES_NAME_MAX + 1];
    atomic_uint_fast64_t v[GW_S_NCOUNTERS];
} gw_series_slot_t;

/* The slot of series name (n bytes), claimed on first use. Never NULL. */
gw_series_slot_t *gw_series_slot(const char *name, size_t n);

/* Call fn for every slot in use (the "(other)" slot last, if used). */
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
