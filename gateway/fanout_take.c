/* fanout_take.c — the senders' side of the fan-out buffer (fanout.h):
 * retiring idle destinations and lanes, taking a job from memory lanes or
 * from spools (round robin over an output's lanes), and what a sender
 * says afterwards (done, park, abandon), and the end (close, finished). */
#include "fanout_int.h"

/* ------------------------------------------------------------------------ */
/* Retiring what nobody uses                                                 */

/* Destinations without an open batch, unused for GROUP_IDLE; then out's
 * lanes that are empty, fed by none, unused for LANE_IDLE (never its
 * own). Only out's sender retires out's lanes: it alone reads their
 * spools. Under the lock. */
static void sweep(gw_fanout_t *f, output_t *out, double now)
{
    if (now - f->last_sweep < f->sweep_every)
        return;
    f->last_sweep = now;
    for (uint32_t i = 0; i < f->nbuckets; i++)
        for (group_t **pg = &f->buckets[i]; *pg;) {
            group_t *g = *pg;
            if (g->open || g->pins || now - g->used_at < f->group_idle) {
                pg = &g->next;
                continue;
            }
            for (int k = 0; k < g->nmem; k++)
                g->mem[k]->groups--, g->mem[k]->used_at = now;
            for (int k = 0; k < g->nspl; k++)
                g->spl[k]->groups--, g->spl[k]->used_at = now;
            *pg = g->next;
            f->ngroups--;
            fanout_group_free(g);
        }
    for (lane_t **pl = &out->lanes->next; *pl;) {
        lane_t *l = *pl;
        if (l->groups || l->pins || l->head || l->current || (l->filling && l->filling->npoints) ||
            now - l->used_at < f->lane_idle || (l->spool && (gw_spool_points(l->spool) || gw_spool_unread(l->spool)))) {
            pl = &l->next;
            continue;
        }
        *pl = l->next;
        if (out->rr == l)
            out->rr = NULL;
        out->nlanes--;
        out->gen++;
        fanout_lane_destroy(f, l);
    }
}

/* ------------------------------------------------------------------------ */
/* Taking: memory outputs                                                    */

static void fill_job(gw_fanout_job_t *job, lane_t *l)
{
    fbatch_t *b = l->current;

    *job = (gw_fanout_job_t){
        .data = b->data.data ? b->data.data : "",
        .ends = (const uint32_t *)(const void *)b->ends.data,
        .npoints = b->npoints,
        .writable = l->out->spooled || b->refs == 1,
        .db = l->db,
        .rp = l->rp,
        .state = &l->state,
        .lane_ = l,
    };
}

/* The earlier of two monotonic times, 0 standing for "none". */
static double earlier(double a, double b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

/* Seal the open batches out shares that are due (or all, when closed);
 * *wake moves to when the next one is due. Under the lock. */
static void seal_due(gw_fanout_t *f, output_t *out, double now, double *wake)
{
    for (uint32_t i = 0; i < f->nbuckets; i++)
        for (group_t *g = f->buckets[i]; g; g = g->next) {
            if (!g->open || !g->nmem || !(g->mask >> out->idx & 1))
                continue;
            if (f->closed || now >= g->open->opened_at + g->period)
                fanout_seal(f, g);
            else
                *wake = earlier(*wake, g->open->opened_at + g->period);
        }
}

/* The next lane with a batch to hand out, round-robin from out->rr: a
 * parked lane whose time has come (its batch again), or one with a sealed
 * batch (taken now). *wake moves to when a parked lane is due. Under the
 * lock. */
static lane_t *next_lane(output_t *out, double now, double *wake)
{
    lane_t *start = out->rr ? out->rr : out->lanes, *l = start;

    do {
        if (l->held_until > now) {
            *wake = earlier(*wake, l->held_until);
        } else if (l->current || l->head) {
            if (!l->current) {
                l->current = l->head->b;
                l->head = l->head->next;
                if (!l->head)
                    l->tail = NULL;
            }
            l->held_until = 0;
            out->rr = l->next;
            return l;
        }
        l = l->next ? l->next : out->lanes;
    } while (l != start);
    return NULL;
}

/* Has out anything left: waiting, taken, or in an open batch? Under the
 * lock. */
static int pending(const gw_fanout_t *f, const output_t *out)
{
    for (const lane_t *l = out->lanes; l; l = l->next)
        if (l->head || l->current || (l->filling && l->filling->npoints) || (l->spool && gw_spool_unread(l->spool)))
            return 1;
    for (uint32_t i = 0; i < f->nbuckets; i++)
        for (const group_t *g = f->buckets[i]; g; g = g->next)
            if (g->open && g->nmem && (g->mask >> out->idx & 1))
                return 1;
    return 0;
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double wake)
{
    struct timespec ts;

    if (wake == 0) {
        pthread_cond_wait(cv, mu);
        return;
    }
    ts.tv_sec = (time_t)wake;
    ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(cv, mu, &ts);
}

static int take_memory(gw_fanout_t *f, output_t *out, double deadline, gw_fanout_job_t *job)
{
    int got = 0;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        double now = gw_clock_mono(), wake = deadline;
        lane_t *l;

        seal_due(f, out, now, &wake);
        if ((l = next_lane(out, now, &wake))) {
            l->used_at = now;
            fill_job(job, l);
            got = 1;
            break;
        }
        if ((f->closed && !pending(f, out)) || (deadline > 0 && now >= deadline))
            break;
        fanout_log_drops(out, 0);
        if (out->dropped_unlogged)
            wake = earlier(wake, out->last_drop_log + DROP_LOG_EVERY);
        sweep(f, out, now);
        timed_wait(&out->cv, &f->mu, earlier(wake, f->ngroups > 0 || out->nlanes > 1 ? now + f->sweep_every * 2 : 0));
    }
    pthread_mutex_unlock(&f->mu);
    return got;
}

