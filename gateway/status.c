/* status.c — the state GET /status shows, see status.h.
 *
 * One lock guards everything here (the tracks, the last errors, the
 * outputs' and the reload's notes); it is taken once a second by the
 * sampler, once per rejected point or script error, once per write attempt
 * and once per /status.json, never on the path of an accepted point. The
 * sampler reads the series table under its own lock (gw_series_each) and
 * takes this one inside it, as gw_status_json does: always in that order. */
#include "status.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "jsonw.h"
#include "metrics.h"
#include "script.h"
#include "spool.h"
#include "utf8.h"
#include "version.h"

/* One series followed: its rate per second, and its last error. */
typedef struct {
    char name[GW_SERIES_NAME_MAX + 1];
    size_t len;                       /* 0: the track is free */
    uint64_t last;                    /* accepted, at the last sample */
    int unsampled;                    /* taken for an error: last is not known yet */
    uint32_t rate[GW_STATUS_HISTORY]; /* points accepted in each second, a ring at pos */
    uint64_t keep_until;              /* tick from which it may be given to another series */
    double error_time;                /* unix seconds of the last error, 0 = none */
    const char *error_kind;           /* static: "rejected" or "script" */
    char error[GW_STATUS_MSG_MAX];
} track_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static track_t tracks[GW_STATUS_SERIES];
static uint64_t tick;        /* samples taken; the ring's next slot is tick % GW_STATUS_HISTORY */
static double started;       /* unix seconds */
static char config_path[1024];
static int scripts_loaded;
static struct {
    double time; /* 0 = none yet */
    int ok;
    char reason[GW_STATUS_MSG_MAX];
} reload;
static struct {
    double ok_time, fail_time; /* unix seconds, 0 = never */
    long fail_status;
    char fail_reason[GW_STATUS_MSG_MAX];
} output;

static pthread_t sampler;
static int sampler_on;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static int stopping;

static double wall_now(void)
{
    return (double)gw_clock_wall_ns() / 1e9;
}

/* The track of series name (n bytes), under the lock; with take, a free one
 * or one with nothing to show (no point and no error for the length of the
 * ring) is given to it. NULL when none. */
static track_t *track_of(const char *name, size_t n, int take)
{
    track_t *spare = NULL;

    if (n == 0 || n > GW_SERIES_NAME_MAX)
        return NULL;
    for (int i = 0; i < GW_STATUS_SERIES; i++) {
        track_t *t = &tracks[i];
        if (t->len == n && memcmp(t->name, name, n) == 0)
            return t;
        if (!spare && (t->len == 0 || t->keep_until <= tick))
            spare = t;
    }
    if (!take || !spare)
        return NULL;
    memset(spare, 0, sizeof(*spare));
    memcpy(spare->name, name, n);
    spare->len = n;
    spare->keep_until = tick + GW_STATUS_HISTORY;
    return spare;
}

/* ------------------------------------------------------------- sampling */

static void sample_slot(const gw_series_slot_t *s, void *ud)
{
    uint64_t v = atomic_load_explicit(&s->v[GW_S_ACCEPTED], memory_order_relaxed);
    uint8_t *seen = ud;
    track_t *t;
    uint64_t d;

    pthread_mutex_lock(&lock);
    t = track_of(s->name, s->len, v != 0);
    if (t) {
        /* A slot renamed (metrics.h) counts from zero again. What came
         * before the first sample, or before the first sample of a track
         * taken for an error, has no second of its own. */
        d = v >= t->last ? v - t->last : v;
        if (tick == 0 || t->unsampled)
            d = 0;
        t->unsampled = 0;
        t->last = v;
        t->rate[tick % GW_STATUS_HISTORY] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        if (d)
            t->keep_until = tick + GW_STATUS_HISTORY;
        seen[t - tracks] = 1;
    }
    pthread_mutex_unlock(&lock);
}

/* One second: each track gets the points accepted in it (0 for a series
 * the table no longer has), and the ring moves on. */
