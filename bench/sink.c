/* sink.c — a counting InfluxDB stand-in for the benchmark.
 *
 *   POST /write, POST /api/v2/write   204; counts the body's lines (gzip
 *                                     bodies are inflated first)
 *   GET  /count                       200 {"lines":N,"requests":N,"bytes":N,"gzip_requests":N}
 *   GET  /sample                      200, the first 4 KB of the last write body
 *                                     (inflated): to check what luagw sends
 *   GET  /ping                        204
 *   anything else                     404
 *
 * A "line" is a non-empty line of the (inflated) body: every '\n' that ends
 * a non-empty line, plus a last line without one. That is one point for
 * what luagw sends. Bodies need a Content-Length (libcurl sends one for
 * luagw's batches); chunked requests get 411.
 *
 * One thread, epoll, non-blocking sockets, no per-request allocation: the
 * body is counted as it streams in and never stored, so the sink costs a
 * read() and a memchr pass per byte and cannot be the bottleneck.
 *
 * usage: sink [-a ADDR] [-p PORT] [-o COUNTFILE]
 *   Prints "port N" on stdout once listening (-p 0, the default, picks a
 *   free port). SIGTERM/SIGINT: write the final count JSON to COUNTFILE (if
 *   given) and exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#define HDR_MAX 16384
#define READ_BUF (256 * 1024)
#define MAX_EVENTS 64

enum { S_HEADERS, S_BODY };

typedef struct {
    int fd;
    int state;
    char hdr[HDR_MAX]; /* the request line and headers being collected */
    size_t hlen;
    uint64_t body_left;
    int is_write;      /* POST to a write endpoint: count its lines */
    int gzip;
    int z_ready;       /* z was initialised (kept for the next gzip body) */
    z_stream z;
    char last;         /* last body byte counted, '\n' at the start */
    int close_after;
    int sampling;      /* this request's text goes to sample[] */
    char out[4608];    /* pending answer bytes (rarely more than one write) */
    size_t out_len, out_off;
} conn_t;

static struct {
    uint64_t lines, requests, bytes, gzip_requests;
} count;

static char sample[4096];
static size_t sample_len;

static volatile sig_atomic_t stop;
static char rbuf[READ_BUF];
static char zbuf[READ_BUF];

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void count_text(conn_t *c, const char *p, size_t n)
{
    const char *e = p + n, *q;

    if (!n)
        return;
    if (c->sampling) {
        size_t k = n < sizeof(sample) - sample_len ? n : sizeof(sample) - sample_len;
        memcpy(sample + sample_len, p, k);
        sample_len += k;
        c->sampling = sample_len < sizeof(sample);
    }
    /* A '\n' ends a line unless the line was empty. */
    while ((q = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        char before = q > p ? q[-1] : c->last;
        if (before != '\n')
            count.lines++;
        c->last = '\n';
        p = q + 1;
        if (p == e)
            return;
    }
    c->last = e[-1];
}

/* Body bytes of a write request. Returns 0, or -1 on bad gzip data. */
static int body_bytes(conn_t *c, const char *p, size_t n)
{
    count.bytes += n;
    if (!c->is_write)
        return 0;
    if (!c->gzip) {
        count_text(c, p, n);
        return 0;
    }
    c->z.next_in = (Bytef *)p;
    c->z.avail_in = (uInt)n;
    while (c->z.avail_in) {
        int rc;
        c->z.next_out = (Bytef *)zbuf;
        c->z.avail_out = sizeof(zbuf);
        rc = inflate(&c->z, Z_NO_FLUSH);
        count_text(c, zbuf, sizeof(zbuf) - c->z.avail_out);
        if (rc == Z_STREAM_END)
            break; /* trailing bytes after the stream are ignored */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
    }
    /* Drain what inflate holds back for lack of output room. */
    for (;;) {
        int rc;
        c->z.next_out = (Bytef *)zbuf;
        c->z.avail_out = sizeof(zbuf);
        rc = inflate(&c->z, Z_NO_FLUSH);
        count_text(c, zbuf, sizeof(zbuf) - c->z.avail_out);
        if (c->z.avail_out || (rc != Z_OK && rc != Z_BUF_ERROR))
            break;
    }
    return 0;
}

static void conn_close(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->z_ready)
        inflateEnd(&c->z);
    free(c);
}

