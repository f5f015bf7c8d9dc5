/* route.h — routes: which outputs a point goes to (docs/outputs.md).
 *
 *   routes:
 *     - match: {series: [requests], tags: {k: v | [v, ...]}, db: [names], token: [names]}
 *       to: [primary]
 *     - to: [primary, replica]      # no match: every point
 *
 * The first route whose criteria all hold decides; without routes every
 * point goes to every output. Outputs are numbered as the caller lists
 * them, and a route's outputs are a bit mask (at most 64 outputs, 64
 * routes).
 *
 * Compiled once, immutable, shared read-only by the workers. The criteria
 * that are the same for a whole request (token, db) are settled once per
 * request (gw_routes_begin); a point then costs one lookup of its series
 * (the routes it can match, as a mask: the previous point's series is
 * compared first) and, only for routes with tags:, a look at those tags. */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "point.h"

#define GW_ROUTES_MAX 64
#define GW_OUTPUTS_MAX 64

typedef struct gw_routes gw_routes_t;

/* Check the tree of routes: (a sequence; NULL = none) against the outputs
 * (names[0..n)) and the tokens of listen.tokens (the tree; NULL = none).
 * 0 when valid; else -1 with "routes[i]...: what" in msg and *bad the node
 * to point file:line:column at: an unknown output, an empty to: or
 * criterion, an unknown key, a token name no token has, a route that can
 * never match (an earlier route takes every point it could match). When
 * valid but routes has no catch-all, a note for the log goes into warn
 * (else warn is ""; warnlen may be 0). */
int gw_routes_check(const gw_conf_node_t *routes, const char *const *outputs, int noutputs,
                    const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen, char *warn,
                    size_t warnlen);

/* Compile a checked tree for the outputs names[0..n). NULL on ENOMEM.
 * Free with gw_routes_destroy. */
gw_routes_t *gw_routes_create(const gw_conf_node_t *routes, const char *const *outputs, int noutputs);

void gw_routes_destroy(gw_routes_t *r);

/* Routes in r (0: every point goes to every output). */
int gw_routes_count(const gw_routes_t *r);

/* The outputs route i sends to (without routes, i 0: every output). */
uint64_t gw_routes_to(const gw_routes_t *r, int i);

/* A request's view of the routes: filled by gw_routes_begin, then passed
 * to gw_routes_match for each of its points. Plain data, nothing to free;
 * it borrows r and the db given to begin. */
typedef struct {
    uint64_t token_pass; /* routes whose token: the request's token passes */
    uint64_t pass;       /* ...and whose db: the request's database passes */
    gw_str_t db;         /* the request's database; p NULL = none */
    const char *last;    /* the previous point's series, and its routes */
    size_t lastn;
    uint64_t last_routes;
} gw_route_req_t;

/* Start a request: token its token's name (NULL: none, or unnamed), db
 * the database it is for (the one it named, or its token's default; p NULL
 * = none). */
void gw_routes_begin(const gw_routes_t *r, const char *token, gw_str_t db, gw_route_req_t *rq);

/* The outputs point p goes to: those of the first route it matches, or 0
 * when none matches. db: the point's own database when a script set one
 * (else NULL: the request's). *route, when given, is the index of that
 * route (-1 for none; 0 without routes). */
uint64_t gw_routes_match(const gw_routes_t *r, gw_route_req_t *rq, const gw_point_t *p, const gw_str_t *db,
                         int *route);

/* Every output (the mask of n outputs). */
static inline uint64_t gw_routes_all(int n)
{
    return n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
}

#endif