static void sample(void)
{
    uint8_t seen[GW_STATUS_SERIES] = {0};

    gw_series_each(sample_slot, seen);
    pthread_mutex_lock(&lock);
    for (int i = 0; i < GW_STATUS_SERIES; i++)
        if (!seen[i])
            tracks[i].rate[tick % GW_STATUS_HISTORY] = 0;
    tick++;
    pthread_mutex_unlock(&lock);
}

static void *sampler_main(void *arg)
{
    struct timespec at;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &at);
    pthread_mutex_lock(&lock);
    while (!stopping) {
        at.tv_sec++;
        if (pthread_cond_timedwait(&stop_cond, &lock, &at) == 0 || stopping)
            continue;
        pthread_mutex_unlock(&lock);
        sample();
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int gw_status_start(const char *path, int scripts)
{
    pthread_mutex_lock(&lock);
    started = wall_now();
    snprintf(config_path, sizeof(config_path), "%s", path ? path : "");
    scripts_loaded = scripts;
    stopping = 0;
    pthread_mutex_unlock(&lock);
    if (sampler_on)
        return 0;
    sampler_on = pthread_create(&sampler, NULL, sampler_main, NULL) == 0;
    return sampler_on ? 0 : -1;
}

void gw_status_stop(void)
{
    if (!sampler_on)
        return;
    pthread_mutex_lock(&lock);
    stopping = 1;
    pthread_cond_signal(&stop_cond);
    pthread_mutex_unlock(&lock);
    pthread_join(sampler, NULL);
    sampler_on = 0;
}

/* ---------------------------------------------------------------- notes */

/* Copy msg into out (GW_STATUS_MSG_MAX bytes) as valid UTF-8 (utf8.h). */
static void keep_msg(char *out, const char *msg)
{
    gw_utf8_echo(out, GW_STATUS_MSG_MAX, msg ? msg : "", msg ? strlen(msg) : 0);
}

void gw_status_error(const char *series, size_t n, const char *kind, const char *msg)
{
    double now = wall_now();
    track_t *t;

    pthread_mutex_lock(&lock);
    t = track_of(series, n, 1);
    if (t) {
        if (!t->error_kind && !t->last)
            t->unsampled = 1; /* taken just now: what its series accepted before is not this second's */
        t->error_time = now;
        t->keep_until = tick + GW_STATUS_HISTORY;
        t->error_kind = kind;
        keep_msg(t->error, msg);
    }
    pthread_mutex_unlock(&lock);
}

void gw_status_write(int ok, long status, const char *reason)
{
    double now = wall_now();

    pthread_mutex_lock(&lock);
    if (ok) {
        output.ok_time = now;
    } else {
        output.fail_time = now;
        output.fail_status = status;
        keep_msg(output.fail_reason, reason);
    }
    pthread_mutex_unlock(&lock);
}

void gw_status_reload(int ok, int scripts, const char *reason)
{
    double now = wall_now();

    pthread_mutex_lock(&lock);
    reload.time = now;
    reload.ok = ok;
    keep_msg(reload.reason, ok ? "" : reason);
    if (ok)
        scripts_loaded = scripts;
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------- the JSON */

/* A unix time, or null for 0 (never). */
static void put_time(gw_jsonw_t *j, const char *key, double t)
{
    gw_jsonw_key(j, key);
    if (t > 0)
        gw_jsonw_double(j, t);
    else
        gw_jsonw_null(j);
}

/* The track's rate history, oldest first, and its mean over the last 5 s
 * (the figure the page shows as points/s), under the lock. */
static void put_history(gw_jsonw_t *j, const track_t *t)
{
    uint64_t n = tick < GW_STATUS_HISTORY ? tick : GW_STATUS_HISTORY, sum = 0;

    gw_jsonw_key(j, "history");
    gw_jsonw_begin_array(j);
    for (uint64_t i = tick - n; t && i < tick; i++) {
        uint32_t v = t->rate[i % GW_STATUS_HISTORY];
        gw_jsonw_uint(j, v);
        if (i + 5 >= tick)
            sum += v;
    }
    gw_jsonw_end(j);
    gw_jsonw_member_double(j, "rate", t && n ? (double)sum / (double)(n < 5 ? n : 5) : 0);
}

typedef struct {
    gw_jsonw_t *j;                  /* borrowed: the "series" array is open */
    const gw_script_stats_t *stats; /* borrowed: script failures per series */
} each_t;

/* The script failures of series name (n bytes) in st. */
static uint64_t script_failures(const gw_script_stats_t *st, const char *name, size_t n)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < st->n; i++)
        if (strlen(st->series[i].series) == n && memcmp(st->series[i].series, name, n) == 0)
            for (int k = 0; k < GW_SCRIPT_FAIL_KINDS; k++)
                sum += st->series[i].count[k];
    return sum;
}