/* Queue an answer and try to send it now. Returns 0, or -1 (close). */
static int respond_type(int ep, conn_t *c, const char *status, const char *ctype, const char *body,
                        size_t blen)
{
    int n;

    /* 204 has no body and no Content-Length. */
    if (strncmp(status, "204", 3) == 0)
        n = snprintf(c->out, sizeof(c->out), "HTTP/1.1 %s\r\nX-Influxdb-Version: 1.8.10-sink\r\n%s\r\n",
                     status, c->close_after ? "Connection: close\r\n" : "");
    else
        n = snprintf(c->out, sizeof(c->out),
                     "HTTP/1.1 %s\r\nX-Influxdb-Version: 1.8.10-sink\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s\r\n%.*s",
                     status, ctype, blen, c->close_after ? "Connection: close\r\n" : "", (int)blen, body);
    if (n < 0 || (size_t)n >= sizeof(c->out))
        return -1;
    c->out_len = (size_t)n;
    c->out_off = 0;
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_len = c->out_off = 0;
    return c->close_after ? -1 : 0;
}

static int respond(int ep, conn_t *c, const char *status, const char *body)
{
    return respond_type(ep, c, status, "application/json", body, strlen(body));
}

/* Find a header's value in the collected head (case-insensitive name). */
static const char *header(const char *head, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p && p[2] != '\r') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (!eol)
            return NULL;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* The head (request line and headers) is complete in c->hdr. Returns 0 to
 * go on reading the body, 1 when the request was answered already, -1 to
 * close. */
static int start_request(int ep, conn_t *c)
{
    char method[16], path[1024];
    const char *v;
    size_t vlen;
    char *q;

    if (sscanf(c->hdr, "%15s %1023s", method, path) != 2)
        return -1;
    if ((q = strchr(path, '?')))
        *q = 0;
    c->close_after = (v = header(c->hdr, "Connection", &vlen)) && vlen >= 5 && !strncasecmp(v, "close", 5);
    c->body_left = (v = header(c->hdr, "Content-Length", &vlen)) ? strtoull(v, NULL, 10) : 0;
    c->gzip = (v = header(c->hdr, "Content-Encoding", &vlen)) && vlen >= 4 && !strncasecmp(v, "gzip", 4);
    c->is_write = strcmp(method, "POST") == 0 &&
                  (strcmp(path, "/write") == 0 || strcmp(path, "/api/v2/write") == 0);
    c->last = '\n';
    c->sampling = 0;
    if (c->is_write) {
        sample_len = 0;
        c->sampling = 1;
    }
    if (header(c->hdr, "Transfer-Encoding", &vlen)) {
        c->close_after = 1;
        return respond(ep, c, "411 Length Required", "{\"error\":\"sink: send a Content-Length\"}") ? -1 : 1;
    }
    if (strcmp(method, "GET") == 0 && strcmp(path, "/count") == 0) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"lines\":%llu,\"requests\":%llu,\"bytes\":%llu,\"gzip_requests\":%llu}",
                 (unsigned long long)count.lines, (unsigned long long)count.requests,
                 (unsigned long long)count.bytes, (unsigned long long)count.gzip_requests);
        return respond(ep, c, "200 OK", body) ? -1 : 1;
    }
    if (strcmp(method, "GET") == 0 && strcmp(path, "/sample") == 0)
        return respond_type(ep, c, "200 OK", "text/plain", sample, sample_len) ? -1 : 1;
    if (strcmp(path, "/ping") == 0)
        return respond(ep, c, "204 No Content", "") ? -1 : 1;
    if (c->is_write && c->gzip) {
        if (!c->z_ready) {
            memset(&c->z, 0, sizeof(c->z));
            if (inflateInit2(&c->z, 15 + 32) != Z_OK)
                return -1;
            c->z_ready = 1;
        } else {
            inflateReset(&c->z);
        }
    }
    return 0;
}

