/* deadletter.c — refused points: per-series counts, rate-limited log, file. */
#include "deadletter.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define SERIES_MAX 1024       /* distinct series counted; the rest under OTHER */
#define OTHER "(other series)"
#define LOG_EVERY 10.0        /* seconds between log lines */

typedef struct {
    char *name;               /* owned: the measurement as written in line protocol */
    uint64_t count;
    uint64_t by_reason[GW_DL_NREASONS];
} series_t;

static const char *const reason_names[GW_DL_NREASONS] = {
    [GW_DL_REFUSED] = "refused",           [GW_DL_TOO_LARGE] = "too_large",
    [GW_DL_SERVER_ERROR] = "server_error", [GW_DL_NO_ANSWER] = "no_answer",
    [GW_DL_UNREADABLE] = "unreadable_answer", [GW_DL_UNRESOLVED] = "unresolved",
};

static struct {
    pthread_mutex_t mu;
    FILE *file;               /* owned, or NULL */
    char *path;               /* owned, or NULL */
    series_t series[SERIES_MAX];
    size_t nseries;
    series_t other;           /* the series beyond SERIES_MAX; name unused */
    uint64_t total;
    uint64_t by_reason[GW_DL_NREASONS];
    gw_log_limit_t lim;       /* the log lines on refused points */
    uint64_t held;            /* points refused since the last log line */
    char held_why[256];
    long held_status;
    int held_reason;
} dl = {.mu = PTHREAD_MUTEX_INITIALIZER};

int gw_deadletter_open(const char *path, char *err, size_t errlen)
{
    pthread_mutex_lock(&dl.mu);
    if (path && *path) {
        dl.file = fopen(path, "a");
        if (!dl.file) {
            snprintf(err, errlen, "monitoring.dead_letter %s: %s", path, strerror(errno));
            pthread_mutex_unlock(&dl.mu);
            return -1;
        }
        dl.path = strdup(path);
    }
    atomic_store(&dl.lim.last_ns, 0); /* the first refusal is logged at once */
    pthread_mutex_unlock(&dl.mu);
    return 0;
}

/* The measurement of a line: up to the first unescaped ',' or ' '. */
static size_t measurement_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\n')
        i += p[i] == '\\' && i + 1 < n ? 2 : 1;
    return i < n ? i : n;
}

/* The counters of series name (n bytes), added on first use. mu held. */
static series_t *series_of(const char *name, size_t n)
{
    char *copy;

    for (size_t i = 0; i < dl.nseries; i++)
        if (strlen(dl.series[i].name) == n && memcmp(dl.series[i].name, name, n) == 0)
            return &dl.series[i];
    if (dl.nseries < SERIES_MAX && (copy = strndup(name, n)) != NULL) {
        series_t *s = &dl.series[dl.nseries++];
        memset(s, 0, sizeof(*s));
        s->name = copy;
        return s;
    }
    return &dl.other;
}

/* One line, printable: quotes and newlines would break the log format. */
static void clean(char *out, size_t outlen, const char *in)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < outlen; i++)
        out[j++] = in[i] == '"' ? '\'' : (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
    out[j] = 0;
}