static void series_entry(const gw_series_slot_t *s, void *ud)
{
    each_t *x = ud;
    gw_jsonw_t *j = x->j;
    track_t *t;

    gw_jsonw_begin_object(j);
    gw_jsonw_key(j, "name");
    gw_jsonw_string_n(j, s->name, s->len);
    gw_jsonw_member_uint(j, "received", s->v[GW_S_RECEIVED]);
    gw_jsonw_member_uint(j, "accepted", s->v[GW_S_ACCEPTED]);
    gw_jsonw_member_uint(j, "rejected", s->v[GW_S_REJECTED]);
    gw_jsonw_member_uint(j, "written", s->v[GW_S_WRITTEN]);
    gw_jsonw_member_uint(j, "dropped", s->v[GW_S_DROPPED]);
    gw_jsonw_member_uint(j, "script_errors", script_failures(x->stats, s->name, s->len));
    pthread_mutex_lock(&lock);
    t = track_of(s->name, s->len, 0);
    put_history(j, t);
    gw_jsonw_key(j, "last_error");
    if (t && t->error_time) {
        gw_jsonw_begin_object(j);
        gw_jsonw_member_double(j, "time", t->error_time);
        gw_jsonw_member_string(j, "kind", t->error_kind);
        gw_jsonw_member_string(j, "message", t->error);
        gw_jsonw_end(j);
    } else {
        gw_jsonw_null(j);
    }
    pthread_mutex_unlock(&lock);
    gw_jsonw_end(j);
}

/* One output: where it writes, what it holds, its state. With a single
 * output, its last success and failure (gw_status_write); with several,
 * those are the process's and left out here (/health has each output's). */
