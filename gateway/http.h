/* http.h — the HTTP server (libmicrohttpd).
 *
 *   POST /v1/points           JSON points
 *   POST /write               InfluxDB 1.x line protocol (db, rp, precision, u, p)
 *   POST /api/v2/write        InfluxDB 2.x line protocol (org, bucket, precision)
 *   GET  /ping                204, X-Influxdb-Version
 *   GET  /health              200, JSON (503 when something is wrong, or stopping)
 *   GET  /metrics             Prometheus text (prom.c)
 *   POST /v1/debug/transform  what the pipeline makes of a body, point by
 *                             point, as /write would store or refuse it
 *   GET  /status, /status.json  the live status page and its JSON (status.h)
 *   GET, POST /query          InfluxQL, passed through to InfluxDB (query.h)
 *   /api/v2/query             404 naming the InfluxDB to send Flux to
 * One acceptor thread admits each connection (conns.h) and hands it, in
 * turn, to one of listen.threads worker threads, each a single-threaded
 * libmicrohttpd daemon with its own epoll and its own gw_pipeline_t (its
 * Lua state); accepted points go to the outputs' buffer (dispatch.h, fanout.h). What a request
 * holds while it is in progress (its body, inflated, and its processing)
 * is taken from one account first (inflight.h). The files: http_int.h. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stddef.h>

#include "output.h"
#include "config.h"

typedef struct gw_http gw_http_t;

/* Listen on cfg->listen and serve until gw_http_stop. cfg and q are borrowed
 * and must outlive the server. NULL on failure with the reason in err. */
gw_http_t *gw_http_start(const gw_config_t *cfg, gw_outputs_t *outs, char *err, size_t errlen);

/* Take this instance out of its load balancer: from now on /health answers
 * 503 ("draining") while ingest still takes points, until gw_http_drain.
 * NULL is a no-op. */
void gw_http_leave(gw_http_t *h);

/* Stop accepting points: from now on every ingest request is answered 503
 * (nothing of it taken) while /ping and /health still answer, so clients
 * learn to go elsewhere during the final flush. NULL is a no-op. */
void gw_http_drain(gw_http_t *h);

/* Stop listening, finish the requests in progress, free the server. */
void gw_http_stop(gw_http_t *h);

#endif