void gw_deadletter_add(const char *lines, const uint32_t *ends, uint32_t from, uint32_t to, long status,
                       int reason, const char *why)
{
    size_t start = from ? ends[from - 1] : 0;
    const char *rname;
    char text[256], first[128];

    if (from >= to)
        return;
    if (reason < 0 || reason >= GW_DL_NREASONS)
        reason = GW_DL_REFUSED;
    rname = reason_names[reason];
    clean(text, sizeof(text), why ? why : "");
    pthread_mutex_lock(&dl.mu);
    for (uint32_t i = from; i < to; i++) {
        size_t b = i ? ends[i - 1] : 0;
        series_t *s = series_of(lines + b, measurement_len(lines + b, ends[i] - b));
        s->count++;
        s->by_reason[reason]++;
    }
    dl.total += to - from;
    dl.by_reason[reason] += to - from;
    if (dl.file) {
        char stamp[40];
        gw_clock_utc(stamp, sizeof(stamp), gw_clock_wall_ns());
        fprintf(dl.file, "# %s status=%ld reason=%s error=\"%s\"\n", stamp, status, rname, text);
        fwrite(lines + start, 1, ends[to - 1] - start, dl.file);
        static gw_log_limit_t lim = GW_LOG_LIMIT_INIT; /* a full disk fails every batch */
        if (fflush(dl.file))
            gw_log_limited(&lim, 1.0, GW_LOG_ERROR, "cannot write the dead-letter file", "path=\"%s\" error=\"%s\"",
                           dl.path, strerror(errno));
    }
    dl.held += to - from;
    snprintf(dl.held_why, sizeof(dl.held_why), "%s", text);
    dl.held_status = status;
    dl.held_reason = reason;
    if (gw_log_limit_pass(&dl.lim, LOG_EVERY, 0)) {
        size_t m = measurement_len(lines + start, ends[from] - start);
        snprintf(first, sizeof(first), "%.*s", (int)(m < 100 ? m : 100), lines + start);
        clean(first, sizeof(first), first);
        gw_log_error("influx refused points for good",
                     "points=%llu total=%llu series=\"%s\" status=%ld reason=%s error=\"%s\"%s%s%s",
                     (unsigned long long)dl.held, (unsigned long long)dl.total, first, status, rname, text,
                     dl.file ? " dead_letter=\"" : "", dl.file ? dl.path : "", dl.file ? "\"" : "");
        dl.held = 0;
    }
    pthread_mutex_unlock(&dl.mu);
}

/* {"name": count, ...} of counter k (-1: all reasons). mu held. */
static void series_json(gw_jsonw_t *w, int k)
{
    gw_jsonw_begin_object(w);
    for (size_t i = 0; i <= dl.nseries; i++) {
        const series_t *e = i < dl.nseries ? &dl.series[i] : &dl.other;
        uint64_t v = k < 0 ? e->count : e->by_reason[k];
        if (v)
            gw_jsonw_member_uint(w, i < dl.nseries ? e->name : OTHER, v);
    }
    gw_jsonw_end(w);
}

void gw_deadletter_json(gw_jsonw_t *w)
{
    pthread_mutex_lock(&dl.mu);
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "points", dl.total);
    gw_jsonw_member_string(w, "file", dl.path);
    gw_jsonw_key(w, "series");
    series_json(w, -1);
    gw_jsonw_key(w, "reasons");
    gw_jsonw_begin_object(w);
    for (int k = 0; k < GW_DL_NREASONS; k++)
        if (dl.by_reason[k]) {
            gw_jsonw_key(w, reason_names[k]);
            gw_jsonw_begin_object(w);
            gw_jsonw_member_uint(w, "points", dl.by_reason[k]);
            gw_jsonw_key(w, "series");
            series_json(w, k);
            gw_jsonw_end(w);
        }
    gw_jsonw_end(w);
    gw_jsonw_end(w);
    pthread_mutex_unlock(&dl.mu);
}

/* Log the points held back by the rate limit. mu held. */
static void log_held(void)
{
    if (!dl.held)
        return;
    gw_log_error("influx refused points for good", "points=%llu total=%llu status=%ld reason=%s error=\"%s\"",
                 (unsigned long long)dl.held, (unsigned long long)dl.total, dl.held_status,
                 reason_names[dl.held_reason], dl.held_why);
    dl.held = 0;
    gw_log_limit_pass(&dl.lim, LOG_EVERY, 1);
}

double gw_deadletter_due(void)
{
    double due;

    pthread_mutex_lock(&dl.mu);
    due = dl.held ? gw_log_limit_next(&dl.lim, LOG_EVERY) : 0;
    pthread_mutex_unlock(&dl.mu);
    return due;
}

void gw_deadletter_tick(void)
{
    pthread_mutex_lock(&dl.mu);
    if (dl.held && gw_log_limit_pass(&dl.lim, LOG_EVERY, 0))
        log_held();
    pthread_mutex_unlock(&dl.mu);
}

void gw_deadletter_close(void)
{
    pthread_mutex_lock(&dl.mu);
    log_held();
    if (dl.file)
        fclose(dl.file);
    dl.file = NULL;
    free(dl.path);
    dl.path = NULL;
    for (size_t i = 0; i < dl.nseries; i++)
        free(dl.series[i].name);
    dl.nseries = 0;
    memset(&dl.other, 0, sizeof(dl.other));
    memset(dl.by_reason, 0, sizeof(dl.by_reason));
    dl.total = dl.held = 0;
    pthread_mutex_unlock(&dl.mu);
}
