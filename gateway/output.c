/* output.c — the outputs at run time; see output.h. */
#include "output.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadletter.h"
#include "influx.h"
#include "clock.h"
#include "log.h"
#include "route.h"
#include "sender.h"
#include "spool.h"
#include "tenant.h"

/* InfluxDB's answers counted per output, by status; the rest count as
 * "other" (0: no answer). */
static const long statuses[] = {0, 200, 204, 400, 401, 403, 404, 413, 422, 429, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* Write latency buckets (seconds), as luagw_write_duration_seconds. */
static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

/* What a sender keeps per lane of a database other than its output's own:
 * a client for that database. Freed by lane_free. */
typedef struct {
    gw_influx_t *influx; /* owned */
    int parks;           /* times in a row its delivery was parked */
} lane_state_t;

typedef struct {
    gw_outputs_t *all;         /* borrowed */
    int idx;
    const gw_outconf_t *conf;  /* borrowed from all->oc */
    gw_influx_t *influx;       /* owned: the output's own database */
    gw_influx_t *cur;          /* borrowed: the client of the batch being delivered */
    lane_state_t *lane;        /* borrowed: the lane of that batch, NULL for its own */
    gw_delivery_t d;
    gw_buf_t copy;             /* owned: a batch other outputs share, copied to be worked on */
    gw_buf_t copy_ends;        /* owned */
    double park_until;         /* set by backoff(): park the lane rather than wait */
    const gw_fanout_job_t *job; /* borrowed: the batch being delivered */
    char log_kv[GW_NAME_MAX + 8]; /* "output=<name>": ends every line its thread logs */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* wakes a backoff wait on stop */
    int stopping;
    double deadline;           /* monotonic; valid when stopping */
    /* Figures, read by /health and /metrics. */
    atomic_uint_fast64_t written, failed, dead, requests;
    atomic_uint_fast64_t answers[NSTATUS + 1];
    atomic_uint_fast64_t lat[NLAT + 1];
    atomic_uint_fast64_t lat_sum_us;
    atomic_int_fast64_t last_status; /* 0 = none yet or no answer */
    atomic_int down;                 /* the last write failed without a verdict */
    atomic_int refusing;             /* 401/403/404 while it lasts, else 0 */
} output_t;

struct gw_outputs {
    gw_outconfs_t oc;   /* owned */
    gw_fanout_t *f;     /* owned */
    output_t *out;      /* owned: oc.n of them */
};

/* ------------------------------------------------------------ delivery */

static void count_answer(output_t *o, const gw_influx_answer_t *a, double took)
{
    long status = a->kind == GW_ANSWER_HTTP ? a->status : 0;
    size_t i = 0, k = 0;

    while (i < NSTATUS && statuses[i] != status)
        i++;
    atomic_fetch_add(&o->answers[i], 1);
    while (k < NLAT && took > lat_bounds[k])
        k++;
    atomic_fetch_add(&o->lat[k], 1);
    atomic_fetch_add(&o->lat_sum_us, (uint64_t)(took * 1e6));
    atomic_fetch_add(&o->requests, 1);
    atomic_store(&o->last_status, status);
    if (status >= 200 && status < 300) {
        atomic_store(&o->down, 0);
        atomic_store(&o->refusing, 0);
        return;
    }
    atomic_fetch_add(&o->failed, 1);
    if (status == 401 || status == 403 || status == 404)
        atomic_store(&o->refusing, (int)status);
    else if (status != 400 && status != 413 && status != 422)
        atomic_store(&o->down, 1);
    else
        atomic_store(&o->down, 0);
}

static int on_write(void *ud, const char *body, size_t len, gw_influx_answer_t *ans)
{
    output_t *o = ud;
    double t0 = gw_clock_mono();
    int rc = gw_influx_write(o->cur, body, len, ans);

    count_answer(o, ans, gw_clock_mono() - t0);
    return rc;
}

/* Wait secs before the next try, or end the wait early on stop; returns 1
 * when the batch is to be given up (stopping, past the deadline). With
 * other lanes to serve, the lane is parked instead (returns 1 with
 * park_until set): the thread goes on with them. */
static int backoff(void *ud, double secs)
{
    output_t *o = ud;
    double until = gw_clock_mono() + secs;
    gw_fanout_stats_t st;
    struct timespec ts;
    int give_up;

    gw_fanout_stats(o->all->f, o->idx, &st);
    pthread_mutex_lock(&o->mu);
    if (!o->stopping && st.lanes > 1) {
        pthread_mutex_unlock(&o->mu);
        o->park_until = until;
        return 1;
    }
    if (o->stopping && until > o->deadline)
        until = o->deadline;
    while (gw_clock_mono() < until) {
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        if (pthread_cond_timedwait(&o->cv, &o->mu, &ts) == ETIMEDOUT)
            break;
        if (o->stopping && until > o->deadline)
            until = o->deadline;
    }
    give_up = o->stopping && gw_clock_mono() >= o->deadline;
    pthread_mutex_unlock(&o->mu);
    return give_up;
}

static void on_reject(void *ud, const char *lines, const uint32_t *ends, uint32_t from, uint32_t to, long status,
                      int reason, const char *why)
{
    output_t *o = ud;

    atomic_fetch_add(&o->dead, to - from);
    gw_deadletter_add(lines, ends, from, to, status, reason, why);
}

static void lane_free(void *state)
{
    lane_state_t *ls = state;

    if (ls)
        gw_influx_destroy(ls->influx);
    free(ls);
}

/* The client for job's lane: the output's own, or one made for the lane's
 * database (kept in the lane). NULL when it cannot be made. */
static gw_influx_t *client_for(output_t *o, gw_fanout_job_t *job)
{
    const gw_config_t *cfg = o->conf->cfg;
    gw_config_t tmp;
    lane_state_t *ls;
    char err[256];

    o->lane = NULL;
    if (!job->db)
        return o->influx;
    if (!(ls = *job->state)) {
        if (!(ls = calloc(1, sizeof(*ls))))
            return NULL;
        tmp = *cfg;
        if (cfg->monitoring.version == 2) {
            tmp.monitoring.bucket = (char *)job->db;
        } else {
            tmp.monitoring.database = (char *)job->db;
            tmp.monitoring.rp = (char *)(job->rp ? job->rp : "");
        }
        ls->influx = gw_influx_create(&tmp, err, sizeof(err));
        if (!ls->influx) {
            gw_log_error("cannot make a client for a database", "output=%s database=\"%s\" error=\"%s\"",
                         o->conf->name, job->db, err);
            free(ls);
            return NULL;
        }
        *job->state = ls;
    }
    o->lane = ls;
    return ls->influx;
}

/* gw_delivery_t.own: the batch's lines are about to be rewritten (InfluxDB
 * named some it refuses). Lines other outputs read too are copied first;
 * the common case, a batch stored as it is, is sent from the shared bytes. */
static int own(void *ud, char **data, uint32_t **ends)
{
    output_t *o = ud;
    const gw_fanout_job_t *job = o->job;
    size_t len = job->npoints ? job->ends[job->npoints - 1] : 0;

    if (job->writable || *data == o->copy.data)
        return 0;
    o->copy.len = 0;
    o->copy_ends.len = 0;
    if (gw_buf_append(&o->copy, *data, len) ||
        gw_buf_append(&o->copy_ends, *ends, (size_t)job->npoints * sizeof(uint32_t)))
        return -1;
    *data = o->copy.data;
    *ends = (uint32_t *)(void *)o->copy_ends.data;
    return 0;
}

static void *run(void *arg)
{
    output_t *o = arg;
    gw_fanout_t *f = o->all->f;

    gw_log_set_context(o->log_kv);
    for (;;) {
        double deadline, wake;
        gw_fanout_job_t job;
        uint32_t done, *ends;
        char *data;
        int rc;

        pthread_mutex_lock(&o->mu);
        deadline = o->stopping ? o->deadline : 0;
        pthread_mutex_unlock(&o->mu);
        if (deadline > 0 && gw_clock_mono() >= deadline)
            break;
        wake = gw_deadletter_due();
        if (deadline > 0 && (wake == 0 || deadline < wake))
            wake = deadline;
        if (!gw_fanout_take(f, o->idx, wake, &job)) {
            gw_deadletter_tick();
            if (gw_fanout_finished(f, o->idx))
                break;
            continue;
        }
        o->cur = client_for(o, &job);
        if (!o->cur) {
            gw_fanout_park(f, o->idx, &job, gw_clock_mono() + 1);
            continue;
        }
        /* Shared bytes are only read unless own() made a copy. */
        o->job = &job;
        data = (char *)(uintptr_t)job.data;
        ends = (uint32_t *)(uintptr_t)job.ends;
        o->park_until = 0;
        rc = gw_delivery_run(&o->d, data, ends, job.npoints, &done);
        atomic_store(&o->written, o->d.delivered);
        if (rc && o->park_until > 0) {
            /* Its points stay in the lane; those stored are sent again
             * later, which InfluxDB stores once (every line has its time). */
            int parks = o->lane ? o->lane->parks++ : 0;
            double wait = (o->park_until - gw_clock_mono()) * (double)(1u << (parks < 8 ? parks : 8));
            if (wait > o->d.retry_max)
                wait = o->d.retry_max;
            gw_fanout_park(f, o->idx, &job, gw_clock_mono() + wait);
            continue;
        }
        if (o->lane)
            o->lane->parks = 0;
        if (rc) {
            gw_fanout_abandon(f, o->idx, &job, done);
            break;
        }
        gw_fanout_done(f, o->idx, &job);
    }
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

static int start_one(gw_outputs_t *all, int i, char *err, size_t errlen)
{
    output_t *o = &all->out[i];
    const gw_config_t *cfg = all->oc.v[i].cfg;
    pthread_condattr_t ca;

    o->all = all;
    o->idx = i;
    o->conf = &all->oc.v[i];
    snprintf(o->log_kv, sizeof(o->log_kv), "output=%s", o->conf->name);
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    o->influx = gw_influx_create(cfg, err, errlen);
    if (!o->influx)
        return -1;
    if (cfg->monitoring.use_ssl && !cfg->monitoring.tls_verify)
        gw_log_warn("TLS to InfluxDB without certificate verification (tls_verify: false)", "output=%s host=%s port=%d",
                    o->conf->name, cfg->monitoring.host, cfg->monitoring.port);
    o->d = (gw_delivery_t){
        .write = on_write,
        .sleep = backoff,
        .reject = on_reject,
        .own = own,
        .ud = o,
        .retry_max = cfg->monitoring.retry_max,
        .slow = cfg->monitoring.timeout / 2 < 1 ? cfg->monitoring.timeout / 2 : 1,
        .seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)o,
        /* Per-series written and dropped counts are the first output's:
         * each point once, and one scan of its lines, not one per output. */
        .no_series = i > 0,
    };
    if (pthread_create(&o->thread, NULL, run, o)) {
        snprintf(err, errlen, "cannot start the sender thread of output %s", o->conf->name);
        return -1;
    }
    o->started = 1;
    return 0;
}

/* The buffer's view of output i. */
static gw_fanout_output_t fanout_output(const gw_outconf_t *c)
{
    const gw_config_t *cfg = c->cfg;
    int v2 = cfg->monitoring.version == 2;

    return (gw_fanout_output_t){
        .name = c->name,
        .batch_size = cfg->monitoring.batch_size,
        .buffer_limit = cfg->monitoring.buffer_limit,
        .buffer_limit_bytes = cfg->monitoring.buffer_limit_bytes,
        .flushing_period = cfg->monitoring.flushing_period,
        .drop_oldest = cfg->monitoring.overflow == GW_OVERFLOW_DROP_OLDEST,
        .passthrough = c->passthrough,
        .uses_rp = !v2,
        .database = v2 ? cfg->monitoring.bucket : cfg->monitoring.database,
        .rp = v2 ? "" : cfg->monitoring.rp,
        .max_databases = c->max_databases,
        .spool_dir = cfg->spool.dir,
        .spool_max_bytes = cfg->spool.max_bytes,
        .fsync = cfg->spool.fsync,
        .fsync_interval = cfg->spool.fsync_interval,
    };
}

/* Dead letters are process-wide (deadletter.h): the file of the first
 * output that names one (outconf.c lets outputs name only one). */
static int open_dead_letters(const gw_outconfs_t *oc, char *err, size_t errlen)
{
    const char *path = "";

    for (int i = 0; i < oc->n && !*path; i++)
        path = oc->v[i].cfg->monitoring.dead_letter;
    return gw_deadletter_open(path, err, errlen);
}

gw_outputs_t *gw_outputs_start(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_outputs_t *all = calloc(1, sizeof(*all));
    gw_fanout_output_t fo[GW_OUTPUTS_MAX];
    const gw_conf_node_t *bad;

    if (!all) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (gw_outconfs_build(cfg, &all->oc, &bad, err, errlen)) {
        gw_outconfs_free(&all->oc);
        free(all);
        return NULL;
    }
    for (int i = 0; i < all->oc.n; i++)
        fo[i] = fanout_output(&all->oc.v[i]);
    all->out = calloc((size_t)all->oc.n, sizeof(*all->out));
    if (!all->out) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    all->f = gw_fanout_create(fo, all->oc.n, lane_free, err, errlen);
    if (!all->f || open_dead_letters(&all->oc, err, errlen))
        goto fail;
    for (int i = 0; i < all->oc.n; i++)
        if (start_one(all, i, err, errlen))
            goto fail;
    return all;

fail:
    gw_outputs_stop(all);
    return NULL;
}

/* Ask output o to stop by its shutdown_timeout. */
static void ask_stop(output_t *o)
{
    pthread_mutex_lock(&o->mu);
    o->stopping = 1;
    o->deadline = gw_clock_mono() + o->conf->cfg->monitoring.shutdown_timeout;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* After its thread ended: say what output o left, and free its parts. */
static uint64_t finish_one(gw_outputs_t *all, output_t *o)
{
    gw_fanout_stats_t st = {0};

    if (all->f)
        gw_fanout_stats(all->f, o->idx, &st);
    if (st.points && st.spooled)
        gw_log_warn("stopped with points undelivered, kept in the spool for the next start",
                    "points=%llu output=%s spool=\"%s\"", (unsigned long long)st.points, o->conf->name,
                    o->conf->cfg->spool.dir);
    else if (st.points)
        gw_log_error("stopped with points undelivered: they are lost", "points=%llu output=%s",
                     (unsigned long long)st.points, o->conf->name);
    else
        gw_log_info("stopped, everything delivered", "output=%s written=%llu", o->conf->name,
                    (unsigned long long)atomic_load(&o->written));
    gw_influx_destroy(o->influx);
    gw_buf_free(&o->copy);
    gw_buf_free(&o->copy_ends);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    return st.points;
}

uint64_t gw_outputs_stop(gw_outputs_t *all)
{
    uint64_t left = 0;

    if (!all)
        return 0;
    for (int i = 0; all->out && i < all->oc.n; i++)
        if (all->out[i].started)
            ask_stop(&all->out[i]);
    if (all->f)
        gw_fanout_close(all->f);
    for (int i = 0; all->out && i < all->oc.n; i++) {
        output_t *o = &all->out[i];
        if (!o->conf)
            continue;
        if (o->started)
            pthread_join(o->thread, NULL);
        left += finish_one(all, o);
    }
    gw_deadletter_close();
    gw_fanout_destroy(all->f);
    free(all->out);
    gw_outconfs_free(&all->oc);
    free(all);
    return left;
}

/* ------------------------------------------------------------ figures */

gw_fanout_t *gw_outputs_fanout(gw_outputs_t *o)
{
    return o->f;
}

int gw_outputs_count(const gw_outputs_t *o)
{
    return o->oc.n;
}

const gw_outconf_t *gw_outputs_conf(const gw_outputs_t *o, int i)
{
    return &o->oc.v[i];
}

int gw_outputs_find(const gw_outputs_t *o, const char *name, size_t n)
{
    for (int i = 0; i < o->oc.n; i++)
        if (strlen(o->oc.v[i].name) == n && memcmp(o->oc.v[i].name, name, n) == 0)
            return i;
    return -1;
}

/* Full: 95% of its points or bytes (memory), or of its spool. */
static int is_full(const gw_fanout_stats_t *st)
{
    return (st->limit_points && st->points >= st->limit_points) ||
           (st->limit_bytes && st->bytes >= st->limit_bytes / 20 * 19);
}

int gw_outputs_state(gw_outputs_t *all, int i)
{
    output_t *o = &all->out[i];
    gw_fanout_stats_t st;

    gw_fanout_stats(all->f, i, &st);
    if (atomic_load(&o->refusing))
        return GW_OUT_REFUSING;
    if (is_full(&st))
        return GW_OUT_FULL;
    return atomic_load(&o->down) ? GW_OUT_DOWN : GW_OUT_OK;
}

int gw_outputs_stuck(gw_outputs_t *all, const uint64_t *masks, int n)
{
    uint64_t ok = 0;

    for (int i = 0; i < all->oc.n; i++)
        if (gw_outputs_state(all, i) == GW_OUT_OK)
            ok |= (uint64_t)1 << i;
    for (int r = 0; r < n; r++)
        if (!(masks[r] & ok))
            return 1;
    return 0;
}

void gw_outputs_held(gw_outputs_t *all, uint64_t *points, uint64_t *bytes, uint64_t *spool_bytes)
{
    *points = *bytes = *spool_bytes = 0;
    for (int i = 0; i < all->oc.n; i++) {
        gw_fanout_stats_t st;
        gw_fanout_stats(all->f, i, &st);
        *points += st.points;
        *bytes += st.bytes;
        if (st.spooled)
            *spool_bytes += st.bytes;
    }
}

void gw_outputs_spool_json(gw_outputs_t *all, gw_jsonw_t *w)
{
    uint64_t points = 0, bytes = 0, damaged = 0, appends = 0, syncs = 0;
    int any = 0;

    for (int i = 0; i < all->oc.n; i++) {
        gw_fanout_stats_t st;
        gw_fanout_stats(all->f, i, &st);
        if (!st.spooled)
            continue;
        any = 1;
        points += st.points;
        bytes += st.bytes;
        damaged += st.damaged;
        appends += st.appends;
        syncs += st.syncs;
    }
    if (!any) {
        gw_jsonw_null(w);
        return;
    }
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "points", points);
    gw_jsonw_member_uint(w, "bytes", bytes);
    gw_jsonw_member_uint(w, "damaged_records", damaged);
    gw_jsonw_member_uint(w, "appends", appends);
    gw_jsonw_member_uint(w, "syncs", syncs);
    gw_jsonw_end(w);
}

static const char *state_name(int s)
{
    static const char *const names[] = {"ok", "down", "refusing", "full"};
    return names[s];
}

static void held_back(const gw_fanout_lane_t *l, void *ud)
{
    gw_jsonw_t *w = ud;

    if (l->parked_for <= 0 || !l->db)
        return;
    gw_jsonw_begin_object(w);
    gw_jsonw_member_string(w, "database", l->db);
    gw_jsonw_key(w, "rp");
    if (l->rp)
        gw_jsonw_string(w, l->rp);
    else
        gw_jsonw_null(w);
    gw_jsonw_member_uint(w, "points", l->points);
    gw_jsonw_member_double(w, "retry_in", l->parked_for);
    gw_jsonw_end(w);
}

/* One output's "buffer" object. */
static void buffer_json(const gw_fanout_stats_t *st, gw_jsonw_t *w)
{
    gw_jsonw_key(w, "buffer");
    gw_jsonw_begin_object(w);
    gw_jsonw_member_uint(w, "points", st->points);
    gw_jsonw_member_uint(w, "bytes", st->bytes);
    gw_jsonw_member_uint(w, "limit_points", st->limit_points);
    gw_jsonw_member_uint(w, "limit_bytes", st->limit_bytes);
    gw_jsonw_member_bool(w, "spooled", st->spooled);
    gw_jsonw_member_int(w, "databases", (int64_t)st->lanes);
    gw_jsonw_member_int(w, "parked", (int64_t)st->parked);
    gw_jsonw_end(w);
}

static void one_json(gw_outputs_t *all, int i, gw_jsonw_t *w)
{
    output_t *o = &all->out[i];
    const gw_config_t *cfg = o->conf->cfg;
    gw_fanout_stats_t st;

    gw_fanout_stats(all->f, i, &st);
    gw_jsonw_begin_object(w);
    gw_jsonw_member_string(w, "state", state_name(gw_outputs_state(all, i)));
    gw_jsonw_member_int(w, "version", cfg->monitoring.version);
    gw_jsonw_member_string(w, "host", cfg->monitoring.host);
    gw_jsonw_member_int(w, "port", cfg->monitoring.port);
    gw_jsonw_member_string(w, "database", cfg->monitoring.version == 2 ? cfg->monitoring.bucket : cfg->monitoring.database);
    gw_jsonw_member_bool(w, "passthrough", o->conf->passthrough);
    buffer_json(&st, w);
    gw_jsonw_member_uint(w, "written", atomic_load(&o->written));
    gw_jsonw_member_uint(w, "failed", atomic_load(&o->failed));
    gw_jsonw_member_uint(w, "dead_lettered", atomic_load(&o->dead));
    gw_jsonw_member_uint(w, "overflowed", st.overflowed);
    gw_jsonw_member_uint(w, "requests", atomic_load(&o->requests));
    gw_jsonw_member_int(w, "last_status", (int64_t)atomic_load(&o->last_status));
    gw_jsonw_key(w, "held_back");
    gw_jsonw_begin_array(w);
    gw_fanout_each_lane(all->f, i, held_back, w);
    gw_jsonw_end(w);
    gw_jsonw_end(w);
}

void gw_outputs_json(gw_outputs_t *all, gw_jsonw_t *w)
{
    gw_jsonw_begin_object(w);
    for (int i = 0; i < all->oc.n; i++) {
        gw_jsonw_key(w, all->oc.v[i].name);
        one_json(all, i, w);
    }
    gw_jsonw_end(w);
}

/* One family: "# HELP/# TYPE" then, per output, value(i). */
static void family(gw_buf_t *b, gw_outputs_t *all, const char *name, const char *type, const char *help,
                   uint64_t (*value)(gw_outputs_t *, int))
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int i = 0; i < all->oc.n; i++)
        gw_buf_printf(b, "%s{output=\"%s\"} %llu\n", name, all->oc.v[i].name, (unsigned long long)value(all, i));
}

