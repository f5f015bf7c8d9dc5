/* load.c — HTTP load generator for the benchmark: POSTs pre-built bodies of
 * seed-series points (bench/bodies.c) over keep-alive connections for a
 * fixed time and measures each request's acknowledgement latency.
 *
 * usage: load -p PORT [-a ADDR] [-f lp|json] [-u PATH] [-c CONNS] [-t THREADS]
 *             [-d SECONDS] [-r REQ_PER_S] [-n POINTS] [-b BODIES] [-k SHAPES] [-z] [-B MS]
 *   -f lp    line protocol to /write?db=bench&precision=ns (default)
 *   -f json  a JSON array to /v1/points
 *   -u PATH  another path (with its query string)
 *   -c 8     connections, spread over -t threads (default 1 thread)
 *   -d 10    seconds of sending; answers still in flight are awaited (<= 5 s)
 *   -r 0     closed loop (default): each connection sends its next request as
 *            soon as the previous one is answered — the maximum load.
 *   -r R     open loop: R requests per second in total, on a fixed schedule.
 *            A request's latency counts from the moment it was due, so a
 *            request that waits for a free connection is charged for the
 *            wait (no coordinated omission).
 *   -n 1000  points per body; -b 16 distinct bodies (ids and times differ)
 *   -k N     one more tag on every point, shape=0..N-1 cycling across the
 *            bodies (bench_body_shapes): N distinct tag sets per series
 *   -z       gzip the bodies (Content-Encoding: gzip; compressed once, here)
 *   -B 5     after a 503, that connection pauses this many ms (closed loop)
 *
 * Prints one line of key=value pairs:
 *   requests ok points status_400 status_503 status_other errors unsent
 *   seconds points_per_s req_per_s body_bytes p50_ms p99_ms max_ms cpu_s
 * (cpu_s: this generator's own CPU seconds, to tell when it is the limit).
 * points counts the points acknowledged: all of a 204 body, and the
 * "accepted" count of a 400 (partial write). Exit status 0 unless nothing
 * could be sent. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "bodies.h"

#define RESP_MAX 16384
#define BACKLOG_MAX (1u << 20)
#define TAIL_NS (5 * INT64_C(1000000000)) /* wait for answers after the end */

typedef struct {
    char *data; /* owned: head and body */
    size_t len;
} request_t;

enum { C_IDLE, C_SENDING, C_RECEIVING, C_PAUSED };

typedef struct {
    int fd;
    int state;
    const request_t *req; /* borrowed */
    size_t off;
    int64_t t_start;      /* ns: when the request was due or sent */
    int64_t paused_until;
    char resp[RESP_MAX];
    size_t rlen;
    size_t head_len;      /* 0 until the head is complete */
    size_t body_len;
} conn_t;

typedef struct {
    uint64_t requests, ok, points, s400, s503, sother, errors, unsent;
    int64_t *lat; /* owned: ns per answered request */
    size_t nlat, lat_cap;
    int64_t last_done;
} stats_t;

typedef struct {
    pthread_t thread;
    int nconns;
    double rate;   /* requests/s for this thread, 0 = closed loop */
    int first_req; /* rotates the bodies between threads */
    stats_t st;
} worker_t;

static struct sockaddr_in g_addr;
static request_t *g_reqs;
static int g_nreqs;
static unsigned g_points;
static int64_t g_t0, g_deadline;
static int64_t g_pause_ns = 5 * 1000000;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void lat_add(stats_t *st, int64_t ns)
{
    if (st->nlat == st->lat_cap) {
        size_t cap = st->lat_cap ? st->lat_cap * 2 : 65536;
        int64_t *v = realloc(st->lat, cap * sizeof(*v));
        if (!v)
            return;
        st->lat = v;
        st->lat_cap = cap;
    }
    st->lat[st->nlat++] = ns;
}

static int conn_open(int ep, conn_t *c)
{
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof(g_addr))) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->state = C_IDLE;
    c->rlen = c->head_len = 0;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_reopen(int ep, conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    conn_open(ep, c);
}

