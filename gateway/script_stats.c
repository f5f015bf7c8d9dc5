/* script_stats.c — failures of script calls, counted per series (script.h).
 *
 * One process-wide table behind a mutex: a failure is rare next to a
 * point (a lock per failure, none per point). Up to MAX_STAT_SERIES series
 * get a row of their own, in the order they first failed; the failures of
 * any further series share the row "(other)", so the table is bounded
 * whatever names clients send. A row keeps the counts per kind and the
 * last failure (script, message, wall time), which /health shows.
 * Each row has its own log limit (gw_log_limited): one line per series per
 * second, the next one saying how many were left out, so one failing
 * series cannot hide the others' lines. */
#include "script_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "status.h"

#define MAX_STAT_SERIES 1024 /* rows of their own, then "(other)" */

typedef struct {
    char *series; /* owned */
    size_t len;
    uint64_t count[GW_SCRIPT_FAIL_KINDS];
    char last_script[160];
    char last_message[256];
    int64_t last_ns;
    gw_log_limit_t lim; /* this series' failure lines */
} row_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static row_t rows[MAX_STAT_SERIES + 1]; /* the last one is "(other)" */
static int nrows;
static uint64_t totals[GW_SCRIPT_FAIL_KINDS];

static const char *const fail_names[GW_SCRIPT_FAIL_KINDS] = {"error", "timeout", "memory"};

const char *gw_script_fail_name(int kind)
{
    return kind >= 0 && kind < GW_SCRIPT_FAIL_KINDS ? fail_names[kind] : "error";
}

void gw_script_log_clean(char *out, size_t outlen, const char *msg, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)msg[i];
        out[k++] = c == '"' ? '\'' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[k] = '\0';
}

/* The row of series (found, added, or "(other)"). Under the lock. */
static row_t *row_of(gw_str_t series)
{
    row_t *r;

    for (int i = 0; i < nrows; i++)
        if (rows[i].len == series.n && memcmp(rows[i].series, series.p, series.n) == 0)
            return &rows[i];
    if (nrows < MAX_STAT_SERIES && (rows[nrows].series = strndup(series.p, series.n))) {
        rows[nrows].len = series.n;
        return &rows[nrows++];
    }
    r = &rows[MAX_STAT_SERIES];
    if (!r->series && (r->series = strdup("(other)")))
        r->len = 7;
    return r;
}

void gw_script_stats_note(gw_str_t series, int kind, const char *script, const char *msg, int dropped)
{
    gw_log_limit_t *lim;
    row_t *r;
    char s[128], m[sizeof(rows[0].last_message)], sm[GW_STATUS_MSG_MAX];

    if (kind < 0 || kind >= GW_SCRIPT_FAIL_KINDS)
        kind = GW_SCRIPT_FAIL_ERROR;
    gw_script_log_clean(s, sizeof(s), series.p, series.n);
    gw_script_log_clean(m, sizeof(m), msg, strlen(msg));
    pthread_mutex_lock(&lock);
    totals[kind]++;
    r = row_of(series);
    r->count[kind]++;
    snprintf(r->last_script, sizeof(r->last_script), "%s", script);
    snprintf(r->last_message, sizeof(r->last_message), "%s", m);
    r->last_ns = gw_clock_wall_ns();
    lim = &r->lim; /* rows stay where they are until exit */
    pthread_mutex_unlock(&lock);
    snprintf(sm, sizeof(sm), "%s: %s", script, m);
    gw_status_error(series.p, series.n, "script", sm);
    gw_log_limited(lim, 1.0, GW_LOG_WARN,
                   kind == GW_SCRIPT_FAIL_TIMEOUT  ? "script timeout"
                   : kind == GW_SCRIPT_FAIL_MEMORY ? "script memory limit"
                                                   : "script error",
                   "series=\"%s\" script=%s error=\"%s\" point=%s", s, script, m, dropped ? "dropped" : "passed");
}

int gw_script_stats_snapshot(gw_script_stats_t *out)
{
    int rc = 0;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&lock);
    memcpy(out->total, totals, sizeof(totals));
    out->series = calloc((size_t)nrows + 1, sizeof(*out->series));
    if (!out->series)
        rc = -ENOMEM;
    for (int i = 0; !rc && i <= MAX_STAT_SERIES; i++) {
        const row_t *r = &rows[i];
        gw_script_stat_t *o = &out->series[out->n];
        if ((i >= nrows && i != MAX_STAT_SERIES) || !r->series)
            continue;
        if (!(o->series = strdup(r->series))) {
            rc = -ENOMEM;
            break;
        }
        memcpy(o->count, r->count, sizeof(o->count));
        memcpy(o->last_script, r->last_script, sizeof(o->last_script));
        memcpy(o->last_message, r->last_message, sizeof(o->last_message));
        o->last_ns = r->last_ns;
        out->n++;
    }
    pthread_mutex_unlock(&lock);
    if (rc)
        gw_script_stats_free(out);
    return rc;
}

void gw_script_stats_free(gw_script_stats_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        free(st->series[i].series);
    free(st->series);
    memset(st, 0, sizeof(*st));
}

/* The rows live as long as the process, or the library when a spec loads
 * it through the FFI and unloads it at exit. */
__attribute__((destructor)) static void rows_free(void)
{
    for (int i = 0; i <= MAX_STAT_SERIES; i++) {
        free(rows[i].series);
        rows[i].series = NULL;
    }
    nrows = 0;
}