static void put_output(gw_jsonw_t *j, gw_outputs_t *outs, int i)
{
    const gw_outconf_t *oc = gw_outputs_conf(outs, i);
    const gw_config_t *cfg = oc->cfg;
    const char *host = cfg->monitoring.host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[', single = gw_outputs_count(outs) == 1;
    int state = gw_outputs_state(outs, i);
    gw_fanout_stats_t st;
    char url[600];

    gw_fanout_stats(gw_outputs_fanout(outs), i, &st);
    snprintf(url, sizeof(url), "%s://%s%s%s:%d", cfg->monitoring.use_ssl ? "https" : "http", v6 ? "[" : "",
             host, v6 ? "]" : "", cfg->monitoring.port);
    gw_jsonw_begin_object(j);
    gw_jsonw_member_string(j, "name", oc->name);
    gw_jsonw_member_string(j, "url", url);
    gw_jsonw_member_string(j, "target",
                           cfg->monitoring.version == 2 ? cfg->monitoring.bucket : cfg->monitoring.database);
    gw_jsonw_member_uint(j, "queue_points", st.points);
    gw_jsonw_member_uint(j, "queue_bytes", st.bytes);
    gw_jsonw_member_uint(j, "spool_bytes", st.spooled ? st.bytes : 0);
    pthread_mutex_lock(&lock);
    gw_jsonw_member_string(j, "state", state == GW_OUT_REFUSING ? "refusing"
                                       : state == GW_OUT_FULL   ? "full"
                                       : state == GW_OUT_DOWN   ? "retrying"
                                       : single && !output.ok_time && !output.fail_time ? "idle"
                                                                                        : "healthy");
    put_time(j, "last_success", single ? output.ok_time : 0);
    gw_jsonw_key(j, "last_failure");
    if (single && output.fail_time) {
        gw_jsonw_begin_object(j);
        gw_jsonw_member_double(j, "time", output.fail_time);
        gw_jsonw_member_int(j, "status", output.fail_status);
        gw_jsonw_member_string(j, "reason", output.fail_reason);
        gw_jsonw_end(j);
    } else {
        gw_jsonw_null(j);
    }
    pthread_mutex_unlock(&lock);
    gw_jsonw_end(j);
}

/* The outputs (outputs:, or the one monitoring: section). */
static void put_outputs(gw_jsonw_t *j, gw_outputs_t *outs)
{
    gw_jsonw_key(j, "outputs");
    gw_jsonw_begin_array(j);
    for (int i = 0; i < gw_outputs_count(outs); i++)
        put_output(j, outs, i);
    gw_jsonw_end(j);
}

/* "scripts": loaded, errors so far, the last reload. */
static void put_scripts(gw_jsonw_t *j, const gw_script_stats_t *st)
{
    gw_jsonw_key(j, "scripts");
    gw_jsonw_begin_object(j);
    pthread_mutex_lock(&lock);
    gw_jsonw_member_int(j, "loaded", scripts_loaded);
    gw_jsonw_key(j, "last_reload");
    if (reload.time) {
        gw_jsonw_begin_object(j);
        gw_jsonw_member_double(j, "time", reload.time);
        gw_jsonw_member_bool(j, "ok", reload.ok);
        gw_jsonw_member_string(j, "error", reload.reason);
        gw_jsonw_end(j);
    } else {
        gw_jsonw_null(j);
    }
    pthread_mutex_unlock(&lock);
    gw_jsonw_key(j, "errors");
    gw_jsonw_begin_object(j);
    gw_jsonw_member_uint(j, "errors", st->total[GW_SCRIPT_FAIL_ERROR]); /* as /health names them */
    gw_jsonw_member_uint(j, "timeouts", st->total[GW_SCRIPT_FAIL_TIMEOUT]);
    gw_jsonw_member_uint(j, "memory", st->total[GW_SCRIPT_FAIL_MEMORY]);
    gw_jsonw_end(j);
    gw_jsonw_end(j);
}

/* The top: who, since when, the buffer. */
static void put_head(gw_jsonw_t *j, const gw_config_t *cfg, gw_outputs_t *outs, double now)
{
    uint64_t points, bytes, spool_bytes;

    gw_outputs_held(outs, &points, &bytes, &spool_bytes);
    gw_jsonw_member_string(j, "name", "luagw");
    gw_jsonw_member_string(j, "version", GW_VERSION);
    gw_jsonw_member_double(j, "now", now);
    pthread_mutex_lock(&lock);
    gw_jsonw_member_double(j, "started", started);
    gw_jsonw_member_double(j, "uptime_seconds", started ? now - started : 0.0);
    gw_jsonw_member_string(j, "config", config_path);
    pthread_mutex_unlock(&lock);
    gw_jsonw_member_int(j, "history_seconds", GW_STATUS_HISTORY);
    gw_jsonw_key(j, "buffer");
    gw_jsonw_begin_object(j);
    gw_jsonw_member_uint(j, "points", points);
    gw_jsonw_member_uint(j, "limit", cfg->monitoring.buffer_limit);
    gw_jsonw_member_uint(j, "bytes", bytes);
    gw_jsonw_member_uint(j, "limit_bytes", *cfg->spool.dir ? cfg->spool.max_bytes : cfg->monitoring.buffer_limit_bytes);
    gw_jsonw_end(j);
}

char *gw_status_json(const gw_config_t *cfg, gw_outputs_t *outs)
{
    gw_script_stats_t st;
    gw_buf_t out = {0};
    gw_jsonw_t j;
    each_t x = {&j, &st};

    if (gw_script_stats_snapshot(&st))
        return NULL;
    gw_jsonw_init(&j, &out);
    gw_jsonw_begin_object(&j);
    put_head(&j, cfg, outs, wall_now());
    put_outputs(&j, outs);
    put_scripts(&j, &st);
    gw_jsonw_key(&j, "series");
    gw_jsonw_begin_array(&j);
    gw_series_each(series_entry, &x);
    gw_jsonw_end(&j);
    gw_jsonw_end(&j);
    gw_script_stats_free(&st);
    if (gw_jsonw_finish(&j)) {
        gw_buf_free(&out);
        return NULL;
    }
    return out.data;
}
