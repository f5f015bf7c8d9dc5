/* dispatch.c — where the points of a request go; see dispatch.h.
 *
 * Without routes (or with routes that cannot tell the points of a request
 * apart) every line goes to the same outputs: the request's lines are one
 * part of one push, copied nowhere. Otherwise each encoded line gets its
 * outputs (a mask) as it is encoded, and the lines are grouped per mask
 * into parts. */
#include "dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fanout.h"

struct gw_access {
    atomic_int refs;
    gw_routes_t *routes;   /* owned */
    gw_tenants_t *tenants; /* owned */
    int noutputs;
};

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static gw_access_t *current; /* one reference held here */

gw_access_t *gw_access_create(const gw_config_t *cfg, const gw_outputs_t *outs, char *err, size_t errlen)
{
    const char *names[GW_OUTPUTS_MAX];
    const gw_conf_node_t *bad;
    gw_access_t *a;
    int n = gw_outputs_count(outs);

    for (int i = 0; i < n; i++)
        names[i] = gw_outputs_conf(outs, i)->name;
    /* The file was checked against its own outputs: a reload's routes may
     * name one that is not running. */
    if (gw_routes_check(cfg->routes, names, n, cfg->listen.tokens, &bad, err, errlen, NULL, 0))
        return NULL;
    a = calloc(1, sizeof(*a));
    if (!a || !(a->routes = gw_routes_create(cfg->routes, names, n)) ||
        (cfg->listen.tokens && !(a->tenants = gw_tenants_create(cfg->listen.tokens)))) {
        snprintf(err, errlen, "out of memory");
        if (a)
            gw_routes_destroy(a->routes);
        free(a);
        return NULL;
    }
    atomic_init(&a->refs, 1);
    a->noutputs = n;
    return a;
}

void gw_access_release(gw_access_t *a)
{
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    gw_routes_destroy(a->routes);
    gw_tenants_destroy(a->tenants);
    free(a);
}

void gw_access_publish(gw_access_t *a)
{
    gw_access_t *old;

    pthread_mutex_lock(&current_mu);
    old = current;
    current = a;
    pthread_mutex_unlock(&current_mu);
    gw_access_release(old);
}

gw_access_t *gw_access_acquire(void)
{
    gw_access_t *a;

    pthread_mutex_lock(&current_mu);
    a = current;
    if (a)
        atomic_fetch_add(&a->refs, 1);
    pthread_mutex_unlock(&current_mu);
    return a;
}

int gw_access_tokens(const gw_access_t *a)
{
    return a ? gw_tenants_count(a->tenants) : 0;
}

int gw_access_routes(const gw_access_t *a)
{
    return a ? gw_routes_count(a->routes) : 0;
}

const gw_tenant_t *gw_access_find(const gw_access_t *a, const char *tok, size_t n)
{
    return a ? gw_tenants_find(a->tenants, tok, n) : NULL;
}

int gw_access_stuck(const gw_access_t *a, gw_outputs_t *outs)
{
    uint64_t masks[GW_ROUTES_MAX];
    int n = gw_routes_count(a->routes);

    if (!n)
        masks[n++] = gw_routes_to(a->routes, 0);
    else
        for (int i = 0; i < n; i++)
            masks[i] = gw_routes_to(a->routes, i);
    return gw_outputs_stuck(outs, masks, n);
}

/* ------------------------------------------------------------ a request */

static int before(void *ud, gw_point_t *p, uint32_t n, struct gw_arena *arena)
{
    gw_dispatch_t *d = ud;

    return gw_tenant_tag(d->tenant, p, n, arena) ? -ENOMEM : 0;
}

