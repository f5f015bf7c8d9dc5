/* query.c — /query passed through to InfluxDB, see query.h.
 *
 * A query is shared by three holders, each with a reference: its thread
 * (the libcurl transfer), the request (until on_completed) and, once the
 * answer has begun, the libmicrohttpd response. Its lock guards the ring,
 * the flags and the connection; the connection is suspended and resumed
 * only under it, so a resume always follows its suspend. */
#include "query.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "target.h"
#include "utf8.h"

/* InfluxDB's answer headers passed on to the client. */
static const char *const passed_headers[] = {"X-Influxdb-Build", "X-Influxdb-Error", "Request-Id", "X-Request-Id"};
#define NPASSED (sizeof(passed_headers) / sizeof(passed_headers[0]))

struct gw_query {
    pthread_mutex_t mu;
    pthread_cond_t room;          /* the ring has room, or the query is cancelled */
    atomic_int refs;
    struct MHD_Connection *conn;  /* borrowed; NULL once the request has ended */
    int fd;                       /* conn's socket, looked at only while conn is suspended */
    int suspended;                /* conn waits for this query */
    int cancelled;                /* the client went, or luagw stops */
    int answered;                 /* InfluxDB's final status and headers are in */
    int done;                     /* the transfer is over */
    CURLcode rc;                  /* its result, once done */
    long status;
    char ctype[128];
    char passed[NPASSED][160];    /* values of passed_headers, "" = none */
    char err[CURL_ERROR_SIZE];
    char *ring;                   /* owned: GW_QUERY_BUF bytes */
    size_t head, len;             /* the bytes in the ring: len from head, wrapping */
    CURL *curl;                   /* owned */
    struct curl_slist *headers;   /* owned */
    char *url;                    /* owned */
    gw_buf_t body;                /* owned: the form body to POST, or empty for a GET */
    int post;
    char where[300];              /* InfluxDB's address, for messages */
    gw_query_t *next;             /* the registry */
};

/* Every query whose thread runs. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_empty = PTHREAD_COND_INITIALIZER;
static gw_query_t *running;
static int nrunning;

static void release(gw_query_t *q)
{
    if (atomic_fetch_sub(&q->refs, 1) != 1)
        return;
    curl_easy_cleanup(q->curl);
    curl_slist_free_all(q->headers);
    free(q->url);
    free(q->ring);
    gw_buf_free(&q->body);
    pthread_cond_destroy(&q->room);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Under q->mu: let the client's connection go on if it waits for us. */
static void wake(gw_query_t *q)
{
    if (q->suspended && q->conn) {
        q->suspended = 0;
        MHD_resume_connection(q->conn);
    }
}

/* Under q->mu: wait for the transfer (suspend the connection). */
static void sleep_conn(gw_query_t *q)
{
    if (!q->suspended && q->conn) {
        q->suspended = 1;
        MHD_suspend_connection(q->conn);
    }
}

/* ------------------------------------------------------------ the transfer */

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    gw_query_t *q = ud;
    size_t len = size * n, k = len;
    const char *colon;

    while (k && (line[k - 1] == '\r' || line[k - 1] == '\n'))
        k--;
    pthread_mutex_lock(&q->mu);
    if (k == 0) { /* the end of a header block: a 1xx one is followed by another */
        curl_easy_getinfo(q->curl, CURLINFO_RESPONSE_CODE, &q->status);
        if (q->status >= 200) {
            q->answered = 1;
            wake(q);
        }
    } else if (!strncmp(line, "HTTP/", 5)) {
        q->ctype[0] = '\0';
        for (size_t i = 0; i < NPASSED; i++)
            q->passed[i][0] = '\0';
    } else if ((colon = memchr(line, ':', k))) {
        size_t nk = (size_t)(colon - line), nv;
        const char *v = colon + 1;
        char *dst = NULL;
        while (v < line + k && (*v == ' ' || *v == '\t'))
            v++;
        nv = (size_t)(line + k - v);
        if (nk == 12 && !strncasecmp(line, "Content-Type", 12))
            dst = q->ctype;
        for (size_t i = 0; i < NPASSED && !dst; i++)
            if (nk == strlen(passed_headers[i]) && !strncasecmp(line, passed_headers[i], nk))
                dst = q->passed[i];
        if (dst) /* made valid UTF-8 and control-free, as anything echoed (utf8.h) */
            gw_utf8_echo(dst, dst == q->ctype ? sizeof(q->ctype) : sizeof(q->passed[0]), v, nv);
    }
    pthread_mutex_unlock(&q->mu);
    return len;
}

