/* conns.c — which client connections the HTTP server takes, see conns.h. */
#include "conns.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>

/* A client: an IPv4 address, or the /64 of an IPv6 address (one host
 * usually has a whole /64, so counting its addresses apart would let it
 * open as many connections as it likes). k1 keeps the two kinds apart. */
typedef struct {
    uint64_t k0, k1;
} client_key_t;

typedef struct {
    client_key_t key;
    uint32_t n; /* its open connections; 0 = an empty slot */
} client_t;

enum { REC_FREE = 0, REC_HANDED, REC_STARTED };

/* A record's kind besides GW_CONN_SERVE and GW_CONN_PROBE: a probe-only
 * connection shut down to make room, which libmicrohttpd is closing. */
enum { KIND_CLOSING = 8 };

/* One socket's record. */
typedef struct {
    uint8_t state; /* REC_* */
    uint8_t kind;  /* GW_CONN_SERVE, GW_CONN_PROBE or KIND_CLOSING */
    client_key_t key;
} rec_t;

/* A probe-only connection; fd -1 = a free place. */
typedef struct {
    int fd;
    int begun;       /* it has sent a whole request head */
    double deadline; /* monotonic: shut down then */
} probe_t;

struct gw_conns {
    pthread_mutex_t lock;
    gw_conns_limits_t lim;
    rec_t *recs;       /* owned: [lim.max_fd], by socket */
    client_t *clients; /* owned: [mask + 1], open addressing; NULL without per_client */
    uint32_t mask;
    uint64_t seed;     /* of the client hash: addresses are chosen by clients */
    probe_t *probes;   /* owned: [lim.probes] */
    int nserve, nprobe;
    int nclosing;      /* KIND_CLOSING records, at most CLOSING_MAX */
    gw_conns_stats_t st;
};

/* ------------------------------------------------------------------ clients */

static client_key_t key_of(const struct sockaddr *addr)
{
    client_key_t k = {0, 0};

    if (addr->sa_family == AF_INET) {
        k.k1 = (uint64_t)1 << 32 | ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
    } else if (addr->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
            k.k1 = (uint64_t)1 << 32 | (uint64_t)a[12] << 24 | (uint64_t)a[13] << 16 | (uint64_t)a[14] << 8 | a[15];
        } else {
            for (int i = 0; i < 8; i++)
                k.k0 = k.k0 << 8 | a[i];
            k.k1 = (uint64_t)2 << 32;
        }
    }
    return k;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint32_t home_of(const gw_conns_t *cs, client_key_t k)
{
    return (uint32_t)mix(mix(k.k0 ^ cs->seed) ^ k.k1) & cs->mask;
}

/* The slot of k: where it is, or the empty slot where it would go. */
static client_t *client_slot(gw_conns_t *cs, client_key_t k)
{
    uint32_t i = home_of(cs, k);

    while (cs->clients[i].n && (cs->clients[i].key.k0 != k.k0 || cs->clients[i].key.k1 != k.k1))
        i = (i + 1) & cs->mask;
    return &cs->clients[i];
}

/* One connection of k fewer; an emptied slot is filled from further along
 * its run (linear probing without tombstones). */
