/* http.c — the HTTP server (libmicrohttpd), see http.h: the routes, the
 * callbacks that read a request and hand it on (http_ingest.c,
 * http_status.c), the acceptor that admits connections (conns.h) and
 * hands them to the worker daemons, and start/stop. http_int.h maps the
 * other files. */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "lineproto.h"
#include "log.h"

/* Bytes over the body limit that are read and discarded to deliver a 413. */
#define DRAIN_MAX ((size_t)16 << 20)

/* Seconds a probe-only connection (conns.h) lives from its accept: enough
 * for a probe's request and answer, too little for a slow client to hold. */
#define PROBE_SECONDS 2.0

/* Allocations from this size up are mapped apart and unmapped when freed,
 * rather than left in malloc's per-thread arenas (glibc otherwise raises
 * the threshold with each large block freed, up to 32 MiB): what a large
 * body, its inflation or its processing took goes back to the system when
 * the request ends, whichever worker took it. Not lower: a block mapped
 * anew faults in every page on each request (at 128 KiB, 2 MiB bodies took
 * a quarter more CPU); the rest is given back by malloc_trim (http.c,
 * inflight.h's gw_inflight_ebbed). */
#define MMAP_FROM_BYTES ((size_t)4 << 20)

static const struct {
    const char *path;
    enum route route;
    const char *methods; /* allowed, for 405's Allow header */
} routes[] = {
    {"/v1/points", R_POINTS, "POST"},
    {"/write", R_WRITE_V1, "POST"},
    {"/api/v2/write", R_WRITE_V2, "POST"},
    {"/ping", R_PING, "GET, HEAD"},
    {"/health", R_HEALTH, "GET, HEAD"},
    {"/metrics", R_METRICS, "GET, HEAD"},
    {"/v1/debug/transform", R_DEBUG, "POST"},
    {"/query", R_QUERY, "GET, POST"},
    {"/api/v2/query", R_READ, ""},
    {"/status", R_STATUS, "GET, HEAD"},
    {"/status.json", R_STATUS_JSON, "GET, HEAD"},
};

/* The socket context of a connection admitted only for probes (conns.h). */
char http_probe_mark;

int http_probe_only(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci && ci->socket_context == &http_probe_mark;
}

/* The route of url, and the methods it allows; R_NONE when unknown. */
static enum route route_of(const char *url, const char **allowed)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(url, routes[i].path) == 0) {
            *allowed = routes[i].methods;
            return routes[i].route;
        }
    return R_NONE;
}

/* A POST to an ingest endpoint or the debug transform: check what the
 * headers tell before reading a byte of the body, then set up *con_cls. */
static enum MHD_Result begin_body(gw_http_t *h, struct MHD_Connection *c, enum route route, void **con_cls)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    size_t n = cl ? strtoull(cl, NULL, 10) : 0, limit = h->cfg->listen.max_body_bytes;
    char e[100];
    req_t *r;
    int room;

    if (atomic_load(&h->draining))
        return http_answer_error(c, 503, route, "shutting down: nothing of this body was accepted");
    if (route == R_POINTS && ct && !http_is_json_type(ct))
        return http_answer_error(c, 415, route, "Content-Type: %s is not supported here, send application/json",
                                 ECHO(e, ct));
    if (enc && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "identity") != 0)
        return http_answer_error(c, 415, route, "Content-Encoding: %s is not supported (use gzip)", ECHO(e, enc));
    /* Far too large: answer before reading (the connection is closed).
     * Somewhat too large: read and discard it first, so that a client
     * that sends its whole body before reading sees the 413. */
    if (n > limit && n - limit > DRAIN_MAX)
        return http_answer_error(c, 413, route, "body: %zu bytes, larger than listen.max_body_bytes (%zu)", n, limit);
    /* No room for all it announces (inflight.h): a client that waits for
     * 100 Continue is answered now and sends nothing; any other is read to
     * the end first, without keeping a byte, so that it sees the answer. */
    room = n && n <= limit ? gw_inflight_fits(h->inflight, n) : GW_INFLIGHT_OK;
    if (room != GW_INFLIGHT_OK && expect && !strcasecmp(expect, "100-continue"))
        return http_answer_no_room(h, c, route, room, n);
    r = calloc(1, sizeof(*r));
    if (!r)
        return MHD_NO;
    r->route = route;
    r->expect = cl ? n : limit;
    r->too_large = n > limit;
    r->no_room = room;
    *con_cls = r;
    return MHD_YES;
}