/* InfluxDB's body: into the ring, waiting while it is full. */
static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    gw_query_t *q = ud;
    size_t total = size * n, put = 0;

    pthread_mutex_lock(&q->mu);
    if (!q->answered) { /* a body without the end of the headers seen: cannot happen, but be sure */
        curl_easy_getinfo(q->curl, CURLINFO_RESPONSE_CODE, &q->status);
        q->answered = 1;
    }
    while (put < total) {
        size_t at, room;
        while (q->len == GW_QUERY_BUF && !q->cancelled) {
            wake(q);
            pthread_cond_wait(&q->room, &q->mu);
        }
        if (q->cancelled)
            break;
        at = (q->head + q->len) % GW_QUERY_BUF;
        room = GW_QUERY_BUF - q->len;
        if (room > GW_QUERY_BUF - at)
            room = GW_QUERY_BUF - at; /* up to the ring's end; the rest on the next turn */
        if (room > total - put)
            room = total - put;
        memcpy(q->ring + at, p + put, room);
        q->len += room;
        put += room;
        wake(q);
    }
    pthread_mutex_unlock(&q->mu);
    return put; /* short when cancelled: libcurl stops */
}

/* Called by libcurl at least once a second, also while it waits: stop a
 * cancelled query even when InfluxDB sends nothing, and one whose client
 * has gone. libmicrohttpd does not watch a suspended connection, so its
 * socket is peeked at here; only while suspended, when nothing else
 * touches it (and it cannot be closed: see gw_query_stop_all). */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    gw_query_t *q = ud;
    int stop;
    char c;

    pthread_mutex_lock(&q->mu);
    if (!q->cancelled && q->suspended && q->conn && q->fd >= 0) {
        ssize_t n = recv(q->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            q->cancelled = 1;
    }
    stop = q->cancelled;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

/* q's thread has ended (or never started): out of the registry. */
static void unregister(gw_query_t *q)
{
    pthread_mutex_lock(&reg_lock);
    for (gw_query_t **p = &running; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
    if (--nrunning == 0)
        pthread_cond_broadcast(&reg_empty);
    pthread_mutex_unlock(&reg_lock);
}

static void *transfer(void *arg)
{
    gw_query_t *q = arg;
    CURLcode rc = curl_easy_perform(q->curl);

    pthread_mutex_lock(&q->mu);
    q->done = 1;
    q->rc = rc;
    if (rc == CURLE_OK && !q->answered) {
        curl_easy_getinfo(q->curl, CURLINFO_RESPONSE_CODE, &q->status);
        q->answered = q->status >= 200;
    }
    wake(q);
    pthread_mutex_unlock(&q->mu);

    unregister(q);
    release(q);
    return NULL;
}

/* ------------------------------------------------------------ the request */

typedef struct {
    gw_buf_t *url;  /* the query string built */
    CURL *curl;
    int n;
    int failed;
} args_t;

/* Append key=value (both escaped) to the query string, unless the key is u
 * or p: luagw's credentials stay here. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    args_t *a = cls;
    char *k, *v;

    if (!strcmp(key, "u") || !strcmp(key, "p"))
        return MHD_YES;
    k = curl_easy_escape(a->curl, key, 0);
    v = curl_easy_escape(a->curl, value ? value : "", 0);
    if (!k || !v || gw_buf_printf(a->url, "%s%s=%s", a->n++ ? "&" : "", k, v))
        a->failed = 1;
    curl_free(k);
    curl_free(v);
    return MHD_YES;
}

/* The form body without its u and p pairs, into out; the value of db (URL
 * decoded, malloc'd) into *db when there is one. 0 or -ENOMEM. */
static int strip_form(CURL *curl, const char *body, size_t len, gw_buf_t *out, char **db)
{
    const char *p = body, *e = body + len;
    int n = 0;

    while (p < e) {
        const char *amp = memchr(p, '&', (size_t)(e - p)), *end = amp ? amp : e;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        size_t nk = (size_t)((eq ? eq : end) - p);
        if (nk == 2 && !memcmp(p, "db", 2) && eq && !*db) {
            int dn = 0;
            char *d = curl_easy_unescape(curl, eq + 1, (int)(end - eq - 1), &dn);
            if (!d || !(*db = strndup(d, (size_t)dn))) {
                curl_free(d);
                return -ENOMEM;
            }
            curl_free(d);
        }
        if (!(nk == 1 && (*p == 'u' || *p == 'p')) && end > p) {
            if ((n++ && gw_buf_append(out, "&", 1)) || gw_buf_append(out, p, (size_t)(end - p)))
                return -ENOMEM;
        }
        p = end + 1;
    }
    return 0;
}

/* q's URL: the output's /query with c's parameters but u and p; also its
 * address for messages (q->where). 0 or -ENOMEM. */
static int build_url(gw_query_t *q, struct MHD_Connection *c, const gw_target_t *t)
{
    gw_buf_t url = {0};
    int v6 = strchr(t->host, ':') != NULL && t->host[0] != '[';
    args_t a = {&url, q->curl, 0, 0};

    snprintf(q->where, sizeof(q->where), "%s://%s%s%s:%d", t->use_ssl ? "https" : "http", v6 ? "[" : "", t->host,
             v6 ? "]" : "", t->port);
    if (gw_buf_printf(&url, "%s/query?", q->where))
        goto fail;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &a);
    if (a.failed || gw_buf_append(&url, "", 1))
        goto fail;
    q->url = url.data;
    return 0;
fail:
    gw_buf_free(&url);
    return -ENOMEM;
}

/* q's method, body, request headers, the output's credentials and TLS.
 * 0 or -ENOMEM. */
static int set_request(gw_query_t *q, const gw_target_t *t, const char *ctype)
{
    char line[600];

    if (q->post) {
        snprintf(line, sizeof(line), "Content-Type: %s", ctype ? ctype : "application/x-www-form-urlencoded");
        if (!(q->headers = curl_slist_append(q->headers, line)))
            return -ENOMEM;
        curl_easy_setopt(q->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(q->curl, CURLOPT_POSTFIELDS, q->body.data ? q->body.data : "");
        curl_easy_setopt(q->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body.len);
    }
    if (t->token[0]) {
        snprintf(line, sizeof(line), "Authorization: Token %s", t->token);
        if (!(q->headers = curl_slist_append(q->headers, line)))
            return -ENOMEM;
    } else if (t->user[0]) {
        curl_easy_setopt(q->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(q->curl, CURLOPT_USERNAME, t->user);
        curl_easy_setopt(q->curl, CURLOPT_PASSWORD, t->password);
    }
    if (t->use_ssl) {
        curl_easy_setopt(q->curl, CURLOPT_SSL_VERIFYPEER, t->tls_verify ? 1L : 0L);
        curl_easy_setopt(q->curl, CURLOPT_SSL_VERIFYHOST, t->tls_verify ? 2L : 0L);
        if (t->tls_ca[0])
            curl_easy_setopt(q->curl, CURLOPT_CAINFO, t->tls_ca);
    }
    /* No Expect: 100-continue for a body: it would cost a round trip. */
    if (!(q->headers = curl_slist_append(q->headers, "Expect:")))
        return -ENOMEM;
    curl_easy_setopt(q->curl, CURLOPT_HTTPHEADER, q->headers);
    return 0;
}

/* Set up q's transfer for target t. 0 or -ENOMEM. */
static int prepare(gw_query_t *q, struct MHD_Connection *c, const gw_target_t *t, const char *ctype)
{
    if (build_url(q, c, t) || set_request(q, t, ctype))
        return -ENOMEM;
    curl_easy_setopt(q->curl, CURLOPT_URL, q->url);
    curl_easy_setopt(q->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->connect_timeout * 1000));
    curl_easy_setopt(q->curl, CURLOPT_TCP_NODELAY, 1L);
    /* A query where no byte moves (InfluxDB silent, or the client not
     * reading) ends after this. */
    curl_easy_setopt(q->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(q->curl, CURLOPT_LOW_SPEED_TIME, (long)GW_QUERY_STALL_SECONDS);
    curl_easy_setopt(q->curl, CURLOPT_USERAGENT, "luagw");
    curl_easy_setopt(q->curl, CURLOPT_ERRORBUFFER, q->err);
    curl_easy_setopt(q->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(q->curl, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(q->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(q->curl, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(q->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(q->curl, CURLOPT_XFERINFODATA, q);
    return 0;
}

/* A new query for c, not yet running: NULL when out of memory. */
static gw_query_t *query_new(struct MHD_Connection *c, int post)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    gw_query_t *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->room, NULL);
    atomic_init(&q->refs, 1);
    q->conn = c;
    q->fd = ci ? ci->connect_fd : -1;
    q->post = post;
    q->ring = malloc(GW_QUERY_BUF);
    q->curl = curl_easy_init();
    if (!q->ring || !q->curl) {
        release(q);
        return NULL;
    }
    return q;
}

/* Run q in a thread of its own, its connection suspended until it answers.
 * 0, or 503 when GW_QUERY_MAX queries run (q is then not taken). */
static int launch(gw_query_t *q)
{
    pthread_t th;
    pthread_attr_t attr;
    int busy, rc;

    pthread_mutex_lock(&reg_lock);
    busy = nrunning >= GW_QUERY_MAX;
    if (!busy) {
        nrunning++;
        atomic_fetch_add(&q->refs, 1); /* the thread's */
        q->next = running;
        running = q;
    }
    pthread_mutex_unlock(&reg_lock);
    if (busy)
        return 503;
    /* Suspended before the thread starts, so that its resume follows. */
    pthread_mutex_lock(&q->mu);
    sleep_conn(q);
    pthread_mutex_unlock(&q->mu);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &attr, transfer, q);
    pthread_attr_destroy(&attr);
    if (rc) { /* answered as a failed transfer (502) once resumed */
        pthread_mutex_lock(&q->mu);
        q->done = 1;
        q->rc = CURLE_FAILED_INIT;
        snprintf(q->err, sizeof(q->err), "cannot start a thread");
        wake(q);
        pthread_mutex_unlock(&q->mu);
        unregister(q);
        release(q); /* the thread's */
    }
    return 0;
}

int gw_query_start(gw_outputs_t *outs, struct MHD_Connection *c, const gw_tenant_t *tn, int post,
                   const char *body, size_t len, gw_query_t **out, char *err, size_t errlen)
{
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *udb = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "db");
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    int form = post && (!ctype || !strncasecmp(ctype, "application/x-www-form-urlencoded", 33));
    gw_query_t *q;
    char *db = NULL, safe[200];
    const char *name;
    gw_target_t t;
    int status = 0;

    if (post && enc && strcasecmp(enc, "identity") != 0) {
        snprintf(err, errlen, "Content-Encoding: %s is not taken on /query (send the form as it is)",
                 gw_utf8_echo(safe, sizeof(safe), enc, strlen(enc)));
        return 415;
    }
    /* InfluxDB reads a POST's form body before its URL: so does this. */
    if (!(q = query_new(c, post)) || (form ? strip_form(q->curl, body ? body : "", len, &q->body, &db)
                    : post && len && gw_buf_append(&q->body, body, len))) {
        status = 503;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    name = db ? db : udb ? udb : "";
    if (gw_target_for_db(outs, name, &t))
        status = 404;
    else if (!gw_target_may_read(tn, name))
        status = 403;
    if (status) {
        snprintf(err, errlen, "db: %s \"%s\"",
                 status == 404 ? "no output takes database" : "this token may not read database",
                 gw_utf8_echo(safe, sizeof(safe), name, strlen(name)));
        goto out;
    }
    if (prepare(q, c, &t, ctype)) {
        status = 503;
        snprintf(err, errlen, "out of memory");
    } else if ((status = launch(q))) {
        snprintf(err, errlen, "too many queries in progress (%d): try again", GW_QUERY_MAX);
    }
out:
    free(db);
    if (status && q)
        release(q);
    if (!status)
        *out = q;
    return status;
}

/* ------------------------------------------------------------ the answer */

/* libmicrohttpd asks for more of the body: what the ring holds, the end, or
 * (empty) nothing yet, the connection suspended until more comes. */
static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    gw_query_t *q = cls;
    ssize_t n;

    pthread_mutex_lock(&q->mu);
    if (q->len) {
        size_t k = q->len < max ? q->len : max;
        if (k > GW_QUERY_BUF - q->head)
            k = GW_QUERY_BUF - q->head;
        memcpy(buf, q->ring + q->head, k);
        q->head = (q->head + k) % GW_QUERY_BUF;
        q->len -= k;
        pthread_cond_signal(&q->room);
        n = (ssize_t)k;
    } else if (q->done) {
        /* Cut short: the client must not take a part for the whole. */
        n = q->rc == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        sleep_conn(q);
        n = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void on_response_free(void *cls)
{
    release(cls);
}

struct MHD_Response *gw_query_response(gw_query_t *q, unsigned *status, const char **ctype, char *err,
                                       size_t errlen)
{
    struct MHD_Response *r = NULL;

    pthread_mutex_lock(&q->mu);
    *status = 0;
    *ctype = NULL;
    if (!q->answered && !q->done) {
        sleep_conn(q); /* woken early: wait on */
    } else if (!q->answered) {
        *status = 502;
        snprintf(err, errlen, "query: InfluxDB at %s did not answer: %s", q->where,
                 q->err[0] ? q->err : curl_easy_strerror(q->rc));
    } else if ((r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 << 10, on_read, q, on_response_free))) {
        atomic_fetch_add(&q->refs, 1); /* the response's */
        for (size_t i = 0; i < NPASSED; i++)
            if (q->passed[i][0])
                MHD_add_response_header(r, passed_headers[i], q->passed[i]);
        *status = (unsigned)q->status;
        *ctype = q->ctype[0] ? q->ctype : NULL;
    } else {
        *status = 503;
        snprintf(err, errlen, "out of memory");
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

void gw_query_end(gw_query_t *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->cancelled = 1;
    q->conn = NULL;
    q->suspended = 0;
    pthread_cond_signal(&q->room);
    pthread_mutex_unlock(&q->mu);
    release(q);
}

void gw_query_stop_all(void)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&reg_lock);
    for (gw_query_t *q = running; q; q = q->next) {
        pthread_mutex_lock(&q->mu);
        q->cancelled = 1;
        pthread_cond_signal(&q->room);
        pthread_mutex_unlock(&q->mu);
    }
    while (nrunning > 0)
        if (pthread_cond_timedwait(&reg_empty, &reg_lock, &until))
            break;
    pthread_mutex_unlock(&reg_lock);
}
