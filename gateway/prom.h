/* prom.h — GET /metrics: the counters of metrics.h, the queue and the
 * scripts in Prometheus text exposition format 0.0.4. */
#ifndef GW_PROM_H
#define GW_PROM_H

#include "output.h"
#include "buf.h"
#include "conns.h"
#include "inflight.h"

/* Append the whole exposition to out. outs (borrowed) gives buffer depth,
 * spool bytes and the per-output families, conns the HTTP server's connections, inflight the memory of
 * its requests in progress; any may be NULL. Returns 0, or -ENOMEM. */
int gw_prom_render(gw_buf_t *out, gw_outputs_t *outs, const gw_conns_stats_t *conns,
                   const gw_inflight_stats_t *inflight);

#endif