/* Ingest and the debug transform need a token when tokens are set (/ping,
 * /health and /metrics stay open for probes and scrapers); a request
 * holds the routes and tokens in force (dispatch.h) until it ends. */
static enum MHD_Result begin_post(gw_http_t *h, struct MHD_Connection *c, enum route route, void **con_cls)
{
    gw_access_t *access = gw_access_acquire();
    const gw_tenant_t *tenant = NULL;
    enum MHD_Result ret;

    if (!access)
        return http_answer_error(c, 503, route, "shutting down: nothing of this body was accepted");
    if (gw_access_tokens(access) && !(tenant = http_authorized(access, c, route))) {
        gw_access_release(access);
        return http_answer_error(c, 401, route,
                                 "unauthorized: send Authorization: Bearer <token> (or Token, Basic, ?u=&p= on /write and /query)");
    }
    ret = begin_body(h, c, route, con_cls);
    if (*con_cls) {
        ((req_t *)*con_cls)->access = access;
        ((req_t *)*con_cls)->tenant = tenant;
    } else {
        gw_access_release(access);
    }
    return ret;
}

/* Let go of what a request body holds: its buffer, and its room. */
static void drop_body(gw_http_t *h, req_t *r)
{
    gw_buf_free(&r->body);
    gw_inflight_keep(h->inflight, &r->held, 0);
}

/* A piece of a request body (n bytes at data) has arrived: kept, with room
 * taken for it first (inflight.h); or, once the body is refused (too large,
 * or no room: answered when all of it is in), read and dropped. A body
 * still coming past max_body_bytes by DRAIN_MAX (one without a
 * Content-Length) is not read any further: the connection is closed. */
static enum MHD_Result on_upload(gw_http_t *h, req_t *r, const char *data, size_t n)
{
    size_t limit = h->cfg->listen.max_body_bytes;

    r->received += n;
    if (!r->too_large && r->received > limit) {
        r->too_large = 1;
        drop_body(h, r);
    }
    if (r->too_large || r->no_room)
        return r->received > limit && r->received - limit > DRAIN_MAX ? MHD_NO : MHD_YES;
    r->no_room = gw_inflight_take(h->inflight, &r->held, r->body.len + n, r->expect);
    if (r->no_room) {
        drop_body(h, r);
        return MHD_YES;
    }
    return gw_buf_append(&r->body, data, n) ? MHD_NO : MHD_YES;
}

/* GET or POST /query (query.h): the first call starts it and suspends the
 * connection; the call after the resume answers with what InfluxDB sends. */
static enum MHD_Result query(gw_http_t *h, struct MHD_Connection *c, req_t *r, int post)
{
    struct MHD_Response *resp;
    const char *ctype;
    unsigned status;
    char err[600];
    int rc;

    if (!post && !http_let_in(c, R_QUERY))
        return http_answer_error(c, 401, R_QUERY,
                                 "unauthorized: send Authorization: Bearer <token> (or Token, Basic, ?u=&p=)");
    if (!r->query) {
        /* A POST holds the tokens in force and its token (begin_post); a
         * GET takes them here, for as long as the start needs them. */
        gw_access_t *own = r->access ? NULL : gw_access_acquire();
        const gw_access_t *acc = r->access ? r->access : own;
        const gw_tenant_t *tn = r->access ? r->tenant
                                : gw_access_tokens(acc) ? http_authorized(acc, c, R_QUERY) : NULL;
        rc = gw_query_start(h->outs, c, tn, post, r->body.data, r->body.len, &r->query, err, sizeof(err));
        gw_access_release(own);
        drop_body(h, r); /* copied, or not needed */
        return rc ? http_answer_error(c, (unsigned)rc, R_QUERY, "%s", err) : MHD_YES;
    }
    resp = gw_query_response(r->query, &status, &ctype, err, sizeof(err));
    if (resp)
        return http_queue(c, status, resp, ctype);
    return status ? http_answer_error(c, status, R_QUERY, "%s", err) : MHD_YES;
}

