/* metrics.h — process-wide counters, updated lock-free by every thread and
 * read by /health (and /metrics later). */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
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

#endif