/* ------------------------------------------------------------------------ */
/* Taking: spooled outputs                                                   */

/* Read what l's spool has into l->filling, up to a batch. 0, or -errno
 * (try again soon). Sender only, outside the lock. */
static int fill(gw_fanout_t *f, lane_t *l, double now, uint32_t *got)
{
    output_t *out = l->out;
    fbatch_t *b = l->filling;
    int rc = 0;

    *got = 0;
    if (!b) {
        pthread_mutex_lock(&f->mu);
        b = fanout_batch_new(f, 0);
        pthread_mutex_unlock(&f->mu);
        if (!b)
            return -ENOMEM;
        l->filling = b;
    }
    if (b->npoints < out->o.batch_size && b->data.len < GW_BATCH_MAX_BYTES) {
        rc = gw_spool_read(l->spool, &b->data, &b->ends, out->o.batch_size - b->npoints, GW_BATCH_MAX_BYTES, got,
                           &b->end);
        if (rc == -ENOMEM)
            gw_log_error("spool: out of memory reading", "output=%s", out->o.name);
    }
    if (*got && b->opened_at == 0)
        b->opened_at = now;
    b->npoints += *got;
    return rc;
}

/* Is l's filling batch to be handed out now? */
static int due(const lane_t *l, uint32_t got, int closed, double now)
{
    const fbatch_t *b = l->filling;
    const output_t *out = l->out;

    if (!b || !b->npoints)
        return 0;
    return b->npoints >= out->o.batch_size || b->data.len >= GW_BATCH_MAX_BYTES ||
           (!got && gw_spool_unread(l->spool)) || closed || now >= b->opened_at + out->o.flushing_period;
}

/* out's lanes, copied (the sender reads their spools outside the lock; it
 * alone retires them). Under the lock. Returns how many, or -1. */
static int snapshot(output_t *out)
{
    uint32_t n = 0;

    if (out->nlanes > out->snapcap) {
        lane_t **s = realloc(out->snap, out->nlanes * sizeof(*s));
        if (!s)
            return -1;
        out->snap = s;
        out->snapcap = out->nlanes;
    }
    for (lane_t *l = out->lanes; l; l = l->next)
        out->snap[n++] = l;
    return (int)n;
}

/* Nothing read for out and nothing new since: wait until wake. Under the
 * lock: an append's signal comes under it too, after its data is in. */
static void wait_spooled(gw_fanout_t *f, output_t *out, uint32_t gen, double wake)
{
    if (out->gen != gen)
        return;
    for (lane_t *l = out->lanes; l; l = l->next)
        if (l->held_until == 0 && gw_spool_unread(l->spool))
            return;
    timed_wait(&out->cv, &f->mu, wake);
}

/* A lane's batch handed out: a parked one whose time has come, or one
 * read from its spool that is due. NULL when none; *wake, *busy as for
 * next_lane. Outside the lock. */