/* The body is complete: count and answer. Returns 0, or -1 to close. */
static int end_request(int ep, conn_t *c)
{
    if (c->is_write) {
        if (c->last != '\n')
            count.lines++; /* a last line without '\n' */
        count.requests++;
        count.gzip_requests += c->gzip != 0;
        return respond(ep, c, "204 No Content", "");
    }
    return respond(ep, c, "404 Not Found", "{\"error\":\"sink: not found\"}");
}

/* Feed n received bytes through the request state machine. -1 to close. */
static int feed(int ep, conn_t *c, const char *p, size_t n)
{
    while (n) {
        if (c->state == S_HEADERS) {
            size_t take = n < HDR_MAX - 1 - c->hlen ? n : HDR_MAX - 1 - c->hlen;
            char *end;
            size_t used;
            int rc;

            if (take == 0)
                return -1; /* head too large */
            memcpy(c->hdr + c->hlen, p, take);
            c->hlen += take;
            c->hdr[c->hlen] = 0;
            end = strstr(c->hdr + (c->hlen - take > 3 ? c->hlen - take - 3 : 0), "\r\n\r\n");
            if (!end) {
                p += take;
                n -= take;
                continue;
            }
            /* Bytes of this read that belong after the head. */
            used = (size_t)(end + 4 - c->hdr) - (c->hlen - take);
            end[2] = 0; /* keep the last header's CRLF for header() */
            p += used;
            n -= used;
            c->hlen = 0;
            rc = start_request(ep, c);
            if (rc < 0)
                return -1;
            if (rc > 0)
                continue; /* answered; a body, if any, is not expected */
            c->state = S_BODY;
            if (c->body_left == 0) {
                c->state = S_HEADERS;
                if (end_request(ep, c))
                    return -1;
            }
            continue;
        }
        {
            size_t take = n < c->body_left ? n : (size_t)c->body_left;
            if (body_bytes(c, p, take))
                return -1;
            p += take;
            n -= take;
            c->body_left -= take;
            if (c->body_left == 0) {
                c->state = S_HEADERS;
                if (end_request(ep, c))
                    return -1;
            }
        }
    }
    return 0;
}

static int write_count_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"lines\":%llu,\"requests\":%llu,\"bytes\":%llu,\"gzip_requests\":%llu}\n",
            (unsigned long long)count.lines, (unsigned long long)count.requests,
            (unsigned long long)count.bytes, (unsigned long long)count.gzip_requests);
    return fclose(f);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *count_file = NULL;
    int port = 0, opt, lfd, ep, one = 1;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    struct epoll_event ev, evs[MAX_EVENTS];
    struct sigaction act;

    while ((opt = getopt(argc, argv, "a:p:o:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'o': count_file = optarg; break;
        default:
            fprintf(stderr, "usage: sink [-a ADDR] [-p PORT] [-o COUNTFILE]\n");
            return 2;
        }
    }
    memset(&act, 0, sizeof(act));
    act.sa_handler = on_signal;
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (lfd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "sink: bad address %s\n", addr);
        return 1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 128) ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen)) {
        fprintf(stderr, "sink: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
        return 1;
    }
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* the listener */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    conn_t *nc = calloc(1, sizeof(*nc));
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->last = '\n';
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.ptr = nc;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (w > 0)
                    c->out_off += (size_t)w;
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    conn_close(ep, c);
                    continue;
                }
                if (c->out_off == c->out_len) {
                    c->out_len = c->out_off = 0;
                    if (c->close_after) {
                        conn_close(ep, c);
                        continue;
                    }
                    ev.events = EPOLLIN;
                    ev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r <= 0 || feed(ep, c, rbuf, (size_t)r))
                    conn_close(ep, c);
            }
        }
    }
    if (count_file && write_count_file(count_file))
        fprintf(stderr, "sink: cannot write %s: %s\n", count_file, strerror(errno));
    return 0;
}