#define FIGURE(fn, expr)                                \
    static uint64_t fn(gw_outputs_t *all, int i)        \
    {                                                   \
        output_t *o = &all->out[i];                     \
        gw_fanout_stats_t st;                           \
        gw_fanout_stats(all->f, i, &st);                \
        (void)o;                                        \
        (void)st;                                       \
        return (expr);                                  \
    }
FIGURE(v_written, atomic_load(&o->written))
FIGURE(v_failed, atomic_load(&o->failed))
FIGURE(v_dead, atomic_load(&o->dead))
FIGURE(v_overflowed, st.overflowed)
FIGURE(v_points, st.points)
FIGURE(v_spool, st.spooled ? st.bytes : 0)
FIGURE(v_up, gw_outputs_state(all, i) == GW_OUT_OK)
FIGURE(v_parked, st.parked)
#undef FIGURE

static void latency(gw_buf_t *b, gw_outputs_t *all)
{
    const char *name = "luagw_output_write_duration_seconds";

    gw_buf_printf(b, "# HELP %s duration of one write request to the output\n# TYPE %s histogram\n", name, name);
    for (int i = 0; i < all->oc.n; i++) {
        output_t *o = &all->out[i];
        uint64_t cum = 0;
        for (size_t k = 0; k <= NLAT; k++) {
            cum += atomic_load(&o->lat[k]);
            if (k < NLAT)
                gw_buf_printf(b, "%s_bucket{output=\"%s\",le=\"%g\"} %llu\n", name, o->conf->name, lat_bounds[k],
                              (unsigned long long)cum);
            else
                gw_buf_printf(b, "%s_bucket{output=\"%s\",le=\"+Inf\"} %llu\n", name, o->conf->name,
                              (unsigned long long)cum);
        }
        gw_buf_printf(b, "%s_sum{output=\"%s\"} %.6f\n%s_count{output=\"%s\"} %llu\n", name, o->conf->name,
                      (double)atomic_load(&o->lat_sum_us) / 1e6, name, o->conf->name, (unsigned long long)cum);
    }
}