/* The first call of a request: answer what needs no body, or begin_post. */
static enum MHD_Result begin(gw_http_t *h, struct MHD_Connection *c, const char *url, const char *method,
                             void **con_cls)
{
    const char *allowed = NULL;
    enum route route = route_of(url, &allowed);
    int probe = route == R_PING || route == R_HEALTH || route == R_METRICS;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* Answered once the request is read, as probes are. */
    int page = route == R_STATUS || route == R_STATUS_JSON || (route == R_QUERY && get);
    char e[200];

    if (http_probe_only(c)) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            gw_conns_begun(h->conns, ci->connect_fd); /* not idle: keep its place */
        if (!(probe && get))
            return http_answer_error(c, 503, route,
                                     "too many connections (listen.max_connections = %d): this one may only ask "
                                     "/ping, /health or /metrics",
                                     h->cfg->listen.max_connections);
    }
    if (route == R_NONE)
        return http_answer_error(c, 404, R_NONE, "path: %s not found", ECHO(e, url));
    if (route == R_READ)
        return http_answer_read_elsewhere(h, c, url);
    if (probe || page ? !get : strcmp(method, "POST") != 0)
        return http_answer_405(c, route, method, url, allowed);
    if (!probe && !page)
        return begin_post(h, c, route, con_cls);
    /* Probes are answered once the request is read: libmicrohttpd closes a
     * connection answered earlier, and scrapers and load balancers keep
     * theirs open. */
    if (!(*con_cls = calloc(1, sizeof(req_t))))
        return MHD_NO;
    ((req_t *)*con_cls)->route = route;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    gw_http_t *h = cls;
    req_t *r = *con_cls;
    size_t n;

    if (!r)
        return begin(h, c, url, method, con_cls);
    if (*upload_size) {
        if (r->route == R_PING || r->route == R_HEALTH || r->route == R_METRICS || r->route == R_STATUS ||
            r->route == R_STATUS_JSON || (r->route == R_QUERY && strcmp(method, "POST") != 0)) {
            *upload_size = 0; /* a body sent with GET: read and ignored */
            return MHD_YES;
        }
        n = *upload_size;
        *upload_size = 0;
        return on_upload(h, r, upload, n);
    }
    if (r->too_large)
        return http_answer_error(c, 413, r->route, "body: larger than listen.max_body_bytes (%zu)",
                                 h->cfg->listen.max_body_bytes);
    if (r->no_room)
        return http_answer_no_room(h, c, r->route, r->no_room, r->received);
    switch (r->route) {
    case R_PING:
        return http_answer(c, 204, "", 0, NULL);
    case R_HEALTH:
        return http_health(h, c);
    case R_METRICS:
        return http_metrics(h, c);
    case R_DEBUG:
        return http_debug_transform(h, c, r);
    case R_STATUS:
    case R_STATUS_JSON:
        return http_status_page(h, c, r->route);
    case R_QUERY:
        return query(h, c, r, strcmp(method, "POST") == 0);
    default:
        return http_ingest(h, c, r);
    }
}

/* A request has ended, answered or not (the client gone, a timeout, the
 * server stopping): all it holds goes. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_t *r = *con_cls;
    if (!r)
        return;
    drop_body(cls, r);
    gw_access_release(r->access);
    gw_query_end(r->query);
    free(r);
    *con_cls = NULL;
    if (gw_inflight_ebbed(((gw_http_t *)cls)->inflight))
        malloc_trim(0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    {
        /* Per-connection trouble (a client resetting, bad requests) repeats. */
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
        gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http", "detail=\"%s\"", msg);
    }
}

/* libmicrohttpd's connection notifications: the account of conns.c. A
 * connection admitted for probes only is marked in its socket context. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    gw_http_t *h = cls;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

    if (!ci)
        return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = gw_conns_started(h->conns, ci->connect_fd) == GW_CONN_PROBE ? &http_probe_mark : NULL;
    else
        gw_conns_closed(h->conns, ci->connect_fd);
}

/* A connection refused at accept, in the log (at most one line a second). */
static void log_refused(const struct sockaddr_storage *addr, const char *why)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
    char ip[INET6_ADDRSTRLEN] = "?";

    if (addr->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip, sizeof(ip));
    else if (addr->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, ip, sizeof(ip));
    gw_log_limited(&lim, 1.0, GW_LOG_WARN, "http: connection refused", "client=%s limit=\"%s\"", ip, why);
}

