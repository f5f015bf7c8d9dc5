/* bare.c — the benchmark's ceiling: a libmicrohttpd server set up exactly as
 * luagw's (gateway/http.c: internal polling thread pool, epoll, 128 KB
 * connection memory) that reads every body into a per-request buffer, as
 * luagw does before parsing, and answers 204 with luagw's response headers.
 * Whatever luagw reaches beyond this is its own per-point work.
 *
 * usage: bare [-a ADDR] [-p PORT] [-t THREADS]
 *   Prints "port N" once listening (-p 0, the default, picks a free port);
 *   runs until SIGTERM/SIGINT, then prints "requests=N bytes=N". */
#include <netinet/in.h> /* before microhttpd.h: it needs sockaddr_in */

#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *data; /* owned: the body so far */
    size_t len, cap;
} req_t;

static atomic_uint_fast64_t n_requests, n_bytes;

static int append(req_t *r, const char *p, size_t n)
{
    if (r->cap - r->len < n) {
        size_t cap = r->cap ? r->cap : 4096;
        char *d;
        while (cap - r->len < n)
            cap *= 2;
        d = realloc(r->data, cap);
        if (!d)
            return -1;
        r->data = d;
        r->cap = cap;
    }
    memcpy(r->data + r->len, p, n);
    r->len += n;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    req_t *r = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result rc;

    (void)cls, (void)url, (void)method, (void)version;
    if (!r) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        size_t n = cl ? strtoull(cl, NULL, 10) : 0;
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        if (n && n < ((size_t)64 << 20)) {
            r->data = malloc(n);
            r->cap = r->data ? n : 0;
        }
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (append(r, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add_explicit(&n_requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n_bytes, r->len, memory_order_relaxed);
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Influxdb-Version", "1.8.10");
    MHD_add_response_header(resp, "X-Luagw-Version", "bare");
    rc = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_t *r = *con_cls;
    (void)cls, (void)c, (void)toe;
    if (!r)
        return;
    free(r->data);
    free(r);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, threads = 2, opt, sig;
    struct sockaddr_in sa;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    sigset_t set;

    while ((opt = getopt(argc, argv, "a:p:t:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bare [-a ADDR] [-p PORT] [-t THREADS]\n");
            return 2;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "bare: bad address %s\n", addr);
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, on_request, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
                         MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bare: cannot listen on %s:%d\n", addr, port);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port %u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);
    while (sigwait(&set, &sig))
        ;
    MHD_stop_daemon(d);
    printf("requests=%llu bytes=%llu\n", (unsigned long long)atomic_load(&n_requests),
           (unsigned long long)atomic_load(&n_bytes));
    return 0;
}
