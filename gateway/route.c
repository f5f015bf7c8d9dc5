/* route.c — routes: checked, compiled, matched; see route.h.
 *
 * Compiled form: one route_t per route, its criteria as lists of names,
 * and bit masks over the routes: those without a series: criterion (they
 * may match any series), those without db:, without token:. The series
 * named anywhere are one open-addressing table, each with the mask of the
 * routes that may match it (those naming it, and those naming none). A
 * point's candidates are that mask ANDed with what the request passes;
 * the first candidate without tags: is the answer, one with tags: is
 * checked against the point's tags first. */
#include "route.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conftree.h"
#include "tenant.h"

typedef struct {
    gw_str_t key;   /* owned */
    gw_str_t *vals; /* owned */
    uint32_t nvals;
} tagcrit_t;

typedef struct {
    gw_str_t *v; /* owned */
    uint32_t n;  /* 0: no such criterion */
} names_t;

typedef struct {
    uint64_t to;
    names_t series, db, token;
    tagcrit_t *tags; /* owned */
    uint32_t ntags;
} route_t;

typedef struct {
    gw_str_t name; /* borrowed from a route */
    uint32_t hash;
    uint64_t routes;
} slot_t;

struct gw_routes {
    route_t *r;          /* owned */
    uint32_t n;
    uint64_t all;        /* every output: the answer without routes */
    uint64_t any_series; /* routes without series: */
    uint64_t any_db;     /* without db: */
    uint64_t any_token;  /* without token: */
    uint64_t with_tags;
    slot_t *slots;       /* owned: a power of two, at most half full */
    uint32_t mask;
};

static const char *const route_keys[] = {"match", "to", NULL};
static const char *const match_keys[] = {"series", "tags", "db", "token", NULL};

static uint32_t hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int in(const names_t *l, gw_str_t s)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (gw_str_eq(l->v[i], s))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Compiling                                                                 */

static int dup_str(gw_str_t *d, const char *s)
{
    char *c = strdup(s);
    *d = (gw_str_t){c, c ? strlen(c) : 0};
    return c ? 0 : -1;
}

static int names(names_t *l, const gw_conf_node_t *n)
{
    if (!n)
        return 0;
    if (!(l->v = calloc(n->kind == GW_CONF_SCALAR ? 1 : gw_conf_count(n), sizeof(*l->v))))
        return -1;
    GW_CONF_EACH_NAME(n, it) {
        if (dup_str(&l->v[l->n], it->value))
            return -1;
        l->n++;
    }
    return 0;
}

static int compile_route(route_t *rt, const gw_conf_node_t *item, const char *const *outputs, int noutputs)
{
    const gw_conf_node_t *m = gw_conf_child(item, "match"), *to = gw_conf_child(item, "to"), *tags;

    if (to)
        GW_CONF_EACH_NAME(to, it)
            for (int o = 0; o < noutputs; o++)
                if (strcmp(outputs[o], it->value) == 0)
                    rt->to |= (uint64_t)1 << o;
    if (!m || m->kind != GW_CONF_MAP)
        return 0;
    if (names(&rt->series, gw_conf_child(m, "series")) || names(&rt->db, gw_conf_child(m, "db")) ||
        names(&rt->token, gw_conf_child(m, "token")))
        return -1;
    if (!(tags = gw_conf_child(m, "tags")) || tags->kind != GW_CONF_MAP)
        return 0;
    if (!(rt->tags = calloc(gw_conf_count(tags), sizeof(*rt->tags))))
        return -1;
    for (const gw_conf_node_t *c = tags->child; c; c = c->next) {
        tagcrit_t *tc = &rt->tags[rt->ntags++];
        names_t vals = {0};
        int rc = names(&vals, c);
        tc->vals = vals.v;
        tc->nvals = vals.n;
        if (rc || dup_str(&tc->key, c->key))
            return -1;
    }
    return 0;
}

/* The series table: every name of a series: criterion, with the routes
 * that may match it. */
static int build_table(gw_routes_t *r)
{
    uint32_t names = 0, cap = 8;

    for (uint32_t i = 0; i < r->n; i++)
        names += r->r[i].series.n;
    while (cap < 2 * names)
        cap *= 2;
    if (!(r->slots = calloc(cap, sizeof(*r->slots))))
        return -1;
    r->mask = cap - 1;
    for (uint32_t i = 0; i < r->n; i++)
        for (uint32_t k = 0; k < r->r[i].series.n; k++) {
            gw_str_t s = r->r[i].series.v[k];
            uint32_t h = hash(s.p, s.n), j = h & r->mask;
            while (r->slots[j].name.p && !gw_str_eq(r->slots[j].name, s))
                j = (j + 1) & r->mask;
            if (!r->slots[j].name.p)
                r->slots[j] = (slot_t){s, h, r->any_series};
            r->slots[j].routes |= (uint64_t)1 << i;
        }
    return 0;
}

