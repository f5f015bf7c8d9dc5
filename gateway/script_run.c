/* script_run.c — one request's points through the scripts (script.h).
 *
 * In gw_script_run:
 *   1. each point's chain is looked up in C (the set's table of series
 *      names, with a small cache of this request's series); points of
 *      series without scripts never reach Lua;
 *   2. the driver's run() is called per scripted point, under the guard;
 *      a failure (error, timeout, memory) ends that call only: its point
 *      follows scripts.on_error, and a state that was jumped out of is
 *      replaced before the next point. A point of a chain whose scripts
 *      all returned memo(f) is first looked up in the worker's memo cache
 *      (memo.h): a hit is answered here, in C, without a call; a miss is
 *      run and its result learnt at once, so the next point of its shape,
 *      in this request too, is a hit;
 *   3. what the driver wrote back is checked before C indexes with it,
 *      numbers are given their types, and the results are merged back
 *      into the request's point array (swapped, not copied twice).
 * A traced run (trace.c) is told each failure and, per output point,
 * which scripts ran for it. */
#include "script_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

static int reserve(gw_script_t *s, uint32_t n)
{
    if (n <= s->cap)
        return 0;
    {
        uint32_t cap = n < 256 ? 256 : n;
        uint16_t *c = realloc(s->chain, (size_t)cap * sizeof(*c));
        uint8_t *sc;
        gw_script_rec_t *r;
        if (!c)
            return -ENOMEM;
        s->chain = c;
        sc = realloc(s->scripted, cap);
        if (!sc)
            return -ENOMEM;
        s->scripted = sc;
        r = realloc(s->rec, (size_t)cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        s->rec = r;
        sc = realloc(s->memo_mode, cap);
        if (!sc)
            return -ENOMEM;
        s->memo_mode = sc;
        s->cap = cap;
    }
    return 0;
}

/* 1-based position of script id in chain cid, 0 when absent. */
static uint32_t chain_pos(const gw_script_set_t *set, uint16_t cid, uint32_t id)
{
    if (!cid || cid > set->nchains)
        return 0;
    for (int k = 0; k < set->chains[cid - 1].n; k++)
        if (set->chains[cid - 1].ids[k] == id)
            return (uint32_t)k + 1;
    return 0;
}

/* Record the failure (GW_SCRIPT_FAIL_*) of input point i: status, count,
 * log, trace. */
static void fail_point(gw_script_t *s, uint32_t i, int kind, const char *where, const char *msg)
{
    gw_point_t *p = &s->ctl.inp[i];

    s->rec[i].status = kind == GW_SCRIPT_FAIL_TIMEOUT  ? REC_TIMEOUT
                       : kind == GW_SCRIPT_FAIL_MEMORY ? REC_MEMORY
                                                       : REC_ERROR;
    s->rec[i].n = 0;
    s->rec[i].steps = chain_pos(s->set, s->chain[i], s->ctl.script);
    gw_script_stats_note(p->series, kind, where, msg, s->set->drop_on_error);
    if (s->trace && s->trace->failed)
        s->trace->failed(s->trace->ud, p, where, gw_script_fail_name(kind), msg, s->set->drop_on_error);
}

/* After a timeout of script id. A timeout affects only its point, but once a
 * script has timed out TRIP_TIMEOUTS times in one request, the rest of that
 * request's points whose chain contains it are not run: they follow on_error
 * at once, so that a script stuck on every point costs a request a few
 * timeouts rather than one per point (and does not hold the worker). */
static void trip(gw_script_t *s, uint32_t id, uint32_t from, const char *where)
{
    const gw_script_set_t *set = s->set;

    if (!s->tripped || id > (uint32_t)set->nfiles || ++s->tripped[id] < TRIP_TIMEOUTS)
        return;
    for (uint32_t j = from; j < s->ctl.nin; j++) {
        uint16_t cid = s->chain[j];
        if (!cid)
            continue;
        if (chain_pos(set, cid, id)) {
            fail_point(s, j, GW_SCRIPT_FAIL_TIMEOUT, where, "not run: the script timed out 3 times in this request");
            s->rec[j].steps = 0;
            s->chain[j] = 0; /* the driver skips it */
        }
    }
}

/* What failed, from a call's code rc: the kind (GW_SCRIPT_FAIL_*), with
 * the script ("file:line") in where and the message in msg. Stack: the
 * error message on top when rc > 0. */
static int failure_of(gw_script_t *s, lua_State *L, int rc, uint32_t id, char *where, size_t wlen, char *msg,
                      size_t mlen)
{
    const char *path = gw_script_set_path(s->set, id), *m;
    size_t wl;

    snprintf(where, wlen, "%s", s->guard.where[0] ? s->guard.where : path);
    if (rc < 0 || s->guard.timed_out) {
        snprintf(msg, mlen, "stopped: the call used more than %lld ms of CPU (scripts.timeout_ms)",
                 (long long)(s->set->timeout_ns / 1000000));
        return GW_SCRIPT_FAIL_TIMEOUT;
    }
    if (rc == LUA_ERRMEM) {
        snprintf(msg, mlen, "the Lua state reached scripts.memory_limit (%zu bytes)", s->set->memory_limit);
        return GW_SCRIPT_FAIL_MEMORY;
    }
    m = lua_tostring(L, -1);
    m = m ? m : "error";
    wl = strlen(where);
    /* "file:line: message" -> script=file:line, error=message */
    if (strncmp(m, where, wl) == 0 && m[wl] == ':' && m[wl + 1] == ' ') {
        m += wl + 2;
    } else if (!s->guard.where[0]) {
        const char *colon = strstr(m, ": ");
        if (colon && (size_t)(colon - m) < wlen && strncmp(m, path, strlen(path)) == 0) {
            snprintf(where, wlen, "%.*s", (int)(colon - m), m);
            m = colon + 2;
        }
    }
    snprintf(msg, mlen, "%s", m);
    return GW_SCRIPT_FAIL_ERROR;
}

/* After a failed call (rc, of kind): a state that was jumped out of is
 * replaced; one that hit the memory limit is collected, and replaced when
 * the scripts' own data still fill most of it. Returns 1 when the next
 * call starts on a fresh state, 0 when it goes on in this one, -1 when
 * there is no state any more. */
static int recover(gw_script_t *s, lua_State *L, int rc, int kind)
{
    if (rc < 0) /* jumped out of compiled code (or the runtime) */
        return gw_script_state_replace(s, rc == -GW_GUARD_ABANDON) ? -1 : 1;
    if (kind != GW_SCRIPT_FAIL_MEMORY)
        return 0;
    lua_gc(L, LUA_GCCOLLECT, 0);
    if (gw_lalloc_used(s->st->alloc) <= s->set->memory_limit / 4 * 3)
        return 0;
    gw_log(GW_LOG_WARN, "script state reset", "reason=\"memory limit\" used=%zu limit=%zu",
           gw_lalloc_used(s->st->alloc), s->set->memory_limit);
    return gw_script_state_replace(s, 0) ? -1 : 1;
}

/* The input point a failed call was on: the one in progress, or the first
 * not done from start (the stop may land between two points); c->nin when
 * none is left. */
static uint32_t failed_point(const gw_script_t *s, uint32_t start)
{
    const gw_script_ctl_t *c = &s->ctl;
    uint32_t i = c->cur;

    if (i < c->nin && c->chain[i] && s->rec[i].status == REC_PENDING)
        return i;
    for (i = i < c->nin ? i + 1 : start; i < c->nin && (!c->chain[i] || s->rec[i].status != REC_PENDING); i++)
        ;
    return i;
}

static void check_point(gw_script_t *s, uint32_t i);

/* ------------------------------------------------------------------------ */
/* Memo (memo.h): chains whose scripts all returned memo(f) */

/* Is there a memo cache to use in this run? Makes s->memo match the set in
 * use: a new set (a reload, other params) starts from an empty cache.
 * 1 yes, 0 no, -ENOMEM. */
static int memo_ready(gw_script_t *s)
{
    const gw_script_set_t *set = s->set;

    if (!set->memo_entries) {
        gw_memo_destroy(s->memo);
        s->memo = NULL;
        return 0;
    }
    if (!s->st)
        return 0;
    if (s->memo && (gw_memo_capacity(s->memo) != set->memo_entries ||
                    gw_memo_verifying(s->memo) != set->memo_verify)) {
        gw_memo_destroy(s->memo);
        s->memo = NULL;
    }
    if (!s->memo) {
        if (!(s->memo = gw_memo_create(set->memo_entries, set->memo_verify)))
            return -ENOMEM;
    } else {
        gw_memo_reap(s->memo);
        if (s->memo_set != set || s->memo_gen != s->gen)
            gw_memo_clear(s->memo);
    }
    s->memo_set = set;
    s->memo_gen = s->gen;
    return 1;
}

/* Room in the control block's arrays for one more output point of nt
 * tags and nf fields (each grow at least doubles an array). 0 or -1. */
static int memo_room(gw_script_ctl_t *c, uint32_t nt, uint32_t nf)
{
    while (c->nout >= c->outcap)
        if (c->grow(c, 0, 0))
            return -1;
    while (c->ntags + nt > c->tagcap)
        if (c->grow(c, 1, c->ntags))
            return -1;
    while (c->nfields + nf > c->fieldcap)
        if (c->grow(c, 2, c->nfields))
            return -1;
    return 0;
}

/* Point i, of a memoized chain: answered from the cache (returns 1: its
 * output written, its rec done), or marked for the driver and memo_after
 * (returns 0). */
static int memo_answer(gw_script_t *s, uint32_t i)
{
    gw_script_ctl_t *c = &s->ctl;
    uint16_t cid = s->chain[i];
    const gw_memo_entry_t *e;
    gw_script_rec_t *r = &s->rec[i];
    uint32_t nt, nf;
    int kind;

    if (!s->memo || !s->st || !s->st->memo[cid])
        return 0;
    kind = gw_memo_lookup(s->memo, cid, &c->inp[i], &e);
    if (kind < 0) /* ENOMEM: run it */
        return 0;
    s->memo_mode[i] = (uint8_t)(1 + kind);
    if (kind != GW_MEMO_HIT)
        return 0;
    gw_memo_size(e, &nt, &nf);
    if (memo_room(c, nt, nf)) {
        s->memo_mode[i] = 1 + GW_MEMO_UNCACHEABLE; /* no room: let the driver fail it */
        return 0;
    }
    r->first = c->nout;
    r->n = gw_memo_apply(e, &c->inp[i], &c->out[c->nout], c->tags + c->ntags, c->fields + c->nfields);
    r->status = REC_OK;
    r->steps = (uint32_t)s->set->chains[cid - 1].n;
    r->numbers = r->full = 0;
    if (r->n) {
        c->ntags += nt;
        c->nfields += nf;
    }
    c->nout += r->n;
    c->committed = c->nout;
    return 1;
}

/* After the driver ran point i, which memo_answer could not answer: its
 * result, checked and typed, is learnt (a miss) or compared with the cache
 * (a hit chosen for verification); a failed run teaches nothing. */
static void memo_after(gw_script_t *s, uint32_t i)
{
    int mode = s->memo_mode[i] - 1;
    const gw_script_rec_t *r = &s->rec[i];
    const gw_point_t *in = &s->ctl.inp[i];
    uint16_t cid = s->chain[i];

    if (mode != GW_MEMO_MISS && mode != GW_MEMO_VERIFY)
        return;
    check_point(s, i);
    if (r->status != REC_OK || !cid)
        return;
    if (mode == GW_MEMO_MISS) {
        (void)gw_memo_learn(s->memo, cid, in, s->out + r->first, r->n); /* ENOMEM: not cached */
    } else if (gw_memo_verify(s->memo, cid, in, s->out + r->first, r->n) == 0) {
        char series[128];
        gw_script_log_clean(series, sizeof(series), in->series.p, in->series.n);
        gw_log_limited(&s->memo_lim, 1.0, GW_LOG_WARN, "memo mismatch",
                       "script=%s series=\"%s\" hint=\"the function gave another result for a point of the "
                       "same series, tags and field keys: it is not a pure function of them (docs/scripts.md, "
                       "memo); that shape now runs the script on every point\"",
                       s->set->chains[cid - 1].paths[0], series);
    }
}

/* Call the driver on each scripted point, handling each failure of a point.
 * One protected call per point rather than one per request: a Lua loop over
 * the request's points made LuaJIT record the points' inner loops (2 to 5
 * tags, varying) into the request loop's trace, which it could not unroll;
 * now and then it blacklisted the loop and a request ran interpreted (4x the
 * instructions). A call per point costs a few hundred instructions and
 * leaves each point's code to traces of its own. */
static void drive(gw_script_t *s)
{
    gw_script_ctl_t *c = &s->ctl;
    uint32_t start = 0;
    int fresh = 1;

    while (s->st) {
        lua_State *L = s->st->L;
        uint32_t i, id;
        int rc, kind;
        char msg[512], where[160];

        while (start < c->nin && (!c->chain[start] || memo_answer(s, start)))
            start++; /* no scripts, or answered from the memo cache */
        if (start >= c->nin)
            return;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->st->msgh_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->st->run_ref);
        lua_pushinteger(L, start);
        lua_pushboolean(L, fresh);
        c->cur = UINT32_MAX;
        c->script = 0;
        rc = gw_script_pcall(s, L, 2, 0, -4, s->set->timeout_ns);
        if (rc == 0) {
            lua_settop(L, 0);
            if (s->memo_mode[start])
                memo_after(s, start);
            start++;
            fresh = 0;
            continue;
        }
        i = failed_point(s, start);
        if (i >= c->nin) {
            if (rc > 0)
                lua_settop(L, 0);
            return;
        }
        id = c->script;
        c->nout = c->committed;
        kind = failure_of(s, L, rc, id, where, sizeof(where), msg, sizeof(msg));
        fail_point(s, i, kind, where, msg);
        if (rc > 0)
            lua_settop(L, 0);
        if (kind == GW_SCRIPT_FAIL_TIMEOUT)
            trip(s, id, i + 1, where);
        start = i + 1;
        fresh = recover(s, L, rc, kind);
        if (fresh < 0)
            break;
    }
    /* No state: whatever was not run fails with the reason. */
    for (uint32_t i = start; i < c->nin; i++)
        if (c->chain[i] && s->rec[i].status == REC_PENDING)
            fail_point(s, i, GW_SCRIPT_FAIL_ERROR, "(scripts)",
                       s->state_err[0] ? s->state_err : "scripts unavailable");
}

