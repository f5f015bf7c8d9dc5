/* status.c — the state GET /status shows, see status.h.
 *
 * One lock guards everything here (the tracks, the last errors, the
 * outputs' and the reload's notes); it is taken once a second by the
 * sampler, once per rejected point or script error, once per write attempt
 * and once per /status.json, never on the path of an accepted point. The
 * sampler reads the series table under its own lock (gw_series_each) and
 * takes this one inside it, as gw_status_json does: always in that order. */
#include "status.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
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
static json_t *time_json(double t)
{
    return t > 0 ? json_real(t) : json_null();
}

/* The track's rate history, oldest first, and its mean over the last 5 s
 * (the figure the page shows as points/s), under the lock. */
static json_t *history_json(const track_t *t, double *rate)
{
    json_t *a = json_array();
    uint64_t n = tick < GW_STATUS_HISTORY ? tick : GW_STATUS_HISTORY, sum = 0;

    for (uint64_t i = tick - n; i < tick; i++) {
        uint32_t v = t->rate[i % GW_STATUS_HISTORY];
        json_array_append_new(a, json_integer(v));
        if (i + 5 >= tick)
            sum += v;
    }
    *rate = n ? (double)sum / (double)(n < 5 ? n : 5) : 0;
    return a;
}

typedef struct {
    json_t *series; /* borrowed: the array filled */
    json_t *script; /* borrowed: gw_script_stats_json's "series", or NULL */
} each_t;

static void series_entry(const gw_series_slot_t *s, void *ud)
{
    each_t *x = ud;
    char name[4 * GW_SERIES_NAME_MAX + 8];
    json_t *o, *se;
    track_t *t;
    double rate = 0;
    uint64_t errors = 0;

    gw_utf8_echo(name, sizeof(name), s->name, s->len);
    se = x->script ? json_object_get(x->script, name) : NULL;
    errors = (uint64_t)(json_integer_value(json_object_get(se, "errors")) +
                        json_integer_value(json_object_get(se, "timeouts")) +
                        json_integer_value(json_object_get(se, "memory")));
    o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", name, "received",
                  (json_int_t)s->v[GW_S_RECEIVED], "accepted", (json_int_t)s->v[GW_S_ACCEPTED], "rejected",
                  (json_int_t)s->v[GW_S_REJECTED], "written", (json_int_t)s->v[GW_S_WRITTEN], "dropped",
                  (json_int_t)s->v[GW_S_DROPPED], "script_errors", (json_int_t)errors);
    if (!o)
        return;
    pthread_mutex_lock(&lock);
    t = track_of(s->name, s->len, 0);
    json_object_set_new(o, "history", t ? history_json(t, &rate) : json_array());
    json_object_set_new(o, "rate", json_real(rate));
    json_object_set_new(o, "last_error",
                        t && t->error_time ? json_pack("{s:f, s:s, s:s}", "time", t->error_time, "kind",
                                                       t->error_kind, "message", t->error)
                                           : json_null());
    pthread_mutex_unlock(&lock);
    json_array_append_new(x->series, o);
}

/* The output: today the one monitoring: section. */
static json_t *outputs_json(const gw_config_t *cfg, gw_queue_t *q)
{
    gw_spool_t *sp = gw_queue_spool(q);
    long refusing = (long)GW_GET(influx_refusing);
    const char *host = cfg->monitoring.host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    char url[600];
    json_t *o;

    snprintf(url, sizeof(url), "%s://%s%s%s:%d", cfg->monitoring.use_ssl ? "https" : "http", v6 ? "[" : "",
             host, v6 ? "]" : "", cfg->monitoring.port);
    o = json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I}", "name", "monitoring", "url", url, "target",
                  cfg->monitoring.version == 2 ? cfg->monitoring.bucket : cfg->monitoring.database,
                  "queue_points", (json_int_t)gw_queue_points(q), "queue_bytes", (json_int_t)gw_queue_bytes(q),
                  "spool_bytes", (json_int_t)(sp ? gw_spool_bytes(sp) : 0));
    if (!o)
        return NULL;
    pthread_mutex_lock(&lock);
    json_object_set_new(o, "state",
                        json_string(refusing ? "refusing" : !output.ok_time && !output.fail_time ? "idle"
                                    : GW_GET(healthy) ? "healthy" : "retrying"));
    json_object_set_new(o, "last_success", time_json(output.ok_time));
    json_object_set_new(o, "last_failure",
                        output.fail_time ? json_pack("{s:f, s:I, s:s}", "time", output.fail_time, "status",
                                                     (json_int_t)output.fail_status, "reason", output.fail_reason)
                                         : json_null());
    pthread_mutex_unlock(&lock);
    return json_pack("[o]", o);
}

/* "scripts": loaded, errors so far, the last reload. */
static json_t *scripts_json(json_t *stats)
{
    json_t *o;

    pthread_mutex_lock(&lock);
    o = json_pack("{s:i, s:o}", "loaded", scripts_loaded, "last_reload",
                  reload.time ? json_pack("{s:f, s:b, s:s}", "time", reload.time, "ok", reload.ok, "error",
                                          reload.reason)
                              : json_null());
    pthread_mutex_unlock(&lock);
    if (o && stats)
        json_object_set(o, "errors", json_object_get(stats, "total"));
    return o;
}

char *gw_status_json(const gw_config_t *cfg, gw_queue_t *q)
{
    char *st = gw_script_stats_json(), *text = NULL;
    json_t *stats = st ? json_loads(st, 0, NULL) : NULL;
    json_t *o;
    each_t x = {json_array(), json_object_get(stats, "series")};
    double now = wall_now();

    free(st);
    gw_series_each(series_entry, &x);
    pthread_mutex_lock(&lock);
    o = json_pack("{s:s, s:s, s:f, s:f, s:f, s:s, s:i}", "name", "luagw", "version", GW_VERSION, "now", now,
                  "started", started, "uptime_seconds", started ? now - started : 0.0, "config", config_path,
                  "history_seconds", GW_STATUS_HISTORY);
    pthread_mutex_unlock(&lock);
    if (o) {
        json_object_set_new(o, "buffer",
                            json_pack("{s:I, s:I, s:I, s:I}", "points", (json_int_t)gw_queue_points(q), "limit",
                                      (json_int_t)cfg->monitoring.buffer_limit, "bytes",
                                      (json_int_t)gw_queue_bytes(q), "limit_bytes",
                                      (json_int_t)gw_queue_limit_bytes(q)));
        json_object_set_new(o, "outputs", outputs_json(cfg, q));
        json_object_set_new(o, "scripts", scripts_json(stats));
        json_object_set(o, "series", x.series);
        text = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    json_decref(x.series);
    json_decref(stats);
    return text;
}