/* Admit socket fd (conns.h) and hand it to the next worker, or close it. */
static void hand_off(gw_http_t *h, int fd, const struct sockaddr_storage *addr, socklen_t alen, unsigned *next)
{
    const char *why;

    if (gw_conns_admit(h->conns, fd, (const struct sockaddr *)addr, gw_clock_mono(), &why) == GW_CONN_REFUSED) {
        log_refused(addr, why);
        close(fd);
        return;
    }
    /* On failure libmicrohttpd closes fd itself, without a notification. */
    if (MHD_add_connection(h->daemons[(*next)++ % (unsigned)h->ndaemons], fd, (const struct sockaddr *)addr,
                           alen) != MHD_YES)
        gw_conns_closed(h->conns, fd);
}

/* The acceptor: one listening socket, connections admitted (conns.h) and
 * handed to the worker daemons in turn. libmicrohttpd's own thread pool
 * lets an idle worker accept a burst of connections at once, so a client's
 * whole connection pool could land on one worker and leave the other cores
 * idle. Between accepts it closes the probe-only connections whose time is
 * up. */
static void *acceptor(void *arg)
{
    gw_http_t *h = arg;
    unsigned next = 0;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = h->listen_fd, .events = POLLIN},
                                {.fd = h->wake[0], .events = POLLIN}};
        struct sockaddr_storage addr;
        socklen_t alen = sizeof(addr);
        double wait = gw_conns_expire(h->conns, gw_clock_mono());
        int fd;

        if (poll(pfd, 2, wait < 0 ? -1 : (int)(wait * 1000) + 1) < 0) {
            if (errno == EINTR)
                continue;
            gw_log_error("http: poll failed", "error=\"%s\"", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL; /* gw_http_stop */
        if (!pfd[0].revents)
            continue;
        fd = accept4(h->listen_fd, (struct sockaddr *)&addr, &alen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;
                gw_log_limited(&lim, 5.0, GW_LOG_WARN, "http: cannot accept", "error=\"%s\"", strerror(errno));
                poll(NULL, 0, 100); /* let connections close before trying again */
            }
            continue;
        }
        hand_off(h, fd, &addr, alen, &next);
    }
}

/* Bind and listen on cfg->listen. Returns the socket or -1 with err set. */
static int open_listener(const gw_config_t *cfg, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char port[16];
    int fd = -1, one = 1, grc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->listen.port);
    grc = getaddrinfo(cfg->listen.address, port, &hints, &ai);
    if (grc) {
        snprintf(err, errlen, "listen.address %s: %s", cfg->listen.address, gai_strerror(grc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* SO_REUSEADDR only (not SO_REUSEPORT): a second luagw on the same port
     * must fail loudly, not share the traffic. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->listen.address, cfg->listen.port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* The whole of a PEM file, NUL-terminated (libmicrohttpd takes PEM text).
 * NULL with the reason in err. Free with free(). */
static char *read_pem(const char *path, const char *key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    gw_buf_t b = {0};
    size_t n;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open %s: %s", key, path, strerror(errno));
        return NULL;
    }
    do {
        if (gw_buf_reserve(&b, 16384))
            break;
        n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
    } while (n > 0 && b.len < (1 << 20));
    fclose(f);
    if (!b.len || gw_buf_putc(&b, '\0')) {
        snprintf(err, errlen, "%s: %s is empty or unreadable", key, path);
        gw_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Who may connect (conns.h): listen.max_connections and the keys beside
 * it, for sockets below the process's limit of open files. */
static gw_conns_limits_t conns_limits(const gw_config_t *cfg)
{
    struct rlimit rl = {0, 0};
    gw_conns_limits_t lim = {.max = cfg->listen.max_connections,
                             .per_client = cfg->listen.max_connections_per_client,
                             .probes = cfg->listen.probe_connections,
                             .probe_seconds = PROBE_SECONDS,
                             .max_fd = 1 << 20};

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)lim.max_fd)
        lim.max_fd = (int)rl.rlim_cur;
    return lim;
}

/* listen.tls_cert and tls_key read into h, and the daemons' options for
 * them in tls[0..1] with MHD_USE_TLS in *flags. 0, or -1 with err set. */
static int load_tls(gw_http_t *h, unsigned *flags, struct MHD_OptionItem *tls, char *err, size_t errlen)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "listen.tls_cert: this libmicrohttpd was built without TLS");
        return -1;
    }
    if (!(h->tls_cert = read_pem(h->cfg->listen.tls_cert, "listen.tls_cert", err, errlen)) ||
        !(h->tls_key = read_pem(h->cfg->listen.tls_key, "listen.tls_key", err, errlen)))
        return -1;
    *flags |= MHD_USE_TLS;
    tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
    return 0;
}

