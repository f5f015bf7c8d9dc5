/* conns.h — which client connections the HTTP server takes.
 *
 * http.c's acceptor asks here before it hands an accepted socket to a
 * libmicrohttpd worker, and libmicrohttpd's connection notifications give
 * each one back, so these limits hold before libmicrohttpd sees a socket:
 *
 *   max            connections that may ask anything (listen.max_connections)
 *   per_client     connections from one client, an IPv4 address or an IPv6
 *                  /64 (listen.max_connections_per_client; 0 = no cap)
 *   probes         further connections once max is reached, kept for the
 *                  probes: they are answered only on /ping, /health and
 *                  /metrics, and closed probe_seconds after their accept
 *                  whatever they do, so slow clients cannot hold them; and
 *                  when they are all taken, a new connection takes the place
 *                  of the one that has waited longest without a request, so
 *                  a burst of idle connections cannot keep a probe out
 *                  (listen.probe_connections)
 *
 * Why the limit is not libmicrohttpd's own: in 0.9.75 (Debian 12) a worker
 * whose per-daemon connection limit is reached leaves its cleanup mutex
 * locked, and hangs for good (fixed in 1.0.0). http.c sets libmicrohttpd's
 * limit above gw_conns_most, so it is never reached.
 *
 * A connection's record is keyed by its socket: admitted by the acceptor,
 * started and closed by libmicrohttpd's notifications on the worker's
 * thread. libmicrohttpd closes a socket after its CLOSED notification, so a
 * socket number does not come back from accept while its record lives. One
 * that libmicrohttpd drops before STARTED (out of memory) is not notified;
 * its record is still "handed" when accept returns its number again, and is
 * given back then. All of it under one mutex: it is taken once per
 * connection event (and per request on a probe-only connection only). */
#ifndef GW_CONNS_H
#define GW_CONNS_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct gw_conns gw_conns_t;

typedef struct {
    int max;              /* connections that may ask anything, >= 1 */
    int per_client;       /* connections of one client at most, 0 = no cap */
    int probes;           /* probe-only connections beyond max, 0 = none */
    double probe_seconds; /* lifetime of a probe-only connection */
    int max_fd;           /* sockets are below this (RLIMIT_NOFILE) */
} gw_conns_limits_t;

/* What gw_conns_admit decided. */
enum {
    GW_CONN_REFUSED = 0, /* close it: the caller closes the socket */
    GW_CONN_SERVE,       /* an ordinary connection */
    GW_CONN_PROBE,       /* answered on /ping, /health and /metrics only */
};

typedef struct {
    uint64_t accepted;    /* sockets the acceptor asked about since start */
    uint64_t open;        /* connections now, probe-only ones included */
    uint64_t probes;      /* probe-only connections now */
    uint64_t refused;     /* closed at accept since start */
    uint64_t refused_client; /* of these, over per_client */
    uint64_t expired;     /* probe-only connections closed at their deadline */
    uint64_t evicted;     /* probe-only connections closed to make room */
} gw_conns_stats_t;

/* Sockets an account with lim lets libmicrohttpd hold at most: max, the
 * probes, and the probe-only connections shut down to make room, which
 * count until libmicrohttpd has closed them (a bounded number). */
int gw_conns_most(const gw_conns_limits_t *lim);

/* A new account with lim (copied). NULL on ENOMEM. */
gw_conns_t *gw_conns_create(const gw_conns_limits_t *lim);

/* Free it. NULL is a no-op. */
void gw_conns_destroy(gw_conns_t *cs);

/* The acceptor: may socket fd, accepted from addr at now (monotonic
 * seconds), be served? Records it unless GW_CONN_REFUSED; *why then says
 * which limit (static text). */
int gw_conns_admit(gw_conns_t *cs, int fd, const struct sockaddr *addr, double now, const char **why);

/* libmicrohttpd started serving fd (its STARTED notification). Returns how
 * it was admitted: GW_CONN_SERVE or GW_CONN_PROBE. */
int gw_conns_started(gw_conns_t *cs, int fd);

/* libmicrohttpd is closing fd (its CLOSED notification), or the acceptor's
 * hand-off of fd failed (libmicrohttpd then closes it without one). */
void gw_conns_closed(gw_conns_t *cs, int fd);

/* A probe-only connection on fd sent a request head: it is not taken for
 * idle when room is needed. */
void gw_conns_begun(gw_conns_t *cs, int fd);

/* The acceptor: shut down the probe-only connections past their deadline
 * (libmicrohttpd then closes them). Returns the seconds until the next
 * deadline, or -1 when there is none. */
double gw_conns_expire(gw_conns_t *cs, double now);

/* Counts so far. */
void gw_conns_stats(gw_conns_t *cs, gw_conns_stats_t *out);

#endif