static void set_events(int ep, conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what the socket takes. 0 ok, -1 on error. */
static int conn_send(int ep, conn_t *c)
{
    while (c->off < c->req->len) {
        ssize_t w = write(c->fd, c->req->data + c->off, c->req->len - c->off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_events(ep, c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            return -1;
        }
        c->off += (size_t)w;
    }
    c->state = C_RECEIVING;
    set_events(ep, c, EPOLLIN);
    return 0;
}

static void conn_start(int ep, conn_t *c, const request_t *r, int64_t t_start, stats_t *st)
{
    if (c->fd < 0 && conn_open(ep, c)) {
        st->errors++;
        return;
    }
    c->req = r;
    c->off = 0;
    c->t_start = t_start;
    c->rlen = c->head_len = 0;
    c->state = C_SENDING;
    st->requests++;
    if (conn_send(ep, c)) {
        st->errors++;
        conn_reopen(ep, c);
    }
}

/* A complete answer is in c->resp: account for it. Returns 1 when the
 * server asked to close the connection. */
static int answered(conn_t *c, stats_t *st, int64_t t)
{
    int status = 0, close_it = 0;
    const char *h;

    sscanf(c->resp, "HTTP/1.%*d %d", &status);
    lat_add(st, t - c->t_start);
    st->last_done = t;
    h = strcasestr(c->resp, "\r\nConnection: close");
    if (h && h < c->resp + c->head_len)
        close_it = 1;
    if (status == 204 || status == 200) {
        st->ok++;
        st->points += g_points;
    } else if (status == 400) {
        const char *a = strstr(c->resp + c->head_len, "\"accepted\":");
        st->s400++;
        if (a)
            st->points += strtoull(a + 11, NULL, 10);
    } else if (status == 503) {
        st->s503++;
        c->paused_until = t + g_pause_ns;
    } else {
        st->sother++;
    }
    return close_it;
}

/* Read the answer; may complete it. Returns -1 when the connection broke. */
static int conn_recv(int ep, conn_t *c, stats_t *st)
{
    for (;;) {
        ssize_t r;
        if (c->rlen == RESP_MAX - 1) {
            /* A body beyond the buffer (never from luagw): drop what we
             * already parsed the head of and keep counting bytes. */
            if (!c->head_len)
                return -1;
            c->body_len -= (c->rlen - c->head_len);
            c->rlen = c->head_len;
        }
        r = read(c->fd, c->resp + c->rlen, RESP_MAX - 1 - c->rlen);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        if (r == 0)
            return -1;
        c->rlen += (size_t)r;
        c->resp[c->rlen] = 0;
        if (!c->head_len) {
            char *e = strstr(c->resp, "\r\n\r\n"), *cl;
            if (!e)
                continue;
            c->head_len = (size_t)(e + 4 - c->resp);
            cl = strcasestr(c->resp, "\r\nContent-Length:");
            c->body_len = cl && cl < e ? strtoull(cl + 17, NULL, 10) : 0;
        }
        if (c->rlen >= c->head_len + c->body_len) {
            int64_t t = now_ns();
            int close_it = answered(c, st, t);
            if (c->state == C_SENDING) /* answered before the body was sent */
                close_it = 1;
            c->state = c->paused_until > t ? C_PAUSED : C_IDLE;
            c->rlen = c->head_len = 0;
            if (close_it)
                conn_reopen(ep, c);
            return 0;
        }
    }
}

static void *run(void *arg)
{
    worker_t *w = arg;
    stats_t *st = &w->st;
    conn_t *conns = calloc((size_t)w->nconns, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int64_t *backlog = w->rate > 0 ? malloc(BACKLOG_MAX * sizeof(int64_t)) : NULL;
    size_t bl_head = 0, bl_n = 0;
    double interval = w->rate > 0 ? 1e9 / w->rate : 0;
    uint64_t due_k = 0;
    int next_req = w->first_req;
    struct epoll_event evs[64];

    if (!conns || ep < 0 || (w->rate > 0 && !backlog)) {
        st->errors++;
        return NULL;
    }
    for (int i = 0; i < w->nconns; i++) {
        conns[i].fd = -1;
        if (conn_open(ep, &conns[i]))
            st->errors++;
    }

    for (;;) {
        int64_t t = now_ns(), wake = t + 100 * 1000000;
        int busy = 0, n;
        struct timespec to;

        for (int i = 0; i < w->nconns; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_PAUSED && c->paused_until <= t)
                c->state = C_IDLE;
            if (c->state == C_SENDING || c->state == C_RECEIVING)
                busy++;
        }
        if (t >= g_deadline) {
            if (!busy || t >= g_deadline + TAIL_NS)
                break;
        } else if (w->rate > 0) {
            int64_t due;
            /* Everything due by now joins the backlog, then idle
             * connections take the oldest. */
            while ((due = g_t0 + (int64_t)((double)due_k * interval)) <= t) {
                if (bl_n < BACKLOG_MAX)
                    backlog[(bl_head + bl_n++) % BACKLOG_MAX] = due;
                else
                    st->unsent++;
                due_k++;
            }
            for (int i = 0; i < w->nconns && bl_n; i++) {
                conn_t *c = &conns[i];
                if (c->state != C_IDLE)
                    continue;
                conn_start(ep, c, &g_reqs[next_req], backlog[bl_head], st);
                next_req = (next_req + 1) % g_nreqs;
                bl_head = (bl_head + 1) % BACKLOG_MAX;
                bl_n--;
            }
            if (due < wake)
                wake = due;
        } else {
            for (int i = 0; i < w->nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state != C_IDLE)
                    continue;
                conn_start(ep, c, &g_reqs[next_req], t, st);
                next_req = (next_req + 1) % g_nreqs;
            }
        }
        for (int i = 0; i < w->nconns; i++)
            if (conns[i].state == C_PAUSED && conns[i].paused_until < wake)
                wake = conns[i].paused_until;
        if (t < g_deadline && g_deadline < wake)
            wake = g_deadline;
        if (wake < t)
            wake = t;
        to.tv_sec = (wake - t) / 1000000000;
        to.tv_nsec = (wake - t) % 1000000000;
        n = epoll_pwait2(ep, evs, 64, &to, NULL);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && c->state == C_SENDING && conn_send(ep, c)) {
                st->errors++;
                conn_reopen(ep, c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int was_busy = c->state == C_SENDING || c->state == C_RECEIVING;
                if (conn_recv(ep, c, st)) {
                    if (was_busy)
                        st->errors++;
                    conn_reopen(ep, c);
                }
            }
        }
    }
    st->unsent += bl_n;
    for (int i = 0; i < w->nconns; i++)
        if (conns[i].state == C_SENDING || conns[i].state == C_RECEIVING)
            st->errors++; /* no answer within the tail */
    for (int i = 0; i < w->nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    close(ep);
    free(conns);
    free(backlog);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static char *gzip_body(const char *p, size_t n, size_t *out_len)
{
    z_stream z;
    size_t cap = compressBound((uLong)n) + 64;
    char *out = malloc(cap);

    memset(&z, 0, sizeof(z));
    if (!out || deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(out);
        return NULL;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&z);
        free(out);
        return NULL;
    }
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static void usage(void)
{
    fprintf(stderr, "usage: load -p PORT [-a ADDR] [-f lp|json] [-u PATH] [-c CONNS] [-t THREADS]\n"
                    "            [-d SECONDS] [-r REQ_PER_S] [-n POINTS] [-b BODIES] [-k SHAPES] [-z] [-B MS]\n");
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *path = NULL;
    int port = 0, format = BODY_LP, nconns = 8, nthreads = 1, nbodies = 16, gz = 0, opt;
    unsigned shapes = 0;
    double seconds = 10, rate = 0;
    size_t body_bytes = 0;
    worker_t *ws;
    stats_t all = {0};
    int64_t t_end;

    g_points = 1000;
    while ((opt = getopt(argc, argv, "a:p:f:u:c:t:d:r:n:b:k:zB:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'f':
            if (!strcmp(optarg, "json"))
                format = BODY_JSON;
            else if (!strcmp(optarg, "lp"))
                format = BODY_LP;
            else {
                usage();
                return 2;
            }
            break;
        case 'u': path = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 't': nthreads = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'n': g_points = (unsigned)atoi(optarg); break;
        case 'b': nbodies = atoi(optarg); break;
        case 'k': shapes = (unsigned)atoi(optarg); break;
        case 'z': gz = 1; break;
        case 'B': g_pause_ns = (int64_t)(atof(optarg) * 1e6); break;
        default:
            usage();
            return 2;
        }
    }
    if (port <= 0 || nconns < 1 || nthreads < 1 || nthreads > nconns || nbodies < 1 || seconds <= 0 ||
        g_points < 1) {
        usage();
        return 2;
    }
    if (!path)
        path = format == BODY_JSON ? "/v1/points" : "/write?db=bench&precision=ns";
    memset(&g_addr, 0, sizeof(g_addr));
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &g_addr.sin_addr) != 1) {
        fprintf(stderr, "load: bad address %s\n", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* Every request, head and body, built once. */
    g_reqs = calloc((size_t)nbodies, sizeof(*g_reqs));
    g_nreqs = nbodies;
    for (int i = 0; i < nbodies; i++) {
        size_t blen, zlen;
        char *body = bench_body_shapes(format, g_points, (unsigned)i + 1, shapes, &blen), *payload, head[512];
        int hl;

        if (!body) {
            fprintf(stderr, "load: out of memory\n");
            return 1;
        }
        payload = body;
        if (gz) {
            payload = gzip_body(body, blen, &zlen);
            if (!payload) {
                fprintf(stderr, "load: gzip failed\n");
                return 1;
            }
            blen = zlen;
        }
        hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: luagw-bench\r\n"
                      "Content-Type: %s\r\n%sContent-Length: %zu\r\n\r\n",
                      path, addr, port, format == BODY_JSON ? "application/json" : "text/plain; charset=utf-8",
                      gz ? "Content-Encoding: gzip\r\n" : "", blen);
        g_reqs[i].data = malloc((size_t)hl + blen);
        memcpy(g_reqs[i].data, head, (size_t)hl);
        memcpy(g_reqs[i].data + hl, payload, blen);
        g_reqs[i].len = (size_t)hl + blen;
        body_bytes += blen;
        if (payload != body)
            free(payload);
        free(body);
    }

    ws = calloc((size_t)nthreads, sizeof(*ws));
    g_t0 = now_ns();
    g_deadline = g_t0 + (int64_t)(seconds * 1e9);
    for (int i = 0; i < nthreads; i++) {
        ws[i].nconns = nconns / nthreads + (i < nconns % nthreads);
        ws[i].rate = rate / nthreads;
        ws[i].first_req = (i * nbodies) / nthreads;
        pthread_create(&ws[i].thread, NULL, run, &ws[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        stats_t *s = &ws[i].st;
        pthread_join(ws[i].thread, NULL);
        all.requests += s->requests;
        all.ok += s->ok;
        all.points += s->points;
        all.s400 += s->s400;
        all.s503 += s->s503;
        all.sother += s->sother;
        all.errors += s->errors;
        all.unsent += s->unsent;
        if (s->last_done > all.last_done)
            all.last_done = s->last_done;
        for (size_t k = 0; k < s->nlat; k++)
            lat_add(&all, s->lat[k]);
        free(s->lat);
    }
    t_end = all.last_done > g_deadline ? all.last_done : g_deadline;
    qsort(all.lat, all.nlat, sizeof(*all.lat), cmp_i64);
    {
        struct rusage ru;
        double secs = (double)(t_end - g_t0) / 1e9, cpu = 0;
        double p50 = all.nlat ? (double)all.lat[(size_t)(0.50 * (double)(all.nlat - 1))] / 1e6 : 0;
        double p99 = all.nlat ? (double)all.lat[(size_t)(0.99 * (double)(all.nlat - 1))] / 1e6 : 0;
        double mx = all.nlat ? (double)all.lat[all.nlat - 1] / 1e6 : 0;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        printf("requests=%llu ok=%llu points=%llu status_400=%llu status_503=%llu status_other=%llu "
               "errors=%llu unsent=%llu seconds=%.3f points_per_s=%.0f req_per_s=%.1f body_bytes=%zu "
               "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f cpu_s=%.2f\n",
               (unsigned long long)all.requests, (unsigned long long)all.ok,
               (unsigned long long)all.points, (unsigned long long)all.s400,
               (unsigned long long)all.s503, (unsigned long long)all.sother,
               (unsigned long long)all.errors, (unsigned long long)all.unsent, secs,
               (double)all.points / secs, (double)all.nlat / secs, body_bytes / (size_t)nbodies, p50,
               p99, mx, cpu);
    }
    for (int i = 0; i < nbodies; i++)
        free(g_reqs[i].data);
    free(g_reqs);
    free(ws);
    free(all.lat);
    return all.requests ? 0 : 1;
}