/* The type rules for numbers. A field that came in as an integer (or
 * unsigned) and still holds the number the script was handed is copied
 * exactly, beyond 2^53 too; if it now holds another integral number that
 * fits, it stays an integer (unsigned while >= 0); anything else is a float.
 * A field the point did not have is a float (int() makes integers). NaN and
 * infinities cannot be stored: the point fails. */
static void resolve_numbers(gw_script_t *s, uint32_t i)
{
    const gw_script_rec_t *r = &s->rec[i];
    const gw_point_t *in = &s->ctl.inp[i];

    for (uint32_t k = r->first; k < r->first + r->n; k++) {
        gw_point_t *o = &s->out[k];
        for (uint32_t q = 0; q < o->nfields; q++) {
            gw_field_t *f = &o->fields[q];
            const gw_field_t *of = NULL;
            double v;

            if (f->type != FIELD_NUMBER)
                continue;
            v = f->v.f;
            if (!isfinite(v)) {
                uint16_t cid = s->chain[i];
                char msg[160];
                s->ctl.script = cid && r->steps && r->steps <= (uint32_t)s->set->chains[cid - 1].n
                                    ? s->set->chains[cid - 1].ids[r->steps - 1]
                                    : 0;
                snprintf(msg, sizeof(msg), "bad return value: field \"%.*s\": %g cannot be stored",
                         (int)(f->key.n > 64 ? 64 : f->key.n), f->key.p, v);
                char where[300];
                snprintf(where, sizeof(where), "%s:%d", gw_script_set_path(s->set, s->ctl.script),
                         s->ctl.script ? s->set->files[s->ctl.script - 1].line : 0);
                fail_point(s, i, GW_SCRIPT_FAIL_ERROR, where, msg);
                return;
            }
            for (uint32_t j = 0; j < in->nfields; j++)
                if (gw_str_eq(in->fields[j].key, f->key)) {
                    of = &in->fields[j];
                    break;
                }
            f->type = GW_FIELD_FLOAT;
            if (!of || (of->type != GW_FIELD_INT && of->type != GW_FIELD_UINT))
                continue;
            if (v == (of->type == GW_FIELD_INT ? (double)of->v.i : (double)of->v.u)) {
                f->type = of->type;
                f->v = of->v;
            } else if (v == floor(v) && of->type == GW_FIELD_UINT && v >= 0 && v < 18446744073709551616.0) {
                f->type = GW_FIELD_UINT;
                f->v.u = (uint64_t)v;
            } else if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
                f->type = GW_FIELD_INT;
                f->v.i = (int64_t)v;
            }
        }
    }
}