/* One libmicrohttpd daemon per listen.threads, into h->daemons. 0, or -1
 * with err set (the ones started are stopped by gw_http_stop). */
static int start_daemons(gw_http_t *h, unsigned flags, struct MHD_OptionItem *tls, const gw_conns_limits_t *lim,
                         char *err, size_t errlen)
{
    const gw_config_t *cfg = h->cfg;

    for (int i = 0; i < cfg->listen.threads; i++) {
        h->daemons[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, h,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, /* first, so it sees every message */
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->listen.connection_timeout,
            /* Bounds the request line and headers; a bigger buffer also
             * hands us bodies in fewer pieces. */
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->listen.max_header_bytes,
            /* Never reached: the acceptor admits fewer (conns.h). */
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw_conns_most(lim) + 64,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_ARRAY, tls, /* listen.tls_*: key and certificate, or nothing */
            MHD_OPTION_END);
        if (!h->daemons[i]) {
            snprintf(err, errlen, "cannot start HTTP worker %d: %s", i,
                     errno ? strerror(errno) : "libmicrohttpd failed");
            return -1;
        }
        h->ndaemons++;
    }
    return 0;
}

gw_http_t *gw_http_start(const gw_config_t *cfg, gw_outputs_t *outs, char *err, size_t errlen)
{
    gw_http_t *h = calloc(1, sizeof(*h));
    /* Each daemon is one worker thread with its own epoll; connections come
     * only from the acceptor (MHD_add_connection needs the ITC). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL}};
    gw_conns_limits_t lim = conns_limits(cfg);

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->outs = outs;
    h->listen_fd = h->wake[0] = h->wake[1] = -1;
    /* Lines are encoded once for every output: unsigned integers as
     * integers when any output is a 1.x, which has none. */
    h->lp_flags = 0;
    for (int i = 0; i < gw_outputs_count(outs); i++)
        if (gw_outputs_conf(outs, i)->cfg->monitoring.version == 1)
            h->lp_flags = GW_LP_NO_UINT;
    if (pthread_key_create(&h->key, http_worker_free)) {
        snprintf(err, errlen, "pthread_key_create failed");
        free(h);
        return NULL;
    }
    h->key_ok = 1;
    h->daemons = calloc((size_t)cfg->listen.threads, sizeof(*h->daemons));
    if (!h->daemons) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->listen.tls_cert[0] && load_tls(h, &flags, tls, err, errlen))
        goto fail;
    if (!(h->conns = gw_conns_create(&lim)) || !(h->inflight = gw_inflight_create(cfg->listen.max_inflight_bytes))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES);
    h->listen_fd = open_listener(cfg, err, errlen);
    if (h->listen_fd < 0 || start_daemons(h, flags, tls, &lim, err, errlen))
        goto fail;
    if (pipe2(h->wake, O_CLOEXEC)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&h->acceptor, NULL, acceptor, h)) {
        snprintf(err, errlen, "cannot start the acceptor thread");
        goto fail;
    }
    h->acceptor_ok = 1;
    return h;
fail:
    gw_http_stop(h);
    return NULL;
}

void gw_http_leave(gw_http_t *h)
{
    if (h)
        atomic_store(&h->leaving, 1);
}

void gw_http_drain(gw_http_t *h)
{
    if (h)
        atomic_store(&h->draining, 1);
}

void gw_http_stop(gw_http_t *h)
{
    if (!h)
        return;
    if (h->acceptor_ok) {
        /* Wake the acceptor; it exits before any daemon goes away. */
        if (write(h->wake[1], "x", 1) < 0)
            gw_log_error("http: cannot wake the acceptor", "error=\"%s\"", strerror(errno));
        pthread_join(h->acceptor, NULL);
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    gw_query_stop_all(); /* a connection suspended for a query is resumed first */
    for (int i = 0; i < h->ndaemons; i++)
        MHD_stop_daemon(h->daemons[i]);
    if (h->inflight) {
        gw_inflight_stats_t st;
        gw_inflight_stats(h->inflight, &st);
        if (st.held) /* every request gives back what it took: a bug otherwise */
            gw_log_error("http: memory of requests still held at stop", "bytes=%llu", (unsigned long long)st.held);
    }
    gw_inflight_destroy(h->inflight);
    gw_conns_destroy(h->conns);
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    free(h->daemons);
    if (h->key_ok)
        pthread_key_delete(h->key);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}
