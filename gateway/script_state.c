/* script_state.c — a worker's Lua states (script_internal.h).
 *
 * A state is built on the worker's thread from a set: a Lua state on the
 * guard's allocator (script_guard.h: the memory limit, and no allocation
 * while the watchdog stops a call), the standard libraries for script.lua,
 * the driver (script.lua's bytecode) run once with a setup table — the
 * files' sources, the chains, params, the C functions of script_env.c — so
 * that it builds each script's sandbox and runs each top level under the
 * budget. It returns the per-point run() (kept as a registry reference),
 * the layout of the shared structs it was compiled against (checked here
 * against C's) and the line where each script's function starts.
 *
 * A worker keeps one state per set. When a newer set is published, the
 * next request builds a state for it (a failure keeps the old state and
 * retries after RETRY_NS, rather than at every request); a state a call
 * was jumped out of is replaced at once (script_run.c). Replaced states
 * wait in a graveyard until the next run, since the points of the run in
 * progress may still borrow their strings. */
#include "script_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "clock.h"

/* script.lua, compiled by `luajit -b` into script_lua.o. */
extern const char luaJIT_BC_gw_script[];

/* The driver's callback when an output array fills up. what: 0 points,
 * 1 tags, 2 fields; keep_from: the first entry of the point being written,
 * which must stay contiguous. 0 or -1 (ENOMEM). */
static int ctl_grow(gw_script_ctl_t *c, int what, uint32_t keep_from)
{
    gw_script_t *s = (gw_script_t *)((char *)c - offsetof(gw_script_t, ctl));
    int rc = -1;

    /* The driver's arguments, checked before they size a copy. */
    if (what < 0 || what > 2 || (what == 1 && keep_from > c->ntags) || (what == 2 && keep_from > c->nfields))
        return -1;
    gw_guard_crit_enter();
    if (what == 0) {
        uint32_t cap = s->outcap ? s->outcap * 2 : 256;
        gw_point_t *p = cap > s->outcap ? realloc(s->out, (size_t)cap * sizeof(*p)) : NULL;
        if (p) {
            s->out = c->out = p;
            s->outcap = c->outcap = cap;
            rc = 0;
        }
    } else if (what == 1) {
        uint32_t n = c->ntags - keep_from, cap = c->tagcap * 2 > 64 ? c->tagcap * 2 : 64;
        gw_tag_t *p = cap > c->tagcap ? gw_arena_alloc(s->arena, (size_t)cap * sizeof(*p)) : NULL;
        if (p) {
            memcpy(p, c->tags + keep_from, (size_t)n * sizeof(*p));
            c->tags = p;
            c->ntags = n;
            c->tagcap = cap;
            rc = 0;
        }
    } else {
        uint32_t n = c->nfields - keep_from, cap = c->fieldcap * 2 > 64 ? c->fieldcap * 2 : 64;
        gw_field_t *p = cap > c->fieldcap ? gw_arena_alloc(s->arena, (size_t)cap * sizeof(*p)) : NULL;
        if (p) {
            memcpy(p, c->fields + keep_from, (size_t)n * sizeof(*p));
            c->fields = p;
            c->nfields = n;
            c->fieldcap = cap;
            rc = 0;
        }
    }
    gw_guard_crit_leave();
    return rc;
}

void gw_script_state_free(lstate_t *st)
{
    if (!st)
        return;
    gw_lalloc_attach(st->alloc, NULL);
    gw_lalloc_enforce(st->alloc, 0);
    if (st->abandon) {
        /* Interrupted inside LuaJIT's runtime: the heap may be mid-update,
         * so do not walk it. Its memory is ours to free; its machine code
         * (mmap'd by LuaJIT) is lost. */
        gw_guard_note_abandoned();
        gw_log(GW_LOG_WARN, "script state abandoned", "abandoned_total=%llu",
               (unsigned long long)gw_guard_abandoned());
    } else if (st->L) {
        lua_close(st->L);
    }
    gw_lalloc_free_all(st->alloc);
    free(st->memo);
    free(st);
}

void gw_script_state_reap(gw_script_t *s)
{
    while (s->graveyard) {
        lstate_t *st = s->graveyard;
        s->graveyard = st->next;
        gw_script_state_free(st);
    }
}

