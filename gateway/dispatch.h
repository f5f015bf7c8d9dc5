/* dispatch.h — where the points of a request go (docs/outputs.md): who
 * wrote them (its token, listen.tokens), which database (the one the write
 * named, or its token's default), which outputs (routes:), handed to the
 * outputs' buffer (fanout.h) in one push.
 *
 * The routes and tokens in force are one immutable *access* set, published
 * and swapped whole by a reload (SIGHUP); a request holds a reference to
 * the set it began with until it ends, so a reload never changes a request
 * half-way. */
#ifndef GW_DISPATCH_H
#define GW_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jsonw.h"
#include "output.h"
#include "pipeline.h"
#include "route.h"
#include "tenant.h"

typedef struct gw_access gw_access_t;

/* Compile cfg's routes: (against the running outputs' names) and
 * listen.tokens. NULL with the reason in err (a route naming an output
 * that is not running, or out of memory). */
gw_access_t *gw_access_create(const gw_config_t *cfg, const gw_outputs_t *outs, char *err, size_t errlen);

/* Put a (consumed) in force; the set it replaces goes once the last request
 * holding it ends. NULL: none (at shutdown). */
void gw_access_publish(gw_access_t *a);

/* The set in force, with a reference (NULL when none is published);
 * release it with gw_access_release. */
gw_access_t *gw_access_acquire(void);
void gw_access_release(gw_access_t *a);

/* Tokens in the set (0: requests need none). */
int gw_access_tokens(const gw_access_t *a);

/* Routes in the set (0: every point to every output). */
int gw_access_routes(const gw_access_t *a);

/* The token tok (n bytes) is, or NULL for none of them. */
const gw_tenant_t *gw_access_find(const gw_access_t *a, const char *tok, size_t n);

/* Is some route left without an output able to take points (/health)? */
int gw_access_stuck(const gw_access_t *a, gw_outputs_t *outs);

/* One request's dispatch: begin, run the pipeline with its hooks, push,
 * end. */
typedef struct {
    const gw_access_t *access;  /* borrowed */
    gw_outputs_t *outs;         /* borrowed */
    const gw_tenant_t *tenant;  /* borrowed; NULL without one */
    gw_str_t db, rp;            /* where the points go; p NULL: each output's own */
    gw_route_req_t rq;
    uint64_t *masks;            /* owned: each encoded line's outputs, when routes may differ */
    uint32_t cap;
    uint64_t full;              /* after a refused push: the outputs that had no room */
    gw_ingest_hooks_t hooks;    /* for gw_ingest_t.hooks */
} gw_dispatch_t;

/* Begin a request by tenant tn (NULL: none) naming database db and
 * retention policy rp (NULL or "": none). 0; or -1 when tn may not write
 * to db (answer 403 with err). */
int gw_dispatch_begin(gw_dispatch_t *d, const gw_access_t *a, gw_outputs_t *outs, const gw_tenant_t *tn,
                      const char *db, const char *rp, char *err, size_t errlen);

/* Hand the encoded lines of the request (gw_pipeline_output) to the
 * buffer, all or nothing. 0; GW_FANOUT_FULL, _TOO_BIG, _LANES or _CLOSED
 * (nothing taken; d->full names the outputs); -ENOMEM. */
int gw_dispatch_push(gw_dispatch_t *d, const char *lines, size_t len, const uint32_t *ends, uint32_t npoints);

/* The answer to a refused push (rc from gw_dispatch_push): its message
 * into msg (reset here, NUL-terminated); returns the status (503, 413 or
 * 500). */
unsigned gw_dispatch_refusal(const gw_dispatch_t *d, int rc, uint32_t npoints, size_t nbytes, gw_buf_t *msg);

/* Its member "outputs_full": [the names of the outputs that had no room],
 * written to the open object w. */
void gw_dispatch_put_full(const gw_dispatch_t *d, int rc, gw_jsonw_t *w);

/* Free what the request's dispatch holds. */
void gw_dispatch_end(gw_dispatch_t *d);

#endif