static int place(void *ud, const gw_point_t *p, uint32_t i, char *err, size_t errlen)
{
    gw_dispatch_t *d = ud;
    uint64_t m = gw_routes_match(d->access->routes, &d->rq, p, NULL, NULL);

    if (!m) {
        snprintf(err, errlen, "series \"%.*s\": no route matches this point (routes: without a catch-all)",
                 (int)(p->series.n > 64 ? 64 : p->series.n), p->series.p);
        return 1;
    }
    if (i >= d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 256;
        uint64_t *v;
        while (cap <= i)
            cap *= 2;
        if (!(v = realloc(d->masks, (size_t)cap * sizeof(*v))))
            return -ENOMEM;
        d->masks = v;
        d->cap = cap;
    }
    d->masks[i] = m;
    return 0;
}

static gw_str_t str_of(const char *s)
{
    return s && *s ? (gw_str_t){s, strlen(s)} : (gw_str_t){NULL, 0};
}

int gw_dispatch_begin(gw_dispatch_t *d, const gw_access_t *a, gw_outputs_t *outs, const gw_tenant_t *tn,
                      const char *db, const char *rp, char *err, size_t errlen)
{
    gw_str_t named = str_of(db);

    memset(d, 0, sizeof(*d));
    d->access = a;
    d->outs = outs;
    d->tenant = tn;
    d->rp = str_of(rp);
    if (gw_tenant_database(tn, named, &d->db)) {
        snprintf(err, errlen, "token \"%s\" may not write to database \"%.*s\" (listen.tokens: databases)",
                 tn->name ? tn->name : "(unnamed)", (int)(named.n > 200 ? 200 : named.n), named.p);
        return -1;
    }
    gw_routes_begin(a->routes, tn ? tn->name : NULL, d->db, &d->rq);
    d->hooks.ud = d;
    d->hooks.before = tn && tn->ntags ? before : NULL;
    d->hooks.place = gw_routes_count(a->routes) ? place : NULL;
    return 0;
}

/* Parts of the lines whose mask is m, copied into *buf and *ends. */
static int gather(const gw_dispatch_t *d, uint64_t m, const char *lines, const uint32_t *ends, uint32_t npoints,
                  gw_buf_t *buf, gw_buf_t *bends, gw_fanout_part_t *part)
{
    for (uint32_t i = 0; i < npoints; i++) {
        uint32_t from = i ? ends[i - 1] : 0, end;
        if (d->masks[i] != m)
            continue;
        if (gw_buf_append(buf, lines + from, ends[i] - from))
            return -ENOMEM;
        end = (uint32_t)buf->len;
        if (gw_buf_append(bends, &end, sizeof(end)))
            return -ENOMEM;
    }
    part->lines = buf->data;
    part->len = buf->len;
    part->ends = (const uint32_t *)(void *)bends->data;
    part->npoints = (uint32_t)(bends->len / sizeof(uint32_t));
    return 0;
}

int gw_dispatch_push(gw_dispatch_t *d, const char *lines, size_t len, const uint32_t *ends, uint32_t npoints)
{
    gw_fanout_part_t parts[GW_ROUTES_MAX + 1];
    gw_buf_t bufs[GW_ROUTES_MAX + 1][2];
    uint64_t masks[GW_ROUTES_MAX + 1];
    int nparts = 0, rc = 0;
    gw_fanout_dest_t dest = {.db = d->db, .rp = d->rp};

    if (!npoints)
        return 0;
    /* The masks a request's lines have: few distinct ones (one per route). */
    for (uint32_t i = 0; i < npoints && d->hooks.place; i++) {
        int k = 0;
        while (k < nparts && masks[k] != d->masks[i])
            k++;
        if (k == nparts)
            masks[nparts++] = d->masks[i];
    }
    if (nparts <= 1) {
        dest.outputs = nparts ? masks[0] : gw_routes_to(d->access->routes, 0);
        parts[0] = (gw_fanout_part_t){.dest = dest, .lines = lines, .len = len, .ends = ends, .npoints = npoints};
        return gw_fanout_push(gw_outputs_fanout(d->outs), parts, 1, &d->full);
    }
    memset(bufs, 0, sizeof(bufs));
    for (int k = 0; k < nparts && !rc; k++) {
        parts[k].dest = dest;
        parts[k].dest.outputs = masks[k];
        rc = gather(d, masks[k], lines, ends, npoints, &bufs[k][0], &bufs[k][1], &parts[k]);
    }
    if (!rc)
        rc = gw_fanout_push(gw_outputs_fanout(d->outs), parts, nparts, &d->full);
    for (int k = 0; k < nparts; k++) {
        gw_buf_free(&bufs[k][0]);
        gw_buf_free(&bufs[k][1]);
    }
    return rc;
}