gw_routes_t *gw_routes_create(const gw_conf_node_t *routes, const char *const *outputs, int noutputs)
{
    gw_routes_t *r = calloc(1, sizeof(*r));
    unsigned n = routes && routes->kind == GW_CONF_SEQ ? gw_conf_count(routes) : 0;

    if (!r || (n && !(r->r = calloc(n, sizeof(*r->r)))))
        goto fail;
    r->all = gw_routes_all(noutputs);
    for (const gw_conf_node_t *c = n ? routes->child : NULL; c; c = c->next) {
        route_t *rt = &r->r[r->n];
        uint64_t bit = (uint64_t)1 << r->n++;
        if (compile_route(rt, c, outputs, noutputs))
            goto fail;
        r->any_series |= rt->series.n ? 0 : bit;
        r->any_db |= rt->db.n ? 0 : bit;
        r->any_token |= rt->token.n ? 0 : bit;
        r->with_tags |= rt->ntags ? bit : 0;
    }
    if (build_table(r))
        goto fail;
    return r;

fail:
    gw_routes_destroy(r);
    return NULL;
}

static void free_names(names_t *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        free((char *)l->v[i].p);
    free(l->v);
}

void gw_routes_destroy(gw_routes_t *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        route_t *rt = &r->r[i];
        free_names(&rt->series);
        free_names(&rt->db);
        free_names(&rt->token);
        for (uint32_t k = 0; k < rt->ntags; k++) {
            names_t vals = {rt->tags[k].vals, rt->tags[k].nvals};
            free((char *)rt->tags[k].key.p);
            free_names(&vals);
        }
        free(rt->tags);
    }
    free(r->r);
    free(r->slots);
    free(r);
}