/* Tell the trace which scripts ran for output points k..k+n of input
 * point i. */
static void trace_ran(gw_script_t *s, uint32_t i, uint32_t k, uint32_t n)
{
    uint16_t cid = s->chain[i];
    const chain_t *ch;
    uint32_t steps;

    if (!cid || cid > s->set->nchains)
        return; /* tripped: not run */
    ch = &s->set->chains[cid - 1];
    steps = s->rec[i].steps < (uint32_t)ch->n ? s->rec[i].steps : (uint32_t)ch->n;
    for (uint32_t q = 0; q < n; q++)
        s->trace->ran(s->trace->ud, k + q, ch->paths, steps);
}

/* Put the results in place of the request's points. 0 or -ENOMEM. */
static int merge(gw_script_t *s, gw_points_t *pts)
{
    gw_script_ctl_t *c = &s->ctl;
    int drop = s->set->drop_on_error;
    size_t total = 0;
    gw_point_t *dst;

    for (uint32_t i = 0; i < c->nin; i++) {
        if (!s->scripted[i])
            total++;
        else if (s->rec[i].status == REC_OK)
            total += s->rec[i].n;
        else
            total += !drop;
    }
    if (total > UINT32_MAX)
        return -ENOMEM;
    if (s->merged.cap < total) {
        gw_point_t *v = realloc(s->merged.v, total * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->merged.v = v;
        s->merged.cap = (uint32_t)total;
    }
    dst = s->merged.v;
    for (uint32_t i = 0, k = 0; i < c->nin; i++) {
        uint32_t n = 1;
        const gw_point_t *from = &c->inp[i];

        if (s->scripted[i] && s->rec[i].status == REC_OK) {
            n = s->rec[i].n;
            from = s->out + s->rec[i].first;
        } else if (s->scripted[i] && drop) {
            n = 0;
        }
        if (n == 1) /* most: one struct, not a call */
            dst[k] = *from;
        else if (n) /* dst and s->out are NULL while nothing was emitted */
            memcpy(dst + k, from, n * sizeof(*dst));
        if (s->trace && s->trace->ran && s->scripted[i])
            trace_ran(s, i, k, n);
        k += n;
    }
    {
        gw_points_t tmp = *pts;
        pts->v = s->merged.v;
        pts->cap = s->merged.cap;
        s->merged.v = tmp.v;
        s->merged.cap = tmp.cap;
    }
    pts->n = (uint32_t)total;
    return 0;
}

int gw_script_ready(gw_script_t *s)
{
    return !gw_script_state_ensure(s) || (s->set && s->set->nfiles);
}

int gw_script_covers(const gw_script_t *s, const char *series, size_t n)
{
    return s && s->set && gw_script_set_chain(s->set, series, n) != 0;
}

/* Phase 1: each point's chain, in C, into s->chain (0: no scripts) and
 * s->scripted; the scripted points' tags and fields counted into *ntags,
 * *nfields. Returns how many points are scripted. */
static uint32_t look_up_chains(gw_script_t *s, const gw_points_t *pts, uint32_t *ntags, uint32_t *nfields)
{
    struct {
        gw_str_t name; /* borrowed: a point's series, valid during this run */
        uint16_t id;
    } seen[8]; /* series already looked up in this request */
    uint32_t nseen = 0, nscripted = 0;

    for (uint32_t i = 0; i < pts->n; i++) {
        const gw_point_t *p = &pts->v[i];
        uint32_t k = 0;
        uint16_t id;
        while (k < nseen && !gw_str_eq(seen[k].name, p->series))
            k++;
        if (k < nseen) {
            id = seen[k].id;
        } else {
            id = gw_script_set_chain(s->set, p->series.p, p->series.n);
            if (nseen < sizeof(seen) / sizeof(seen[0])) {
                seen[nseen].name = p->series;
                seen[nseen++].id = id;
            }
        }
        s->chain[i] = id;
        s->scripted[i] = id != 0;
        s->memo_mode[i] = 0;
        if (id) {
            nscripted++;
            *ntags += p->ntags;
            *nfields += p->nfields;
            s->rec[i].status = REC_PENDING;
            s->rec[i].n = 0;
            s->rec[i].steps = 0;
        }
    }
    return nscripted;
}

/* Phase 2's set-up: the control block the driver reads and writes, its
 * output arrays sized for the common case (one point out per point in, a
 * few tags and fields added), the timeouts of this run cleared. 0 or
 * -ENOMEM. */
static int prepare(gw_script_t *s, gw_points_t *pts, gw_arena_t *a, uint32_t nscripted, uint32_t ntags,
                   uint32_t nfields)
{
    gw_script_ctl_t *c = &s->ctl;
    int nfiles = s->set->nfiles;

    s->arena = a;
    c->inp = pts->v;
    c->chain = s->chain;
    c->rec = s->rec;
    c->nin = pts->n;
    c->nout = c->committed = 0;
    if (!s->out || s->outcap < nscripted) {
        uint32_t cap = nscripted < 256 ? 256 : nscripted;
        gw_point_t *o = realloc(s->out, (size_t)cap * sizeof(*o));
        if (!o)
            return -ENOMEM;
        s->out = o;
        s->outcap = cap;
    }
    c->out = s->out;
    c->outcap = s->outcap;
    c->tagcap = ntags + 2 * nscripted + 16;
    c->fieldcap = nfields + 2 * nscripted + 16;
    c->tags = gw_arena_alloc(a, (size_t)c->tagcap * sizeof(gw_tag_t));
    c->fields = gw_arena_alloc(a, (size_t)c->fieldcap * sizeof(gw_field_t));
    if (!c->tags || !c->fields)
        return -ENOMEM;
    c->ntags = c->nfields = 0;
    if (!s->tripped || s->ntripped < nfiles + 1) {
        uint8_t *t = realloc(s->tripped, (size_t)nfiles + 1);
        if (!t)
            return -ENOMEM;
        s->tripped = t;
        s->ntripped = nfiles + 1;
    }
    memset(s->tripped, 0, (size_t)s->ntripped);
    return 0;
}

static int cmp_field_keys(const void *a, const void *b)
{
    return gw_str_cmp(((const gw_field_t *)a)->key, ((const gw_field_t *)b)->key);
}

/* The fields of input point i's outputs, written in full from Lua tables,
 * come in the order of the tables' hash parts, which depends on the Lua
 * state's history: sorted by key, the same point gives the same line in
 * every worker, the debug transform and the harness. (A point written back
 * as a difference keeps its fields' order: the original ones, then the
 * added ones as they were set.) Keys are unique here. */
static void sort_fields(gw_script_t *s, uint32_t i)
{
    const gw_script_rec_t *r = &s->rec[i];

    for (uint32_t k = r->first; k < r->first + r->n; k++) {
        gw_point_t *o = &s->out[k];
        if (o->nfields > 1)
            qsort(o->fields, o->nfields, sizeof(*o->fields), cmp_field_keys);
    }
}

/* Phase 3's check of input point i: what the driver wrote back is checked
 * before C indexes with it (its outputs lie among those written, all of
 * them in s->out); fields written in full are put in order, numbers get
 * their types. Once per point (memo_after may have done it). */
static void check_point(gw_script_t *s, uint32_t i)
{
    gw_script_ctl_t *c = &s->ctl;
    gw_script_rec_t *r = &s->rec[i];
    uint32_t nout = c->nout > s->outcap ? 0 : c->nout;

    if (!s->scripted[i] || r->status != REC_OK)
        return;
    if (r->first > nout || r->n > nout - r->first) {
        fail_point(s, i, GW_SCRIPT_FAIL_ERROR, "(luagw)", "internal error: the driver wrote back a malformed result");
        return;
    }
    if (r->full)
        sort_fields(s, i);
    if (r->numbers)
        resolve_numbers(s, i);
    r->full = r->numbers = 0;
}

static void check_results(gw_script_t *s)
{
    gw_script_ctl_t *c = &s->ctl;

    if (c->nout > s->outcap)
        c->nout = 0;
    for (uint32_t i = 0; i < c->nin; i++)
        check_point(s, i);
}

void gw_script_set_req(gw_script_t *s, const gw_script_req_t *req)
{
    _Static_assert(sizeof(gw_script_req_t) == sizeof(s->ctl.req), "gw_script_req_t is ctl.req");
    _Static_assert(offsetof(gw_script_req_t, token) == 0 && offsetof(gw_script_req_t, db) == 2 * sizeof(gw_str_t),
                   "ctl.req[0] is the token, ctl.req[2] the database");
    if (req)
        memcpy(s->ctl.req, req, sizeof(s->ctl.req));
    else
        memset(s->ctl.req, 0, sizeof(s->ctl.req));
}

int gw_script_run(gw_script_t *s, gw_points_t *pts, gw_arena_t *a, const gw_script_trace_t *trace)
{
    uint32_t nscripted, ntags = 0, nfields = 0;
    int rc;

    gw_script_state_reap(s);
    if (!pts->n)
        return 0;
    if (gw_script_state_ensure(s) && !(s->set && s->set->nfiles))
        return 0;
    if (reserve(s, pts->n))
        return -ENOMEM;
    nscripted = look_up_chains(s, pts, &ntags, &nfields);
    if (!nscripted)
        return 0;
    if (prepare(s, pts, a, nscripted, ntags, nfields) || memo_ready(s) < 0)
        return -ENOMEM;
    if (s->memo && gw_memo_set_req(s->memo, s->ctl.req[0], s->ctl.req[2])) /* in every key */
        return -ENOMEM;
    s->trace = trace;
    if (s->st)
        drive(s);
    else
        for (uint32_t i = 0; i < pts->n; i++)
            if (s->chain[i])
                fail_point(s, i, GW_SCRIPT_FAIL_ERROR, "(scripts)",
                           s->state_err[0] ? s->state_err : "scripts unavailable");
    check_results(s);
    if (s->memo)
        gw_memo_flush(s->memo);
    rc = merge(s, pts);
    if (s->st)
        lua_gc(s->st->L, LUA_GCSTEP, 0);
    s->trace = NULL;
    s->ctl.inp = NULL;
    s->arena = NULL;
    return rc ? rc : (int)(nscripted > INT32_MAX ? INT32_MAX : nscripted);
}