static void graveyard_add(gw_script_t *s, lstate_t *st)
{
    st->next = s->graveyard;
    s->graveyard = st;
}

static void unblock_guard_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, GW_GUARD_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int gw_script_pcall(gw_script_t *s, lua_State *L, int nargs, int nres, int msgh, int64_t budget)
{
    gw_guard_t *g = &s->guard;
    int jumped, rc;

    /* The watchdog reads both unlocked (script_guard.h). */
    atomic_store_explicit(&g->budget_ns, budget, memory_order_relaxed);
    atomic_store_explicit(&g->abandon_ns, budget * 4 > budget + 200 * 1000000LL ? budget * 4 : budget + 200 * 1000000LL,
                          memory_order_relaxed);
    g->L = L;
    g->where[0] = '\0';
    jumped = sigsetjmp(g->jb, 0);
    if (jumped) {
        gw_guard_disarm(g);
        unblock_guard_signal();
        return -jumped;
    }
    g->jb_ok = 1;
    gw_guard_arm(g);
    rc = lua_pcall(L, nargs, nres, msgh);
    gw_guard_disarm(g);
    if (g->timed_out)
        lua_sethook(L, NULL, 0, 0);
    return rc;
}


static void push_node(lua_State *L, const gw_conf_node_t *n);

/* A params value: plain scalars that read as numbers, booleans or null
 * become those; everything else is a string. */
static void push_scalar(lua_State *L, const gw_conf_node_t *n)
{
    const char *v = n->value;
    char *end;
    double d;

    if (n->plain) {
        if (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL")) {
            lua_pushnil(L);
            return;
        }
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) {
            lua_pushboolean(L, 1);
            return;
        }
        if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) {
            lua_pushboolean(L, 0);
            return;
        }
        if ((*v == '-' || *v == '+' || *v == '.' || (*v >= '0' && *v <= '9'))) {
            errno = 0;
            d = strtod(v, &end);
            if (!*end && !errno && isfinite(d) && !strchr(v, 'x') && !strchr(v, 'X')) {
                lua_pushnumber(L, d);
                return;
            }
        }
    }
    lua_pushstring(L, v);
}

static void push_node(lua_State *L, const gw_conf_node_t *n)
{
    int i = 1;

    if (n->kind == GW_CONF_SCALAR) {
        push_scalar(L, n);
        return;
    }
    lua_newtable(L);
    for (const gw_conf_node_t *c = n->child; c; c = c->next) {
        push_node(L, c);
        if (n->kind == GW_CONF_MAP)
            lua_setfield(L, -2, c->key);
        else
            lua_rawseti(L, -2, i++);
    }
}

/* Stack: before [] after [setup]: what the driver needs to build the
 * sandboxes: scripts {path, source}, chains {series, ids}, params,
 * max_emit and the C functions c. */
static void push_setup(lua_State *L, gw_script_t *s, const gw_script_set_t *set)
{
    lua_createtable(L, 0, 5);
    lua_createtable(L, set->nfiles, 0);
    for (int i = 0; i < set->nfiles; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, set->files[i].path);
        lua_setfield(L, -2, "path");
        lua_pushlstring(L, set->files[i].source, set->files[i].len);
        lua_setfield(L, -2, "source");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "scripts");
    lua_createtable(L, set->nchains, 0);
    for (int i = 0; i < set->nchains; i++) {
        const chain_t *c = &set->chains[i];
        lua_createtable(L, 0, 2);
        if (c->series) {
            lua_pushstring(L, c->series);
            lua_setfield(L, -2, "series");
        }
        lua_createtable(L, c->n, 0);
        for (int k = 0; k < c->n; k++) {
            lua_pushinteger(L, c->ids[k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "ids");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "chains");
    lua_newtable(L);
    for (const gw_conf_node_t *c = set->params; c; c = c->next) {
        push_node(L, c);
        lua_setfield(L, -2, c->key);
    }
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, MAX_EMIT);
    lua_setfield(L, -2, "max_emit");
    gw_script_env_push_c(L, s);
    lua_setfield(L, -2, "c");
}