/* "output a (...), output b (...)": what was full, and its limits. */
static void put_full(const gw_dispatch_t *d, int too_big, gw_buf_t *b)
{
    int single = gw_outputs_count(d->outs) == 1 && !strcmp(gw_outputs_conf(d->outs, 0)->name, "monitoring");
    size_t start = b->len;

    for (int i = 0; i < gw_outputs_count(d->outs); i++) {
        const gw_outconf_t *c = gw_outputs_conf(d->outs, i);
        const gw_config_t *cfg = c->cfg;
        if (!(d->full >> i & 1))
            continue;
        if (b->len > start)
            gw_buf_printf(b, "; ");
        if (*cfg->spool.dir)
            gw_buf_printf(b, "%s%s%s (spool.max_bytes = %zu)", too_big ? "larger than " : "spool full or unwritable",
                          single ? "" : " on output ", single ? "" : c->name, cfg->spool.max_bytes);
        else
            gw_buf_printf(b, "%s%s%s (%s.buffer_limit = %u points, buffer_limit_bytes = %zu)",
                          too_big ? "more than " : "buffer full", single ? "" : " on output ", single ? "" : c->name,
                          single ? "monitoring" : "outputs.<name>", cfg->monitoring.buffer_limit,
                          cfg->monitoring.buffer_limit_bytes);
    }
}

unsigned gw_dispatch_refusal(const gw_dispatch_t *d, int rc, uint32_t npoints, size_t nbytes, gw_buf_t *msg)
{
    unsigned status = 503;

    msg->len = 0;
    if (rc == GW_FANOUT_CLOSED) {
        gw_buf_printf(msg, "shutting down: nothing of this body was accepted");
    } else if (rc == GW_FANOUT_TOO_BIG) {
        status = 413;
        gw_buf_printf(msg, "body: %u points of %zu bytes, ", npoints, nbytes);
        put_full(d, 1, msg);
        gw_buf_printf(msg, " can ever hold");
    } else if (rc == GW_FANOUT_LANES) {
        gw_buf_printf(msg, "too many databases in use (max_databases) on output");
        for (int i = 0; i < gw_outputs_count(d->outs); i++)
            if (d->full >> i & 1)
                gw_buf_printf(msg, " %s", gw_outputs_conf(d->outs, i)->name);
        gw_buf_printf(msg, ": nothing of this body was accepted, retry later");
    } else if (rc == GW_FANOUT_FULL) {
        put_full(d, 0, msg);
        gw_buf_printf(msg, ": nothing of this body was accepted, retry later");
    } else {
        status = 500;
        gw_buf_printf(msg, "out of memory while queueing");
    }
    gw_buf_putc(msg, '\0');
    return status;
}

void gw_dispatch_put_full(const gw_dispatch_t *d, int rc, gw_jsonw_t *w)
{
    gw_jsonw_key(w, "outputs_full");
    gw_jsonw_begin_array(w);
    if (rc == GW_FANOUT_TOO_BIG || rc == GW_FANOUT_LANES || rc == GW_FANOUT_FULL)
        for (int i = 0; i < gw_outputs_count(d->outs); i++)
            if (d->full >> i & 1)
                gw_jsonw_string(w, gw_outputs_conf(d->outs, i)->name);
    gw_jsonw_end(w);
}

void gw_dispatch_end(gw_dispatch_t *d)
{
    free(d->masks);
    d->masks = NULL;
    d->cap = 0;
}