static void answers(gw_buf_t *b, gw_outputs_t *all)
{
    const char *name = "luagw_output_responses_total";

    gw_buf_printf(b, "# HELP %s the output's answers to write requests by HTTP status (0: no answer)\n# TYPE %s counter\n",
                  name, name);
    for (int i = 0; i < all->oc.n; i++)
        for (size_t k = 0; k <= NSTATUS; k++) {
            uint64_t v = atomic_load(&all->out[i].answers[k]);
            if (!v)
                continue;
            if (k < NSTATUS)
                gw_buf_printf(b, "%s{output=\"%s\",code=\"%ld\"} %llu\n", name, all->oc.v[i].name, statuses[k],
                              (unsigned long long)v);
            else
                gw_buf_printf(b, "%s{output=\"%s\",code=\"other\"} %llu\n", name, all->oc.v[i].name,
                              (unsigned long long)v);
        }
}

int gw_outputs_prom(gw_outputs_t *all, gw_buf_t *b)
{
    family(b, all, "luagw_output_points_written_total", "counter", "points the output stored", v_written);
    family(b, all, "luagw_output_write_failures_total", "counter", "write requests the output did not answer 2xx",
           v_failed);
    family(b, all, "luagw_output_points_dead_lettered_total", "counter", "points the output refused for good",
           v_dead);
    family(b, all, "luagw_output_points_overflowed_total", "counter", "points dropped by overflow: drop_oldest",
           v_overflowed);
    family(b, all, "luagw_output_queue_points", "gauge", "points held for the output (memory or spool)", v_points);
    family(b, all, "luagw_output_spool_bytes", "gauge", "bytes of the output's spools on disk (0 without)", v_spool);
    family(b, all, "luagw_output_up", "gauge", "1 while the output takes points (state ok in /health)", v_up);
    family(b, all, "luagw_output_parked_databases", "gauge", "databases of the output waiting to retry", v_parked);
    answers(b, all);
    latency(b, all);
    return b->data ? 0 : -ENOMEM;
}