int gw_routes_count(const gw_routes_t *r)
{
    return r ? (int)r->n : 0;
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                  */

/* Routes whose db: criterion passes a point of database db. */
static uint64_t db_pass(const gw_routes_t *r, gw_str_t db)
{
    uint64_t m = r->any_db;

    for (uint32_t i = 0; db.p && i < r->n; i++)
        if (r->r[i].db.n && in(&r->r[i].db, db))
            m |= (uint64_t)1 << i;
    return m;
}

void gw_routes_begin(const gw_routes_t *r, const char *token, gw_str_t db, gw_route_req_t *rq)
{
    gw_str_t tok = {token, token ? strlen(token) : 0};

    memset(rq, 0, sizeof(*rq));
    rq->db = db;
    if (!r || !r->n)
        return;
    rq->token_pass = r->any_token;
    for (uint32_t i = 0; token && i < r->n; i++)
        if (r->r[i].token.n && in(&r->r[i].token, tok))
            rq->token_pass |= (uint64_t)1 << i;
    rq->pass = rq->token_pass & db_pass(r, db);
}

/* The routes that may match series s: one table lookup. */
static uint64_t series_routes(const gw_routes_t *r, gw_str_t s)
{
    uint32_t h = hash(s.p, s.n);

    for (uint32_t j = h & r->mask;; j = (j + 1) & r->mask) {
        const slot_t *sl = &r->slots[j];
        if (!sl->name.p)
            return r->any_series;
        if (sl->hash == h && gw_str_eq(sl->name, s))
            return sl->routes;
    }
}

/* Does p have, for each tag of rt's criterion, one of its values? */
static int tags_match(const route_t *rt, const gw_point_t *p)
{
    for (uint32_t k = 0; k < rt->ntags; k++) {
        const tagcrit_t *tc = &rt->tags[k];
        int t = gw_point_find_tag(p, tc->key), ok = 0;
        if (t < 0 || !p->tags[t].val.n)
            return 0; /* an empty value is no tag, as in InfluxDB */
        for (uint32_t v = 0; v < tc->nvals && !ok; v++)
            ok = gw_str_eq(tc->vals[v], p->tags[t].val);
        if (!ok)
            return 0;
    }
    return 1;
}

uint64_t gw_routes_to(const gw_routes_t *r, int i)
{
    return r->n ? r->r[i].to : r->all;
}

uint64_t gw_routes_match(const gw_routes_t *r, gw_route_req_t *rq, const gw_point_t *p, const gw_str_t *db,
                         int *route)
{
    uint64_t cand;

    if (route)
        *route = 0;
    if (!r->n)
        return r->all;
    if (!rq->last || rq->lastn != p->series.n || memcmp(rq->last, p->series.p, p->series.n)) {
        rq->last = p->series.p;
        rq->lastn = p->series.n;
        rq->last_routes = series_routes(r, p->series);
    }
    cand = rq->last_routes & (db ? rq->token_pass & db_pass(r, *db) : rq->pass);
    while (cand) {
        int i = __builtin_ctzll(cand);
        if (!(r->with_tags >> i & 1) || tags_match(&r->r[i], p)) {
            if (route)
                *route = i;
            return r->r[i].to;
        }
        cand &= cand - 1;
    }
    if (route)
        *route = -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checking the tree                                                         */

/* Is every name of a (a criterion of a later route) among those of b (an
 * earlier route's)? A missing criterion in b takes everything. */
static int within(const names_t *a, const names_t *b)
{
    if (!b->n)
        return 1;
    if (!a->n)
        return 0;
    for (uint32_t i = 0; i < a->n; i++)
        if (!in(b, a->v[i]))
            return 0;
    return 1;
}

static const tagcrit_t *tag_of(const route_t *rt, gw_str_t key)
{
    for (uint32_t k = 0; k < rt->ntags; k++)
        if (gw_str_eq(rt->tags[k].key, key))
            return &rt->tags[k];
    return NULL;
}

/* Does the earlier route e take every point the later route l could
 * match? Then l can never match. */
static int covers(const route_t *e, const route_t *l)
{
    if (!within(&l->series, &e->series) || !within(&l->db, &e->db) || !within(&l->token, &e->token))
        return 0;
    for (uint32_t k = 0; k < e->ntags; k++) {
        const tagcrit_t *lt = tag_of(l, e->tags[k].key);
        names_t a, b = {e->tags[k].vals, e->tags[k].nvals};
        if (!lt)
            return 0;
        a = (names_t){lt->vals, lt->nvals};
        if (!within(&a, &b))
            return 0;
    }
    return 1;
}

/* The tags: criterion: a mapping of keys to a value or a list of them. */
static int check_tags(const gw_conf_node_t *t, const char *path, const gw_conf_node_t **bad, char *msg,
                      size_t msglen)
{
    char sub[160];

    if (t->kind != GW_CONF_MAP || !t->child)
        return gw_conf_fail(bad, t, msg, msglen, "%s.tags: must be a mapping of tag keys to a value or a list of values",
                            path);
    for (const gw_conf_node_t *c = t->child; c; c = c->next) {
        snprintf(sub, sizeof(sub), "%s.tags.%s", path, c->key);
        if (!*c->key)
            return gw_conf_fail(bad, c, msg, msglen, "%s.tags: a tag key must not be empty", path);
        if (gw_conf_check_names(c, sub, bad, msg, msglen))
            return -1;
    }
    return 0;
}

static int check_match(const gw_conf_node_t *m, const char *path, const gw_conf_node_t *tokens,
                       const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    const gw_conf_node_t *tok;
    char sub[160];

    if (gw_conf_empty(m))
        return 0; /* "match:" alone: no criterion */
    if (m->kind != GW_CONF_MAP)
        return gw_conf_fail(bad, m, msg, msglen, "%s: must be a mapping of series, tags, db, token", path);
    if (gw_conf_known_keys(m, match_keys, path, bad, msg, msglen))
        return -1;
    for (const gw_conf_node_t *c = m->child; c; c = c->next) {
        snprintf(sub, sizeof(sub), "%s.%s", path, c->key);
        if (strcmp(c->key, "tags") == 0 ? check_tags(c, path, bad, msg, msglen)
                                        : gw_conf_check_names(c, sub, bad, msg, msglen))
            return -1;
    }
    if ((tok = gw_conf_child(m, "token")) && !tokens)
        return gw_conf_fail(bad, tok, msg, msglen, "%s.token: can never match: listen.tokens is not set", path);
    if (tok)
        GW_CONF_EACH_NAME(tok, it)
            if (!gw_tenants_tree_has(tokens, it->value))
                return gw_conf_fail(bad, it, msg, msglen, "%s.token: no token of listen.tokens is named \"%s\"", path,
                                    it->value);
    return 0;
}

static int check_to(const gw_conf_node_t *to, const char *path, const char *const *outputs, int noutputs,
                    const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    char sub[160];

    snprintf(sub, sizeof(sub), "%s.to", path);
    if (!to)
        return -2; /* reported by the caller, at the route */
    if (gw_conf_check_names(to, sub, bad, msg, msglen))
        return -1;
    GW_CONF_EACH_NAME(to, it) {
        int known = 0;
        for (int o = 0; o < noutputs; o++)
            known |= strcmp(outputs[o], it->value) == 0;
        if (!known)
            return gw_conf_fail(bad, it, msg, msglen, "%s: no output is named \"%s\"", sub, it->value);
        GW_CONF_EACH_NAME(to, prev) {
            if (prev == it)
                break;
            if (strcmp(prev->value, it->value) == 0)
                return gw_conf_fail(bad, it, msg, msglen, "%s: output \"%s\" is named twice", sub, it->value);
        }
    }
    return 0;
}

/* Each route on its own: its keys, criteria and outputs. */
static int check_items(const gw_conf_node_t *routes, const char *const *outputs, int noutputs,
                       const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    unsigned i = 0;
    char path[48], sub[64];

    for (const gw_conf_node_t *c = routes->child; c; c = c->next, i++) {
        int rc;
        snprintf(path, sizeof(path), "routes[%u]", i);
        snprintf(sub, sizeof(sub), "%s.match", path);
        if (c->kind != GW_CONF_MAP)
            return gw_conf_fail(bad, c, msg, msglen, "%s: must be a mapping with to: (and match:)", path);
        if (gw_conf_known_keys(c, route_keys, path, bad, msg, msglen))
            return -1;
        if (gw_conf_child(c, "match") && check_match(gw_conf_child(c, "match"), sub, tokens, bad, msg, msglen))
            return -1;
        rc = check_to(gw_conf_child(c, "to"), path, outputs, noutputs, bad, msg, msglen);
        if (rc == -2)
            return gw_conf_fail(bad, c, msg, msglen, "%s.to: missing: a route names the outputs it sends to", path);
        if (rc)
            return -1;
    }
    return 0;
}

/* A route no point can reach: an earlier one takes all it could match. */
static int check_reachable(const gw_conf_node_t *routes, const char *const *outputs, int noutputs,
                           const gw_conf_node_t **bad, char *msg, size_t msglen, int *catchall)
{
    gw_routes_t *r = gw_routes_create(routes, outputs, noutputs);
    const gw_conf_node_t *c = routes->child;
    int rc = 0;

    if (!r)
        return gw_conf_fail(bad, routes, msg, msglen, "routes: out of memory");
    *catchall = 0;
    for (uint32_t l = 0; l < r->n && !rc; l++, c = c->next) {
        const route_t *rt = &r->r[l];
        const gw_conf_node_t *ec = routes->child;
        *catchall |= !rt->series.n && !rt->db.n && !rt->token.n && !rt->ntags;
        for (uint32_t e = 0; e < l && !rc; e++, ec = ec->next)
            if (covers(&r->r[e], rt))
                rc = gw_conf_fail(bad, c, msg, msglen,
                                  "routes[%u]: can never match: routes[%u] (line %zu) takes every point it could match",
                                  l, e, ec->line);
    }
    gw_routes_destroy(r);
    return rc;
}

int gw_routes_check(const gw_conf_node_t *routes, const char *const *outputs, int noutputs,
                    const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen, char *warn,
                    size_t warnlen)
{
    int catchall = 1;

    if (warnlen)
        warn[0] = '\0';
    if (!routes || gw_conf_empty(routes))
        return 0;
    if (routes->kind != GW_CONF_SEQ)
        return gw_conf_fail(bad, routes, msg, msglen, "routes: must be a list of routes (- match: ..., to: [...])");
    if (gw_conf_count(routes) > GW_ROUTES_MAX)
        return gw_conf_fail(bad, routes, msg, msglen, "routes: at most %d routes", GW_ROUTES_MAX);
    if (check_items(routes, outputs, noutputs, tokens, bad, msg, msglen) ||
        check_reachable(routes, outputs, noutputs, bad, msg, msglen, &catchall))
        return -1;
    if (!catchall && warnlen && routes->child)
        snprintf(warn, warnlen,
                 "no route matches every point: a point no route matches is refused (400); end routes: with a "
                 "route without match: to send it somewhere");
    return 0;
}