static lane_t *next_spooled(gw_fanout_t *f, output_t *out, int n, int closed, double now, double *wake, int *busy)
{
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < n; k++) {
            lane_t *l = out->snap[k];
            uint32_t got;
            if (l->held_until > now) {
                *wake = earlier(*wake, l->held_until);
                *busy = 1;
                continue;
            }
            if (pass == 0) { /* parked and due */
                if (l->current)
                    return l;
                continue;
            }
            if (fill(f, l, now, &got))
                *wake = earlier(*wake, now + SPOOL_RETRY);
            if (due(l, got, closed, now)) {
                l->current = l->filling;
                l->filling = NULL;
                return l;
            }
            if (l->filling && l->filling->npoints) {
                *wake = earlier(*wake, l->filling->opened_at + out->o.flushing_period);
                *busy = 1;
            }
            *busy |= gw_spool_unread(l->spool);
        }
    return NULL;
}

static int take_spooled(gw_fanout_t *f, output_t *out, double deadline, gw_fanout_job_t *job)
{
    for (;;) {
        double now = gw_clock_mono(), wake = deadline;
        int n, closed, busy = 0;
        uint32_t gen;
        lane_t *l;

        pthread_mutex_lock(&f->mu);
        sweep(f, out, now);
        closed = f->closed;
        gen = out->gen;
        n = snapshot(out);
        pthread_mutex_unlock(&f->mu);
        if (n < 0) {
            wake = now + SPOOL_RETRY;
        } else if ((l = next_spooled(f, out, n, closed, now, &wake, &busy))) {
            pthread_mutex_lock(&f->mu);
            l->held_until = 0;
            l->used_at = now;
            fill_job(job, l);
            pthread_mutex_unlock(&f->mu);
            return 1;
        }
        if ((closed && !busy) || (deadline > 0 && now >= deadline))
            return 0;
        pthread_mutex_lock(&f->mu);
        wait_spooled(f, out, gen, earlier(wake, f->ngroups > 0 || out->nlanes > 1 ? now + f->sweep_every * 2 : 0));
        pthread_mutex_unlock(&f->mu);
    }
}

/* ------------------------------------------------------------------------ */
/* The sender's side                                                         */

int gw_fanout_take(gw_fanout_t *f, int o, double deadline, gw_fanout_job_t *job)
{
    output_t *out = &f->out[o];

    return out->spooled ? take_spooled(f, out, deadline, job) : take_memory(f, out, deadline, job);
}

void gw_fanout_done(gw_fanout_t *f, int o, gw_fanout_job_t *job)
{
    lane_t *l = job->lane_;
    output_t *out = &f->out[o];
    fbatch_t *b = l->current;

    if (out->spooled)
        gw_spool_ack(l->spool, &b->end, b->npoints);
    pthread_mutex_lock(&f->mu);
    l->current = NULL;
    l->held_until = 0;
    l->used_at = gw_clock_mono();
    if (out->spooled) {
        fanout_recycle(f, b);
    } else {
        out->points -= b->npoints;
        out->bytes -= batch_bytes(b);
        l->points -= b->npoints;
        fanout_unref(f, b);
    }
    pthread_mutex_unlock(&f->mu);
}

void gw_fanout_park(gw_fanout_t *f, int o, gw_fanout_job_t *job, double until)
{
    lane_t *l = job->lane_;

    (void)o;
    pthread_mutex_lock(&f->mu);
    l->held_until = until > 0 ? until : 1e-9;
    pthread_mutex_unlock(&f->mu);
}

void gw_fanout_abandon(gw_fanout_t *f, int o, gw_fanout_job_t *job, uint32_t done)
{
    lane_t *l = job->lane_;
    output_t *out = &f->out[o];
    fbatch_t *b = l->current;

    pthread_mutex_lock(&f->mu);
    l->current = NULL;
    if (out->spooled) {
        fanout_recycle(f, b); /* its points stay in the spool */
    } else {
        /* Its memory goes; its points left stay counted (as undelivered). */
        out->points -= done;
        out->bytes -= batch_bytes(b);
        l->points -= b->npoints;
        fanout_unref(f, b);
    }
    pthread_mutex_unlock(&f->mu);
}

void gw_fanout_close(gw_fanout_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    for (uint32_t i = 0; i < f->nbuckets; i++)
        for (group_t *g = f->buckets[i]; g; g = g->next)
            fanout_seal(f, g);
    for (int o = 0; o < f->n; o++) {
        fanout_log_drops(&f->out[o], 1);
        for (lane_t *l = f->out[o].lanes; l; l = l->next)
            if (l->spool)
                gw_spool_close(l->spool);
        pthread_cond_broadcast(&f->out[o].cv);
    }
    pthread_mutex_unlock(&f->mu);
}

int gw_fanout_finished(gw_fanout_t *f, int o)
{
    int done;

    pthread_mutex_lock(&f->mu);
    done = f->closed && !pending(f, &f->out[o]);
    pthread_mutex_unlock(&f->mu);
    return done;
}