static void client_drop(gw_conns_t *cs, client_key_t k)
{
    client_t *c = client_slot(cs, k);
    uint32_t i, j;

    if (!c->n || --c->n)
        return;
    i = j = (uint32_t)(c - cs->clients);
    for (;;) {
        uint32_t home;
        j = (j + 1) & cs->mask;
        if (!cs->clients[j].n)
            break;
        home = home_of(cs, cs->clients[j].key);
        /* Entry j may move back to i unless its home lies in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            cs->clients[i] = cs->clients[j];
            i = j;
        }
    }
    cs->clients[i].n = 0;
}

/* ------------------------------------------------------------------ records */

static probe_t *probe_of(gw_conns_t *cs, int fd)
{
    for (int i = 0; i < cs->lim.probes; i++)
        if (cs->probes[i].fd == fd)
            return &cs->probes[i];
    return NULL;
}

/* Give back what the record of fd holds. Under the lock. */
static void release(gw_conns_t *cs, int fd)
{
    rec_t *r = &cs->recs[fd];
    probe_t *p;

    if (r->state == REC_FREE)
        return;
    if (r->kind == GW_CONN_SERVE) {
        cs->nserve--;
    } else if (r->kind == KIND_CLOSING) {
        cs->nclosing--;
    } else {
        cs->nprobe--;
        if ((p = probe_of(cs, fd)))
            p->fd = -1;
    }
    if (cs->clients)
        client_drop(cs, r->key);
    r->state = REC_FREE;
}

/* Probe-only connections shut down but not yet closed, at most. */
#define CLOSING_MAX(lim) (4 * (lim)->probes)

int gw_conns_most(const gw_conns_limits_t *lim)
{
    return lim->max + lim->probes + CLOSING_MAX(lim);
}

/* Shut probe-only connection p down, and free its place at once if the
 * closing ones leave room. A started one is shut down here: libmicrohttpd
 * closes the socket after its CLOSED notification, which waits for this
 * lock, so p->fd is still that socket. One not started yet is shut down by
 * gw_conns_started. Returns 0 when nothing could be done yet (not started,
 * and no room among the closing): look again in 0.1 s. Under the lock. */
static int retire(gw_conns_t *cs, probe_t *p, double now)
{
    rec_t *r = &cs->recs[p->fd];

    if (r->state == REC_STARTED)
        shutdown(p->fd, SHUT_RDWR);
    if (cs->nclosing < CLOSING_MAX(&cs->lim)) {
        r->kind = KIND_CLOSING;
        cs->nclosing++;
        cs->nprobe--;
        p->fd = -1;
        return 1;
    }
    /* It keeps its place until it is closed. */
    p->deadline = r->state == REC_STARTED ? INFINITY : now + 0.1;
    return r->state == REC_STARTED;
}

/* The probe-only connection that has waited longest without a request,
 * among the eight oldest that have not begun one and have nothing waiting
 * to be read (which may be a request coming in); NULL if none. */
static probe_t *idlest(gw_conns_t *cs)
{
    probe_t *prev = NULL;

    for (int tries = 0; tries < 8; tries++) {
        probe_t *best = NULL;
        int unread = 0;

        for (int i = 0; i < cs->lim.probes; i++) {
            probe_t *p = &cs->probes[i];
            if (p->fd < 0 || p->begun ||
                (prev && (p->deadline < prev->deadline || (p->deadline == prev->deadline && p <= prev))))
                continue; /* begun, or older than one already looked at */
            if (!best || p->deadline < best->deadline)
                best = p;
        }
        if (!best || ioctl(best->fd, FIONREAD, &unread) != 0 || unread == 0)
            return best;
        prev = best;
    }
    return NULL;
}

/* Room for one more connection: GW_CONN_SERVE, GW_CONN_PROBE or
 * GW_CONN_REFUSED. When the probe places are full, the one that has waited
 * longest without sending a request makes room: a burst of idle
 * connections cannot keep a probe out. Under the lock. */
static int take_room(gw_conns_t *cs, int fd, double now)
{
    probe_t *p = NULL;

    if (cs->nserve < cs->lim.max) {
        cs->nserve++;
        return GW_CONN_SERVE;
    }
    if (cs->nprobe == cs->lim.probes && cs->nclosing < CLOSING_MAX(&cs->lim) && (p = idlest(cs))) {
        retire(cs, p, now);
        cs->st.evicted++;
    }
    if (!(p = probe_of(cs, -1)))
        return GW_CONN_REFUSED;
    *p = (probe_t){fd, 0, now + cs->lim.probe_seconds};
    cs->nprobe++;
    return GW_CONN_PROBE;
}

int gw_conns_admit(gw_conns_t *cs, int fd, const struct sockaddr *addr, double now, const char **why)
{
    client_key_t k = key_of(addr);
    client_t *c = NULL;
    int kind;

    pthread_mutex_lock(&cs->lock);
    cs->st.accepted++;
    if (fd < 0 || fd >= cs->lim.max_fd) {
        *why = "socket number beyond the limit of open files";
        kind = GW_CONN_REFUSED;
    } else {
        release(cs, fd); /* a record left by a connection dropped before it started */
        c = cs->clients ? client_slot(cs, k) : NULL;
        if (c && c->n >= (uint32_t)cs->lim.per_client) {
            cs->st.refused_client++;
            *why = "listen.max_connections_per_client";
            kind = GW_CONN_REFUSED;
        } else if ((kind = take_room(cs, fd, now)) == GW_CONN_REFUSED) {
            *why = cs->lim.probes ? "listen.max_connections and listen.probe_connections" : "listen.max_connections";
        }
    }
    if (kind == GW_CONN_REFUSED) {
        cs->st.refused++;
    } else {
        if (c) {
            c->key = k;
            c->n++;
        }
        cs->recs[fd] = (rec_t){REC_HANDED, (uint8_t)kind, k};
    }
    pthread_mutex_unlock(&cs->lock);
    return kind;
}

void gw_conns_closed(gw_conns_t *cs, int fd)
{
    if (fd < 0 || fd >= cs->lim.max_fd)
        return;
    pthread_mutex_lock(&cs->lock);
    release(cs, fd);
    pthread_mutex_unlock(&cs->lock);
}

int gw_conns_started(gw_conns_t *cs, int fd)
{
    int kind = GW_CONN_SERVE;

    if (fd < 0 || fd >= cs->lim.max_fd)
        return kind;
    pthread_mutex_lock(&cs->lock);
    if (cs->recs[fd].state != REC_FREE) {
        cs->recs[fd].state = REC_STARTED;
        kind = cs->recs[fd].kind;
    }
    if (kind == KIND_CLOSING) {
        shutdown(fd, SHUT_RDWR); /* retired before it started */
        kind = GW_CONN_PROBE;
    }
    pthread_mutex_unlock(&cs->lock);
    return kind;
}

void gw_conns_begun(gw_conns_t *cs, int fd)
{
    probe_t *p;

    pthread_mutex_lock(&cs->lock);
    if ((p = probe_of(cs, fd)))
        p->begun = 1;
    pthread_mutex_unlock(&cs->lock);
}

double gw_conns_expire(gw_conns_t *cs, double now)
{
    double next = INFINITY;

    pthread_mutex_lock(&cs->lock);
    for (int i = 0; i < cs->lim.probes; i++) {
        probe_t *p = &cs->probes[i];
        if (p->fd < 0)
            continue;
        if (p->deadline <= now && retire(cs, p, now))
            cs->st.expired++;
        if (p->fd >= 0 && p->deadline < next)
            next = p->deadline;
    }
    pthread_mutex_unlock(&cs->lock);
    return isinf(next) ? -1 : next - now;
}

void gw_conns_stats(gw_conns_t *cs, gw_conns_stats_t *out)
{
    pthread_mutex_lock(&cs->lock);
    *out = cs->st;
    out->open = (uint64_t)(cs->nserve + cs->nprobe);
    out->probes = (uint64_t)cs->nprobe;
    pthread_mutex_unlock(&cs->lock);
}

/* ------------------------------------------------------------------ life */

gw_conns_t *gw_conns_create(const gw_conns_limits_t *lim)
{
    gw_conns_t *cs = calloc(1, sizeof(*cs));

    if (!cs)
        return NULL;
    cs->lim = *lim;
    pthread_mutex_init(&cs->lock, NULL);
    cs->recs = calloc((size_t)lim->max_fd, sizeof(*cs->recs));
    cs->probes = malloc((size_t)(lim->probes ? lim->probes : 1) * sizeof(*cs->probes));
    if (!cs->recs || !cs->probes)
        goto fail;
    for (int i = 0; i < lim->probes; i++)
        cs->probes[i].fd = -1;
    if (lim->per_client > 0) {
        /* A client per connection at most: at most half full. */
        size_t cap = 16;
        while (cap < 2 * (size_t)gw_conns_most(lim))
            cap *= 2;
        cs->clients = calloc(cap, sizeof(*cs->clients));
        if (!cs->clients)
            goto fail;
        cs->mask = (uint32_t)(cap - 1);
        if (getrandom(&cs->seed, sizeof(cs->seed), GRND_NONBLOCK) != sizeof(cs->seed))
            cs->seed = mix((uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)cs);
    }
    return cs;
fail:
    gw_conns_destroy(cs);
    return NULL;
}

void gw_conns_destroy(gw_conns_t *cs)
{
    if (!cs)
        return;
    pthread_mutex_destroy(&cs->lock);
    free(cs->recs);
    free(cs->clients);
    free(cs->probes);
    free(cs);
}
