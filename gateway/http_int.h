/* http_int.h — what the files of the HTTP server share (not an API).
 *
 *   http.c          the server: routes, libmicrohttpd's callbacks, the
 *                   acceptor and its admission of connections, start/stop
 *   http_answer.c   answers: headers every answer carries, JSON error bodies
 *                   (2.x's {"code", "message"} too), 405, 413/503 for memory
 *   http_ingest.c   a body's way in: gzip, precision, the memory it may
 *                   take, this worker's pipeline, the request's dispatch
 *                   (token, database, routes; req for scripts) to the
 *                   outputs; the debug transform, which runs the same
 *                   pipeline traced
 *   http_status.c   /health, /metrics, and /status (status.h)
 *   http_auth.c     listen.tokens: Bearer, Token, Basic, ?p=, ?token=,
 *                   checked against the set in force (dispatch.h)
 * /query is passed through by query.c. */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include <netinet/in.h> /* before microhttpd.h: it needs sockaddr_in */

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "http.h"

#include "buf.h"
#include "conns.h"
#include "dispatch.h"
#include "inflight.h"
#include "jsonw.h"
#include "pipeline.h"
#include "query.h"
#include "utf8.h"

enum route {
    R_NONE = 0,
    R_POINTS,   /* POST /v1/points */
    R_WRITE_V1, /* POST /write */
    R_WRITE_V2, /* POST /api/v2/write */
    R_PING,
    R_HEALTH,
    R_METRICS,  /* GET /metrics: Prometheus */
    R_DEBUG,    /* POST /v1/debug/transform */
    R_READ,     /* /api/v2/query: 404 saying where to query */
    R_QUERY,    /* GET, POST /query: passed through (query.h) */
    R_STATUS,   /* GET /status: the page (status.h) */
    R_STATUS_JSON, /* GET /status.json: what it shows */
};

struct gw_http {
    struct MHD_Daemon **daemons; /* owned: one single-threaded daemon per worker */
    int ndaemons;
    int listen_fd;               /* owned */
    int wake[2];                 /* owned: pipe that stops the acceptor */
    gw_conns_t *conns;           /* owned: who may connect (conns.h) */
    gw_inflight_t *inflight;     /* owned: memory of requests in progress (inflight.h) */
    pthread_t acceptor;
    int acceptor_ok;
    int key_ok;
    const gw_config_t *cfg; /* borrowed */
    gw_outputs_t *outs;     /* borrowed */
    pthread_key_t key;      /* each worker thread's gw_pipeline_t */
    unsigned lp_flags;
    atomic_int draining;    /* set by gw_http_drain: ingest answers 503 */
    atomic_int leaving;     /* set by gw_http_leave: /health answers 503 */
    char *tls_cert;         /* owned: PEM text of listen.tls_cert, NULL = plain HTTP */
    char *tls_key;          /* owned: PEM text of listen.tls_key */
};

/* One request in progress; freed by on_completed. */
typedef struct {
    enum route route;
    gw_buf_t body;    /* owned: the raw body */
    size_t expect;    /* the most the body takes: its Content-Length, else max_body_bytes */
    size_t received;  /* body bytes read so far, kept or not */
    size_t held;      /* bytes held in h->inflight for it: on_completed gives them back */
    int too_large;    /* body grew past max_body_bytes: answer 413 */
    int no_room;      /* GW_INFLIGHT_FULL or _TOO_BIG: the body is read and dropped, answer 503 or 413 */
    int release;      /* its processing was large: give the worker's buffers back at the end */
    gw_access_t *access;       /* owned reference: the routes and tokens it began with */
    const gw_tenant_t *tenant; /* borrowed from access: its token, NULL without one */
    gw_query_t *query; /* owned reference: a /query in progress (query.h) */
} req_t;

/* Client text for a message, made safe to echo and cut to fit buf. */
#define ECHO(buf, s) gw_utf8_echo((buf), sizeof(buf), (s), strlen(s))

/* ------------------------------------------------------------ http.c */

/* The socket context of a connection admitted only for probes (conns.h). */
extern char http_probe_mark;

/* Was c admitted for probes only? */
int http_probe_only(struct MHD_Connection *c);

/* ----------------------------------------------------- http_answer.c */

/* Add the headers of every answer to r, queue it and let go of it. */
enum MHD_Result http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r, const char *ctype);

/* What an answer says when its own JSON cannot be made (out of memory). */
extern const char http_nomem_json[];
extern const size_t http_nomem_json_len;

/* Answer status with a copy of body (len bytes) of type ctype (or none). */
enum MHD_Result http_answer(struct MHD_Connection *c, unsigned status, const char *body, size_t len,
                            const char *ctype);

/* Start an answer's object in b (zeroed here), to be given to
 * http_answer_json. */
void http_json_begin(gw_jsonw_t *w, gw_buf_t *b);

/* Answer status with the object w writes, ended here. error is its "error"
 * member, or NULL: on the 2.x endpoint and the query paths it is also
 * given as {"code", "message"}. */
enum MHD_Result http_answer_json(struct MHD_Connection *c, unsigned status, gw_jsonw_t *w, enum route route,
                                 const char *error);

/* Answer status with {"error": the formatted message}, made safe to echo. */
enum MHD_Result http_answer_error(struct MHD_Connection *c, unsigned status, enum route route, const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));

/* 503 or 413 for a request refused for want of memory (inflight.h). */
enum MHD_Result http_answer_no_room(gw_http_t *h, struct MHD_Connection *c, enum route route, int why,
                                    size_t need);

/* 405, with the methods the path allows. */
enum MHD_Result http_answer_405(struct MHD_Connection *c, enum route route, const char *method, const char *url,
                                const char *allowed);

/* 400 for a body of which some points were refused. */
enum MHD_Result http_answer_result(struct MHD_Connection *c, enum route route, const gw_result_t *res);

/* 404 on /api/v2/query (Flux), naming the InfluxDB to query. */
enum MHD_Result http_answer_read_elsewhere(gw_http_t *h, struct MHD_Connection *c, const char *url);

/* ----------------------------------------------------- http_ingest.c */

/* Is the media type (before any ';' parameters) application/json? */
int http_is_json_type(const char *ct);

/* A worker's pipeline, at its thread's end (pthread key destructor). */
void http_worker_free(void *p);

/* POST /v1/points, /write, /api/v2/write once the body is in. */
enum MHD_Result http_ingest(gw_http_t *h, struct MHD_Connection *c, req_t *r);

/* POST /v1/debug/transform once the body is in. */
enum MHD_Result http_debug_transform(gw_http_t *h, struct MHD_Connection *c, req_t *r);

/* ----------------------------------------------------- http_status.c */

/* GET /health. */
enum MHD_Result http_health(gw_http_t *h, struct MHD_Connection *c);

/* GET /metrics. */
enum MHD_Result http_metrics(gw_http_t *h, struct MHD_Connection *c);

/* GET /status and /status.json. */
enum MHD_Result http_status_page(gw_http_t *h, struct MHD_Connection *c, enum route route);

/* ------------------------------------------------------- http_auth.c */

/* The token of acc the request carries, or NULL. */
const gw_tenant_t *http_authorized(const gw_access_t *acc, struct MHD_Connection *c, enum route route);

/* Does the request carry a token of the set in force (or is there none)? */
int http_let_in(struct MHD_Connection *c, enum route route);

#endif
