/* query.h — GET and POST /query (InfluxDB's 1.x query API) passed through to
 * the output that owns the database named (target.h).
 *
 * Each query runs in a thread of its own with one libcurl transfer, at most
 * GW_QUERY_MAX at a time (more are answered 503). InfluxDB's answer is
 * streamed: its body goes through a ring of GW_QUERY_BUF bytes per query to
 * a libmicrohttpd callback response; when the ring is full the transfer
 * waits (TCP pushes back on InfluxDB), when it is empty the client's
 * connection is suspended until more comes. So a query holds at most
 * GW_QUERY_BUF bytes whatever it returns, and a worker never blocks on it.
 * A query stops when its client goes (also while suspended: the transfer
 * looks at the socket once a second) or when no byte moves for
 * GW_QUERY_STALL_SECONDS.
 *
 * What goes to InfluxDB: the request's parameters (q, db, rp, epoch,
 * chunked, chunk_size, pretty, params...) and, for a POST, its form body,
 * without u and p (luagw's token); the output's own credentials instead.
 * What comes back: the status, the body, Content-Type and InfluxDB's
 * X-Influxdb-Build, X-Influxdb-Error, Request-Id and X-Request-Id headers. */
#ifndef GW_QUERY_H
#define GW_QUERY_H

#include <netinet/in.h> /* before microhttpd.h */
#include <microhttpd.h>
#include <stddef.h>

#include "config.h"
#include "target.h"

#define GW_QUERY_MAX 32              /* queries in progress at most */
#define GW_QUERY_BUF ((size_t)64 << 10) /* bytes of answer held per query */
#define GW_QUERY_STALL_SECONDS 300     /* a query where no byte moves this long is stopped */

typedef struct gw_query gw_query_t;

/* Start the query of connection c (a POST when post, with its body of len
 * bytes; tn: the token it carries, NULL when tokens are not set) on the
 * output target.h picks among outs, and suspend c until InfluxDB's answer
 * begins. 0 with *out set; or an HTTP status (403, 404, 415, 503) with the
 * reason in err. */
int gw_query_start(gw_outputs_t *outs, struct MHD_Connection *c, const gw_tenant_t *tn, int post,
                   const char *body, size_t len, gw_query_t **out, char *err, size_t errlen);

/* Called when c is resumed: the response to queue (its status in *status,
 * its Content-Type in *ctype, borrowed, or NULL); or NULL with *status 0
 * when the answer has not begun (c is suspended again), or with *status
 * 502 and the reason in err when InfluxDB could not be asked. */
struct MHD_Response *gw_query_response(gw_query_t *q, unsigned *status, const char **ctype, char *err,
                                       size_t errlen);

/* The request ended (answered or not): the transfer is stopped, and q is
 * let go of. NULL is a no-op. */
void gw_query_end(gw_query_t *q);

/* Stop every query in progress and wait (a few seconds at most) for their
 * threads: before the HTTP server stops, since a suspended connection must
 * be resumed first. */
void gw_query_stop_all(void);

#endif