static int layout_ok(lua_State *L)
{
    static const struct {
        const char *k;
        size_t v;
    } want[] = {
        {"point", sizeof(gw_point_t)},
        {"tag", sizeof(gw_tag_t)},
        {"field", sizeof(gw_field_t)},
        {"ctl", sizeof(gw_script_ctl_t)},
        {"rec", sizeof(gw_script_rec_t)},
        {"field_v", offsetof(gw_field_t, v)},
        {"point_src", offsetof(gw_point_t, src)},
        {"ctl_nin", offsetof(gw_script_ctl_t, nin)},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        lua_getfield(L, -1, want[i].k);
        if ((size_t)lua_tointeger(L, -1) != want[i].v) {
            lua_pop(L, 1);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* Why a state's top-level call failed (rc from gw_script_pcall), into err. */
static void top_level_error(gw_script_t *s, lstate_t *st, const gw_script_set_t *set, int rc, char *err,
                            size_t errlen)
{
    const char *path = s->ctl.script && s->ctl.script <= (uint32_t)set->nfiles ? set->files[s->ctl.script - 1].path
                                                                                : "?";
    int64_t budget = set->timeout_ns > INIT_BUDGET_NS ? set->timeout_ns : INIT_BUDGET_NS;

    if (rc < 0) {
        st->abandon = rc == -GW_GUARD_ABANDON;
        if (st->abandon)
            st->L = NULL;
    }
    if (rc < 0 || s->guard.timed_out)
        snprintf(err, errlen, "%s: top level stopped: it used more than %lld ms of CPU", path,
                 (long long)(budget / 1000000));
    else if (rc == LUA_ERRMEM)
        snprintf(err, errlen, "%s: top level exceeded scripts.memory_limit (%zu bytes)", path, set->memory_limit);
    else
        snprintf(err, errlen, "%s", lua_tostring(st->L, -1) ? lua_tostring(st->L, -1) : "error");
}

/* Stack: before [msgh, run, layout, lines, memo] after [msgh, run]. Note
 * which chains are memoized (st->memo), where each script's function
 * starts (the set's first state only: its check, before the set is shared)
 * and check the layout. 0, or -1 with err set. */
static int take_results(lua_State *L, lstate_t *st, gw_script_set_t *set, char *err, size_t errlen)
{
    if (!(st->memo = calloc((size_t)set->nchains + 1, 1))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 1; i <= set->nchains; i++) {
        lua_rawgeti(L, -1, i);
        st->memo[i] = (uint8_t)lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    for (int i = 0; i < set->nfiles; i++) {
        lua_rawgeti(L, -1, i + 1);
        if (!set->files[i].line)
            set->files[i].line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!layout_ok(L)) {
        snprintf(err, errlen, "internal error: script.lua and script.c disagree on the point layout");
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

lstate_t *gw_script_state_new(gw_script_t *s, gw_script_set_t *set, char *err, size_t errlen)
{
    lstate_t *st = calloc(1, sizeof(*st));
    gw_script_ctl_t saved = s->ctl; /* a state may be rebuilt in the middle of a run */
    lua_Debug ar;
    lua_State *L;
    int rc;

    if (!st || !(st->alloc = gw_lalloc_create(set->memory_limit))) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    L = st->L = lua_newstate(gw_lalloc, st->alloc);
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state");
        goto fail;
    }
    gw_lalloc_attach(st->alloc, &s->guard);
    luaL_openlibs(L);
    gw_script_env_push_msgh(L, s);
    lua_pushvalue(L, -1);
    st->msgh_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* Stack: [msgh] */
    if (luaL_loadbufferx(L, luaJIT_BC_gw_script, ~(size_t)0, "=luagw", "b")) {
        snprintf(err, errlen, "internal error: %s", lua_tostring(L, -1));
        goto fail;
    }
    lua_pushvalue(L, -1);
    if (lua_getinfo(L, ">S", &ar))
        snprintf(s->driver_src, sizeof(s->driver_src), "%s", ar.source);
    push_setup(L, s, set);
    lua_pushlightuserdata(L, &s->ctl);
    /* Stack: [msgh, driver, setup, ctl] */
    gw_lalloc_enforce(st->alloc, 1);
    s->ctl.inp = NULL;
    s->ctl.script = 0;
    rc = gw_script_pcall(s, L, 2, 4, 1, set->timeout_ns > INIT_BUDGET_NS ? set->timeout_ns : INIT_BUDGET_NS);
    s->ctl.inp = saved.inp;
    s->ctl.cur = saved.cur;
    if (rc) {
        top_level_error(s, st, set, rc, err, errlen);
        goto fail;
    }
    if (take_results(L, st, set, err, errlen))
        goto fail;
    st->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    s->ctl.script = saved.script;
    return st;

fail:
    s->ctl.script = saved.script;
    gw_script_state_free(st);
    return NULL;
}

gw_script_t *gw_script_create(gw_script_set_t *pinned)
{
    gw_script_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pinned = gw_script_set_retain(pinned);
    s->ctl.seq = &s->guard.seq;
    s->ctl.grow = ctl_grow;
    return s;
}

void gw_script_destroy(gw_script_t *s)
{
    if (!s)
        return;
    gw_script_state_reap(s);
    gw_script_state_free(s->st);
    gw_guard_unregister(&s->guard);
    gw_script_set_release(s->set);
    gw_script_set_release(s->pinned);
    free(s->chain);
    free(s->scripted);
    free(s->rec);
    free(s->out);
    free(s->tripped);
    free(s->memo_mode);
    gw_memo_destroy(s->memo);
    gw_points_free(&s->merged);
    free(s);
}

/* s now uses want (a reference taken over) of generation gen, with state
 * st (NULL: none); the state it had waits in the graveyard. */
static void switch_to(gw_script_t *s, gw_script_set_t *want, uint64_t gen, lstate_t *st)
{
    if (s->st)
        graveyard_add(s, s->st);
    s->st = st;
    gw_script_set_release(s->set);
    s->set = want;
    s->gen = gen;
}

/* The set s should use now, retained, with its generation into *gen;
 * NULL with *gen 0 when s already uses it (or must wait to retry). */
static gw_script_set_t *wanted_set(gw_script_t *s, uint64_t *gen, int *done)
{
    *done = 0;
    if (s->pinned) {
        if (s->st || gw_clock_mono_ns() < s->retry_at) {
            *done = 1;
            return NULL;
        }
        *gen = 1;
        return gw_script_set_retain(s->pinned);
    }
    *gen = gw_script_published_gen();
    if ((*gen == s->gen && (s->st || !s->set)) || gw_clock_mono_ns() < s->retry_at) {
        *done = 1;
        return NULL;
    }
    return gw_script_published(gen);
}

int gw_script_state_ensure(gw_script_t *s)
{
    gw_script_set_t *want;
    uint64_t gen = 0;
    lstate_t *st;
    int done;

    if (!s->guard.registered && gw_guard_register(&s->guard)) {
        snprintf(s->state_err, sizeof(s->state_err), "cannot start the script watchdog");
        return -1;
    }
    want = wanted_set(s, &gen, &done);
    if (done)
        return s->st ? 0 : -1;
    if (want == s->set && s->st) {
        gw_script_set_release(want);
        s->gen = gen;
        return 0;
    }
    if (!want || !want->nfiles) {
        /* Scripting withdrawn, or a set without scripts. */
        switch_to(s, want, gen, NULL);
        return -1;
    }
    st = gw_script_state_new(s, want, s->state_err, sizeof(s->state_err));
    if (!st) {
        /* Keep what we have (an older set's state) and try again later
         * rather than on every request. With nothing to keep, the set's
         * points fail (and are counted) until a state can be built. */
        gw_log(GW_LOG_ERROR, "script state failed", "error=\"%s\"", s->state_err);
        s->retry_at = gw_clock_mono_ns() + RETRY_NS;
        if (s->st) {
            gw_script_set_release(want);
            return 0;
        }
        switch_to(s, want, gen, NULL);
        return -1;
    }
    switch_to(s, want, gen, st);
    s->retry_at = 0;
    return 0;
}

int gw_script_state_replace(gw_script_t *s, int abandon)
{
    lstate_t *st;

    s->st->abandon = abandon;
    if (abandon)
        s->st->L = NULL;
    graveyard_add(s, s->st);
    s->st = NULL;
    st = gw_script_state_new(s, s->set, s->state_err, sizeof(s->state_err));
    if (!st) {
        gw_log(GW_LOG_ERROR, "script state failed", "error=\"%s\"", s->state_err);
        s->retry_at = gw_clock_mono_ns() + RETRY_NS;
        return -1;
    }
    s->st = st;
    return 0;
}
