/* script.c — per-series Lua scripts, see script.h and docs/scripts.md.
 *
 * The Lua half lives in script.lua (compiled in as bytecode): it builds the
 * sandbox, loads the scripts and runs the per-request loop. This file owns
 * the script sets, the worker states, the budget (through script_guard.c),
 * error accounting and the debug transform.
 *
 * Per request, in gw_script_run:
 *   1. each point's chain is looked up in C (a hash of series names, with a
 *      one-entry cache); points of series without scripts never reach Lua;
 *   2. the driver's run() is called once, under the guard, and walks the
 *      points; on an error it unwinds to here, the point in progress follows
 *      on_error, and run() is called again from the next point;
 *   3. the results are merged back into the request's point array. */
#include "script.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>

#include "json.h"
#include "lineproto.h"
#include "log.h"
#include "pipeline.h"
#include "script_guard.h"

/* script.lua, compiled by `luajit -b` into script_lua.o. */
extern const char luaJIT_BC_gw_script[];

#define MAX_EMIT 1000                       /* points one point may become */
#define INIT_BUDGET_NS (1000 * 1000000LL)   /* a script's top level: at least 1 s */
#define RETRY_NS (1000 * 1000000LL)         /* a worker whose state failed retries after 1 s */
#define MAX_STAT_SERIES 1024                /* error counters kept per series, then "(other)" */
#define LOG_EVERY_NS (1000 * 1000000LL)     /* one error line per series per second */
#define SCRIPT_LOGS_PER_SEC 20              /* log.* lines per worker per second */
#define TRIP_TIMEOUTS 3                     /* timeouts of a script in one request before
                                               its other points there are not run */

/* ==================================================================== */
/* Shared with script.lua (keep the ffi.cdef there in sync; checked at   */
/* state creation)                                                       */
/* ==================================================================== */

enum { REC_PENDING = 0, REC_OK, REC_ERROR, REC_TIMEOUT, REC_MEMORY };

/* A field the driver wrote back as a Lua number; its type is decided here
 * (resolve_numbers) against the point's original fields. */
#define FIELD_NUMBER 99

typedef struct {
    uint32_t first;  /* first output point in ctl.out */
    uint32_t n;      /* output points */
    uint32_t status; /* REC_* */
    uint32_t steps;  /* scripts of the chain that ran */
    uint32_t numbers; /* fields written back as FIELD_NUMBER */
} gw_script_rec_t;

typedef struct gw_script_ctl {
    gw_point_t *inp;         /* borrowed: the request's points */
    const uint16_t *chain;   /* borrowed: chain id per input point, 0 = none */
    gw_script_rec_t *rec;    /* borrowed: one per input point */
    gw_point_t *out;         /* borrowed: output points (grown by grow) */
    gw_tag_t *tags;          /* borrowed: current tag block (arena) */
    gw_field_t *fields;      /* borrowed: current field block (arena) */
    volatile uint32_t *seq;  /* borrowed: the guard's heartbeat */
    int (*grow)(struct gw_script_ctl *c, int what, uint32_t keep_from);
    uint32_t nin, cur, script, nout, committed, outcap;
    uint32_t ntags, tagcap, nfields, fieldcap;
    gw_str_t req[GW_REQ_NFIELDS]; /* borrowed: the request scripts see as req (gw_script_req_t) */
} gw_script_ctl_t;

/* ==================================================================== */
/* Script sets                                                           */
/* ==================================================================== */

typedef struct {
    char *path;   /* owned: dir/file, as messages and chunk names show it */
    char *source; /* owned */
    size_t len;
    int line;     /* where its function is defined (set by the first state) */
} script_file_t;

typedef struct {
    char *series;  /* owned; NULL for the chain of _all.lua alone */
    uint16_t *ids; /* owned: 1-based indexes into files */
    int n;
} chain_t;

typedef struct {
    const char *name; /* borrowed from the chain */
    size_t len;
    uint16_t id;
} slot_t;

struct gw_script_set {
    atomic_int refs;
    script_file_t *files; /* owned */
    int nfiles;
    chain_t *chains;      /* owned; chain id = index + 1 */
    int nchains;
    uint16_t all_chain;   /* chain id of _all.lua alone, 0 = none */
    slot_t *slots;        /* owned: series -> chain id, open addressing */
    uint32_t mask;
    gw_conf_node_t *params; /* owned copy */
    int64_t timeout_ns;
    size_t memory_limit;
    int drop_on_error;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static uint16_t set_lookup(const gw_script_set_t *set, const char *p, size_t n)
{
    if (set->slots) {
        for (uint32_t i = (uint32_t)hash_bytes(p, n) & set->mask;; i = (i + 1) & set->mask) {
            const slot_t *sl = &set->slots[i];
            if (!sl->name)
                break;
            if (sl->len == n && memcmp(sl->name, p, n) == 0)
                return sl->id;
        }
    }
    return set->all_chain;
}

static void free_node(gw_conf_node_t *n)
{
    gw_conf_node_free(n);
}

static gw_conf_node_t *copy_node(const gw_conf_node_t *n)
{
    gw_conf_node_t *head = NULL, **tail = &head;

    for (; n; n = n->next) {
        gw_conf_node_t *c = calloc(1, sizeof(*c));
        if (!c)
            goto fail;
        *tail = c;
        tail = &c->next;
        c->kind = n->kind;
        c->plain = n->plain;
        c->line = n->line;
        c->column = n->column;
        if ((n->key && !(c->key = strdup(n->key))) || (n->value && !(c->value = strdup(n->value))))
            goto fail;
        if (n->child && !(c->child = copy_node(n->child)))
            goto fail;
    }
    return head;
fail:
    free_node(head);
    return NULL;
}

static void set_free(gw_script_set_t *set)
{
    if (!set)
        return;
    for (int i = 0; i < set->nfiles; i++) {
        free(set->files[i].path);
        free(set->files[i].source);
    }
    free(set->files);
    for (int i = 0; i < set->nchains; i++) {
        free(set->chains[i].series);
        free(set->chains[i].ids);
    }
    free(set->chains);
    free(set->slots);
    free_node(set->params);
    free(set);
}

gw_script_set_t *gw_script_set_retain(gw_script_set_t *set)
{
    if (set)
        atomic_fetch_add(&set->refs, 1);
    return set;
}

void gw_script_set_release(gw_script_set_t *set)
{
    if (set && atomic_fetch_sub(&set->refs, 1) == 1)
        set_free(set);
}

int gw_script_set_count(const gw_script_set_t *set)
{
    return set ? set->nfiles : 0;
}

/* Index of the file dir/name, adding it (read from disk) if new.
 * Returns the 1-based id, or 0 with err set. */
static int set_add_file(gw_script_set_t *set, const char *dir, const char *name, char *err, size_t errlen)
{
    char *path = NULL;
    script_file_t *f;
    FILE *fp = NULL;
    long n;

    if (asprintf(&path, "%s/%s", dir, name) < 0) {
        path = NULL;
        goto nomem;
    }
    for (int i = 0; i < set->nfiles; i++)
        if (strcmp(set->files[i].path, path) == 0) {
            free(path);
            return i + 1;
        }
    if (set->nfiles >= 65535) {
        snprintf(err, errlen, "%s: too many script files", path);
        goto fail;
    }
    f = realloc(set->files, (size_t)(set->nfiles + 1) * sizeof(*f));
    if (!f)
        goto nomem;
    set->files = f;
    f = &set->files[set->nfiles];
    memset(f, 0, sizeof(*f));
    /* The name first: a path near PATH_MAX would push it out of err. */
    fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s (in %s)", name, strerror(errno), dir);
        goto fail;
    }
    if (fseek(fp, 0, SEEK_END) || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    f->source = malloc((size_t)n + 1);
    if (!f->source || fread(f->source, 1, (size_t)n, fp) != (size_t)n) {
        snprintf(err, errlen, "%s: cannot read: %s", path, f->source ? "short read" : "out of memory");
        free(f->source);
        f->source = NULL;
        goto fail;
    }
    fclose(fp);
    f->source[n] = '\0';
    f->len = (size_t)n;
    f->path = path;
    set->nfiles++;
    return set->nfiles;
nomem:
    snprintf(err, errlen, "%s/%s: out of memory", dir, name);
fail:
    if (fp)
        fclose(fp);
    free(path);
    return 0;
}

/* Add the chain [_all?] + ids for series (NULL = _all alone). 0 or -1. */
static int set_add_chain(gw_script_set_t *set, const char *series, int all_id, const int *ids, int n)
{
    chain_t *c = realloc(set->chains, (size_t)(set->nchains + 1) * sizeof(*c));
    int k = 0;

    if (!c)
        return -1;
    set->chains = c;
    c = &set->chains[set->nchains];
    memset(c, 0, sizeof(*c));
    c->ids = malloc((size_t)(n + 1) * sizeof(*c->ids));
    if (!c->ids || (series && !(c->series = strdup(series)))) {
        free(c->ids);
        return -1;
    }
    if (all_id)
        c->ids[k++] = (uint16_t)all_id;
    for (int i = 0; i < n; i++)
        c->ids[k++] = (uint16_t)ids[i];
    c->n = k;
    set->nchains++;
    return 0;
}

static int chain_has_series(const gw_script_set_t *set, const char *series)
{
    for (int i = 0; i < set->nchains; i++)
        if (set->chains[i].series && strcmp(set->chains[i].series, series) == 0)
            return 1;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_set(gw_script_set_t *set, char *err, size_t errlen);

gw_script_set_t *gw_script_set_load(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_script_set_t *set = calloc(1, sizeof(*set));
    const char *dir = cfg->scripts.dir;
    DIR *d = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t nnames = 0;
    int all_id = 0, ids[256];

    if (errlen)
        err[0] = '\0';
    if (!set)
        goto nomem;
    atomic_init(&set->refs, 1);
    set->timeout_ns = (int64_t)cfg->scripts.timeout_ms * 1000000;
    set->memory_limit = cfg->scripts.memory_limit;
    set->drop_on_error = cfg->scripts.on_error && strcmp(cfg->scripts.on_error, "drop") == 0;
    if (cfg->scripts.params && cfg->scripts.params->child &&
        !(set->params = copy_node(cfg->scripts.params->child)))
        goto nomem;

    /* The directory: _all.lua and <series>.lua. A missing directory means no
     * scripts (chains in scripts.series still need their files). */
    d = opendir(dir);
    if (!d && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
        goto fail;
    }
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        char *path;
        struct stat st;
        char **nn;
        int bad;

        if (n <= 4 || de->d_name[0] == '.' || strcmp(de->d_name + n - 4, ".lua") != 0)
            continue;
        /* A script file that cannot be looked at is refused, never skipped
         * (a path beyond PATH_MAX, a dangling link...). */
        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
            goto nomem;
        bad = stat(path, &st) ? errno : 0;
        free(path);
        if (bad) {
            snprintf(err, errlen, "%s: cannot read: %s (in %s)", de->d_name, strerror(bad), dir);
            goto fail;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        nn = realloc(names, (nnames + 1) * sizeof(*names));
        if (!nn)
            goto nomem;
        names = nn;
        if (!(names[nnames] = strdup(de->d_name)))
            goto nomem;
        nnames++;
    }
    if (names)
        qsort(names, nnames, sizeof(*names), cmp_names);
    for (size_t i = 0; i < nnames; i++)
        if (strcmp(names[i], "_all.lua") == 0 && !(all_id = set_add_file(set, dir, names[i], err, errlen)))
            goto fail;

    /* scripts.series first: a chain there replaces <series>.lua. */
    if (cfg->scripts.series)
        for (const gw_conf_node_t *c = cfg->scripts.series->child; c; c = c->next) {
            int n = 0;
            const gw_conf_node_t *f = c->kind == GW_CONF_SCALAR ? c : c->child;
            for (; f; f = c->kind == GW_CONF_SCALAR ? NULL : f->next) {
                if (n >= (int)(sizeof(ids) / sizeof(ids[0]))) {
                    snprintf(err, errlen, "%s:%zu:%zu: scripts.series.%s: more than %d scripts",
                             cfg->path, c->line, c->column, c->key, n);
                    goto fail;
                }
                if (!(ids[n++] = set_add_file(set, dir, f->value, err, errlen))) {
                    /* Say which line of the config named the file. */
                    char inner[512];
                    snprintf(inner, sizeof(inner), "%s", err);
                    snprintf(err, errlen, "%s:%zu:%zu: scripts.series.%s: %s", cfg->path, f->line, f->column,
                             c->key, inner);
                    goto fail;
                }
            }
            if (set_add_chain(set, c->key, all_id, ids, n))
                goto nomem;
        }
    for (size_t i = 0; i < nnames; i++) {
        char *series;
        int rc = 0;

        if (strcmp(names[i], "_all.lua") == 0)
            continue;
        if (!(series = strndup(names[i], strlen(names[i]) - 4)))
            goto nomem;
        if (!chain_has_series(set, series)) {
            if (!(ids[0] = set_add_file(set, dir, names[i], err, errlen)))
                rc = -1;
            else if (set_add_chain(set, series, all_id, ids, 1))
                rc = -ENOMEM;
        }
        free(series);
        if (rc == -ENOMEM)
            goto nomem;
        if (rc)
            goto fail;
    }
    if (all_id) {
        if (set_add_chain(set, NULL, all_id, ids, 0))
            goto nomem;
        set->all_chain = (uint16_t)set->nchains;
    }

    /* The series table: a power of two at least twice the chains. */
    {
        uint32_t cap = 8;
        while (cap < (uint32_t)set->nchains * 2)
            cap *= 2;
        set->slots = calloc(cap, sizeof(*set->slots));
        if (!set->slots)
            goto nomem;
        set->mask = cap - 1;
        for (int i = 0; i < set->nchains; i++) {
            chain_t *c = &set->chains[i];
            size_t len;
            uint32_t j;
            if (!c->series)
                continue;
            len = strlen(c->series);
            for (j = (uint32_t)hash_bytes(c->series, len) & set->mask; set->slots[j].name; j = (j + 1) & set->mask)
                ;
            set->slots[j] = (slot_t){c->series, len, (uint16_t)(i + 1)};
        }
    }

    if (d)
        closedir(d);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    d = NULL;
    names = NULL;
    nnames = 0;
    /* Compile and run each file's top level once, exactly as a worker will. */
    if (set->nfiles && check_set(set, err, errlen))
        goto fail;
    return set;

nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
fail:
    if (d)
        closedir(d);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    set_free(set);
    return NULL;
}

/* ---------------------------------------------------------- publishing */

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static gw_script_set_t *published;     /* owned reference */
static atomic_uint_fast64_t pub_gen = 1;

void gw_script_set_publish(gw_script_set_t *set)
{
    gw_script_set_t *old;

    pthread_mutex_lock(&pub_lock);
    old = published;
    published = set;
    atomic_fetch_add(&pub_gen, 1);
    pthread_mutex_unlock(&pub_lock);
    gw_script_set_release(old);
}

void gw_script_shutdown(void)
{
    gw_script_set_publish(NULL);
}

static gw_script_set_t *published_get(uint64_t *gen)
{
    gw_script_set_t *set;

    pthread_mutex_lock(&pub_lock);
    set = gw_script_set_retain(published);
    *gen = atomic_load(&pub_gen);
    pthread_mutex_unlock(&pub_lock);
    return set;
}

/* ==================================================================== */
/* Error accounting: counters per series, rate-limited log lines         */
/* ==================================================================== */

enum { KIND_ERROR = 0, KIND_TIMEOUT, KIND_MEMORY };
static const char *const kind_names[] = {"error", "timeout", "memory"};

typedef struct {
    char *series; /* owned */
    uint64_t count[3];
    int64_t last_log;
    uint32_t suppressed;
} stat_t;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static stat_t stats[MAX_STAT_SERIES + 1]; /* the last one is "(other)" */
static int nstats;
static uint64_t stats_total[3];

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copy msg into out for a log value in double quotes: quotes become ',
 * control characters spaces, at most outlen-1 bytes. */
static void log_clean(char *out, size_t outlen, const char *msg, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)msg[i];
        out[k++] = c == '"' ? '\'' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[k] = '\0';
}

/* Count one failure of a point of series and log it unless this series
 * already logged within the last second. */
static void note_failure(gw_str_t series, int kind, const char *where, const char *msg, int dropped)
{
    stat_t *st = NULL;
    int64_t now = mono_ns();
    int log = 0;
    uint32_t suppressed = 0;
    char s[128], m[512];

    pthread_mutex_lock(&stats_lock);
    stats_total[kind]++;
    for (int i = 0; i < nstats; i++)
        if (strlen(stats[i].series) == series.n && memcmp(stats[i].series, series.p, series.n) == 0) {
            st = &stats[i];
            break;
        }
    if (!st && nstats < MAX_STAT_SERIES && (stats[nstats].series = strndup(series.p, series.n)))
        st = &stats[nstats++];
    if (!st) {
        st = &stats[MAX_STAT_SERIES];
        if (!st->series)
            st->series = strdup("(other)");
    }
    st->count[kind]++;
    if (!st->last_log || now - st->last_log >= LOG_EVERY_NS) {
        log = 1;
        suppressed = st->suppressed;
        st->suppressed = 0;
        st->last_log = now;
    } else {
        st->suppressed++;
    }
    pthread_mutex_unlock(&stats_lock);
    if (!log)
        return;
    log_clean(s, sizeof(s), series.p, series.n);
    log_clean(m, sizeof(m), msg, strlen(msg));
    gw_log(GW_LOG_WARN, kind == KIND_TIMEOUT ? "script timeout" : kind == KIND_MEMORY ? "script memory limit" : "script error",
           "series=\"%s\" script=%s error=\"%s\" point=%s suppressed=%u", s, where, m, dropped ? "dropped" : "passed",
           suppressed);
}

/* The counters live as long as the process, or the library when a spec
 * loads it through the FFI and unloads it at exit. */
__attribute__((destructor)) static void stats_free(void)
{
    for (int i = 0; i <= MAX_STAT_SERIES; i++) {
        free(stats[i].series);
        stats[i].series = NULL;
    }
    nstats = 0;
}

char *gw_script_stats_json(void)
{
    json_t *o = json_object(), *series = json_object(), *total;
    char *text;

    pthread_mutex_lock(&stats_lock);
    total = json_pack("{s:I, s:I, s:I}", "errors", (json_int_t)stats_total[0], "timeouts",
                      (json_int_t)stats_total[1], "memory", (json_int_t)stats_total[2]);
    for (int i = 0; i <= MAX_STAT_SERIES; i++) {
        stat_t *st = &stats[i];
        if (i >= nstats && i != MAX_STAT_SERIES)
            continue;
        if (!st->series)
            continue;
        json_object_set_new(series, st->series,
                            json_pack("{s:I, s:I, s:I}", "errors", (json_int_t)st->count[0], "timeouts",
                                      (json_int_t)st->count[1], "memory", (json_int_t)st->count[2]));
    }
    pthread_mutex_unlock(&stats_lock);
    json_object_set_new(o, "total", total);
    json_object_set_new(o, "series", series);
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* ==================================================================== */
/* Workers                                                               */
/* ==================================================================== */

typedef struct lstate {
    lua_State *L;
    gw_lalloc_t *alloc;   /* owned */
    int run_ref;          /* the driver's run() */
    int msgh_ref;         /* the message handler */
    int abandon;          /* free without lua_close (interrupted in LuaJIT's C code) */
    struct lstate *next;  /* the graveyard */
} lstate_t;

/* What the debug transform records beside the run. */
typedef struct {
    json_t *errors;     /* borrowed */
    uint32_t *origin;   /* owned: input index of each output point */
    uint32_t norigin;
} debug_t;

struct gw_script {
    gw_script_set_t *pinned; /* owned reference, or NULL: follow the published set */
    gw_script_set_t *set;    /* owned reference: the set st was built from */
    uint64_t gen;            /* publication generation of set */
    lstate_t *st;            /* owned: NULL until the first run */
    lstate_t *graveyard;     /* owned: replaced states, freed at the next run */
    int64_t retry_at;        /* mono ns: no new state before this */
    char state_err[512];     /* why the last state creation failed */
    gw_guard_t guard;
    gw_script_ctl_t ctl;
    gw_arena_t *arena;       /* borrowed during a run */
    uint16_t *chain;         /* owned, per input point */
    uint8_t *scripted;       /* owned, per input point */
    gw_script_rec_t *rec;    /* owned, per input point */
    uint32_t cap;            /* of chain, scripted, rec */
    gw_point_t *out;         /* owned: ctl.out */
    uint32_t outcap;
    gw_points_t merged;      /* owned: swapped with the caller's array */
    uint8_t *tripped;        /* owned: per script id, timed out in this run */
    int ntripped;
    int64_t log_window;      /* log.* rate limit */
    int log_count;
    int log_suppressed;
    debug_t *dbg;            /* borrowed during a debug run */
    char driver_src[256];    /* script.lua's chunk name: frames to skip in messages */
    gw_arena_t *own_arena;   /* owned: gw_script_transform's */
    gw_points_t own_points;  /* owned: gw_script_transform's */
};

/* ---------------------------------------------------------- sandbox C */

static gw_script_t *self_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* log.info/warn/error(msg): one line with the script and series, at most
 * SCRIPT_LOGS_PER_SEC per worker per second. */
static int l_log(lua_State *L)
{
    gw_script_t *s = self_of(L);
    int level = (int)lua_tointeger(L, lua_upvalueindex(2));
    int64_t now = mono_ns();
    size_t n = 0;
    const char *msg = lua_tolstring(L, 1, &n);
    char where[160] = "?", series[128] = "", m[600];
    lua_Debug ar;
    int suppressed;

    if (!msg)
        msg = luaL_typename(L, 1), n = strlen(msg);
    if (now - s->log_window >= 1000000000LL) {
        s->log_window = now;
        s->log_count = 0;
    }
    if (s->log_count >= SCRIPT_LOGS_PER_SEC) {
        s->log_suppressed++;
        return 0;
    }
    s->log_count++;
    suppressed = s->log_suppressed;
    s->log_suppressed = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        snprintf(where, sizeof(where), "%s:%d", ar.source[0] == '@' ? ar.source + 1 : ar.short_src, ar.currentline);
    if (s->ctl.inp && s->ctl.cur < s->ctl.nin)
        log_clean(series, sizeof(series), s->ctl.inp[s->ctl.cur].series.p, s->ctl.inp[s->ctl.cur].series.n);
    log_clean(m, sizeof(m), msg, n);
    gw_guard_crit_enter();
    gw_log(level, "script log", "script=%s series=\"%s\" text=\"%s\" suppressed=%d", where, series, m, suppressed);
    gw_guard_crit_leave();
    if (gw_guard_stop_pending())
        return luaL_error(L, "timeout");
    return 0;
}

static void set_field_int(lua_State *L, const char *k, int v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int get_field_int(lua_State *L, const char *k, int def)
{
    int v;
    lua_getfield(L, -1, k);
    if (lua_isnumber(L, -1))
        v = (int)lua_tointeger(L, -1);
    else if (def < 0)
        return luaL_error(L, "field '%s' missing in date table", k);
    else
        v = def;
    lua_pop(L, 1);
    return v;
}

/* os.date([format [, time]]) as in Lua 5.1, with the locking parts of libc
 * (localtime, strftime) inside a critical section. */
static int l_os_date(lua_State *L)
{
    const char *fmt = luaL_optstring(L, 1, "%c");
    time_t t = lua_isnoneornil(L, 2) ? time(NULL) : (time_t)luaL_checknumber(L, 2);
    struct tm tm, *ok;
    int utc = 0;

    if (*fmt == '!') {
        utc = 1;
        fmt++;
    }
    gw_guard_crit_enter();
    ok = utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm);
    gw_guard_crit_leave();
    if (!ok) {
        lua_pushnil(L);
        return 1;
    }
    if (strcmp(fmt, "*t") == 0) {
        lua_createtable(L, 0, 9);
        set_field_int(L, "sec", tm.tm_sec);
        set_field_int(L, "min", tm.tm_min);
        set_field_int(L, "hour", tm.tm_hour);
        set_field_int(L, "day", tm.tm_mday);
        set_field_int(L, "month", tm.tm_mon + 1);
        set_field_int(L, "year", tm.tm_year + 1900);
        set_field_int(L, "wday", tm.tm_wday + 1);
        set_field_int(L, "yday", tm.tm_yday + 1);
        if (tm.tm_isdst >= 0) {
            lua_pushboolean(L, tm.tm_isdst);
            lua_setfield(L, -2, "isdst");
        }
        return 1;
    }
    {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (; *fmt; fmt++) {
            char cc[3] = {'%', 0, 0}, buf[256];
            size_t n;
            if (*fmt != '%' || fmt[1] == '\0') {
                luaL_addchar(&b, *fmt);
                continue;
            }
            cc[1] = *++fmt;
            gw_guard_crit_enter();
            n = strftime(buf, sizeof(buf), cc, &tm);
            gw_guard_crit_leave();
            luaL_addlstring(&b, buf, n);
        }
        luaL_pushresult(&b);
    }
    return 1;
}

/* os.time([table]) as in Lua 5.1; mktime inside a critical section. */
static int l_os_time(lua_State *L)
{
    time_t t;
    if (lua_isnoneornil(L, 1)) {
        t = time(NULL);
    } else {
        struct tm tm;
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        memset(&tm, 0, sizeof(tm));
        tm.tm_sec = get_field_int(L, "sec", 0);
        tm.tm_min = get_field_int(L, "min", 0);
        tm.tm_hour = get_field_int(L, "hour", 12);
        tm.tm_mday = get_field_int(L, "day", -1);
        tm.tm_mon = get_field_int(L, "month", -1) - 1;
        tm.tm_year = get_field_int(L, "year", -1) - 1900;
        lua_getfield(L, -1, "isdst");
        tm.tm_isdst = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
        lua_pop(L, 1);
        gw_guard_crit_enter();
        t = mktime(&tm);
        gw_guard_crit_leave();
    }
    if (t == (time_t)-1)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)t);
    return 1;
}

/* Message handler beneath every call: keep the message (a string, or what
 * kind of object was thrown) and remember the innermost script frame. */
static int l_msgh(lua_State *L)
{
    gw_script_t *s = self_of(L);
    lua_Debug ar;

    if (!lua_isstring(L, 1)) {
        lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    if (!s->guard.where[0])
        for (int level = 1; level < 32 && lua_getstack(L, level, &ar); level++) {
            if (!lua_getinfo(L, "Sl", &ar) || ar.source[0] != '@' || ar.currentline <= 0 ||
                strcmp(ar.source, s->driver_src) == 0)
                continue;
            snprintf(s->guard.where, sizeof(s->guard.where), "%s:%d", ar.source + 1, ar.currentline);
            break;
        }
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------- states */

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

static void state_free(lstate_t *st)
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
    free(st);
}

static void graveyard_reap(gw_script_t *s)
{
    while (s->graveyard) {
        lstate_t *st = s->graveyard;
        s->graveyard = st->next;
        state_free(st);
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

/* lua_pcall(L, nargs, nres, msgh) under the guard with budget ns per script
 * call. Returns lua_pcall's code, or -GW_GUARD_CLOSE / -GW_GUARD_ABANDON when
 * the call was jumped out of (the state is then unusable). */
static int guarded_pcall(gw_script_t *s, lua_State *L, int nargs, int nres, int msgh, int64_t budget)
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

/* Stack: before [] after [setup]. */
static void push_setup(lua_State *L, gw_script_t *s, const gw_script_set_t *set)
{
    static const struct {
        const char *name;
        lua_CFunction f;
        int level;
    } cfns[] = {
        {"log_info", l_log, GW_LOG_INFO},  {"log_warn", l_log, GW_LOG_WARN}, {"log_error", l_log, GW_LOG_ERROR},
        {"os_date", l_os_date, 0},         {"os_time", l_os_time, 0},
    };

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
    lua_createtable(L, 0, 5);
    for (size_t i = 0; i < sizeof(cfns) / sizeof(cfns[0]); i++) {
        lua_pushlightuserdata(L, s);
        lua_pushinteger(L, cfns[i].level);
        lua_pushcclosure(L, cfns[i].f, 2);
        lua_setfield(L, -2, cfns[i].name);
    }
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

/* Build a state for set: sandbox, scripts loaded and their top levels run.
 * NULL with the reason in err. Must run on the worker's thread. */
static lstate_t *state_new(gw_script_t *s, gw_script_set_t *set, char *err, size_t errlen)
{
    lstate_t *st = calloc(1, sizeof(*st));
    gw_script_ctl_t saved = s->ctl; /* a state may be rebuilt in the middle of a run */
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
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, l_msgh, 1);
    lua_pushvalue(L, -1);
    st->msgh_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* Stack: [msgh] */
    if (luaL_loadbufferx(L, luaJIT_BC_gw_script, ~(size_t)0, "=luagw", "b")) {
        snprintf(err, errlen, "internal error: %s", lua_tostring(L, -1));
        goto fail;
    }
    {
        lua_Debug ar;
        lua_pushvalue(L, -1);
        if (lua_getinfo(L, ">S", &ar))
            snprintf(s->driver_src, sizeof(s->driver_src), "%s", ar.source);
    }
    push_setup(L, s, set);
    lua_pushlightuserdata(L, &s->ctl);
    /* Stack: [msgh, driver, setup, ctl] */
    gw_lalloc_enforce(st->alloc, 1);
    s->ctl.inp = NULL;
    s->ctl.script = 0;
    rc = guarded_pcall(s, L, 2, 3, 1, set->timeout_ns > INIT_BUDGET_NS ? set->timeout_ns : INIT_BUDGET_NS);
    s->ctl.inp = saved.inp;
    s->ctl.cur = saved.cur;
    if (rc) {
        const char *path = s->ctl.script && s->ctl.script <= (uint32_t)set->nfiles ? set->files[s->ctl.script - 1].path : "?";
        if (rc < 0) {
            st->abandon = rc == -GW_GUARD_ABANDON;
            st->L = st->abandon ? NULL : L;
            snprintf(err, errlen, "%s: top level stopped: it used more than %lld ms of CPU", path,
                     (long long)((set->timeout_ns > INIT_BUDGET_NS ? set->timeout_ns : INIT_BUDGET_NS) / 1000000));
        } else if (s->guard.timed_out) {
            snprintf(err, errlen, "%s: top level stopped: it used more than %lld ms of CPU", path,
                     (long long)((set->timeout_ns > INIT_BUDGET_NS ? set->timeout_ns : INIT_BUDGET_NS) / 1000000));
        } else if (rc == LUA_ERRMEM) {
            snprintf(err, errlen, "%s: top level exceeded scripts.memory_limit (%zu bytes)", path, set->memory_limit);
        } else {
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        }
        goto fail;
    }
    /* Stack: [msgh, run, layout, lines]. The first state of a set (its
     * check, before the set is shared) notes where each function starts. */
    for (int i = 0; i < set->nfiles; i++) {
        lua_rawgeti(L, -1, i + 1);
        if (!set->files[i].line)
            set->files[i].line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!layout_ok(L)) {
        snprintf(err, errlen, "internal error: script.lua and script.c disagree on the point layout");
        goto fail;
    }
    lua_pop(L, 1);
    st->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    s->ctl.script = saved.script;
    return st;

fail:
    s->ctl.script = saved.script;
    state_free(st);
    return NULL;
}

/* ---------------------------------------------------------- create */

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
    graveyard_reap(s);
    state_free(s->st);
    gw_guard_unregister(&s->guard);
    gw_script_set_release(s->set);
    gw_script_set_release(s->pinned);
    free(s->chain);
    free(s->scripted);
    free(s->rec);
    free(s->out);
    free(s->tripped);
    gw_points_free(&s->merged);
    gw_arena_destroy(s->own_arena);
    gw_points_free(&s->own_points);
    free(s);
}

/* Make s->st match the set it should use. 0, or -1 when there are no usable
 * scripts (s->state_err says why when a state could not be built). */
static int ensure_state(gw_script_t *s)
{
    gw_script_set_t *want;
    uint64_t gen = 0;
    lstate_t *st;

    if (!s->guard.registered && gw_guard_register(&s->guard)) {
        snprintf(s->state_err, sizeof(s->state_err), "cannot start the script watchdog");
        return -1;
    }
    if (s->pinned) {
        if (s->st)
            return 0;
        if (mono_ns() < s->retry_at)
            return -1;
        want = gw_script_set_retain(s->pinned);
        gen = 1;
    } else {
        gen = atomic_load(&pub_gen);
        if (gen == s->gen && (s->st || !s->set))
            return s->st ? 0 : -1;
        if (mono_ns() < s->retry_at)
            return s->st ? 0 : -1;
        want = published_get(&gen);
    }
    if (want == s->set && s->st) {
        gw_script_set_release(want);
        s->gen = gen;
        return 0;
    }
    if (!want || !want->nfiles) {
        /* Scripting withdrawn, or a set without scripts. */
        if (s->st)
            graveyard_add(s, s->st);
        s->st = NULL;
        gw_script_set_release(s->set);
        s->set = want;
        s->gen = gen;
        return -1;
    }
    st = state_new(s, want, s->state_err, sizeof(s->state_err));
    if (!st) {
        /* Keep what we have (an older set's state) and try again later
         * rather than on every request. With nothing to keep, the set's
         * points fail (and are counted) until a state can be built. */
        gw_log(GW_LOG_ERROR, "script state failed", "error=\"%s\"", s->state_err);
        s->retry_at = mono_ns() + RETRY_NS;
        if (s->st) {
            gw_script_set_release(want);
            return 0;
        }
        gw_script_set_release(s->set);
        s->set = want;
        s->gen = gen;
        return -1;
    }
    if (s->st)
        graveyard_add(s, s->st);
    s->st = st;
    gw_script_set_release(s->set);
    s->set = want;
    s->gen = gen;
    s->retry_at = 0;
    return 0;
}

/* ---------------------------------------------------------- set check */

static int check_set(gw_script_set_t *set, char *err, size_t errlen)
{
    gw_script_t *s = gw_script_create(set);
    lstate_t *st;
    int rc = 0;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (gw_guard_register(&s->guard)) {
        snprintf(err, errlen, "cannot start the script watchdog");
        rc = -1;
    } else if (!(st = state_new(s, set, err, errlen))) {
        rc = -1;
    } else {
        state_free(st);
    }
    /* The pinned reference is the caller's; drop ours without freeing. */
    gw_script_destroy(s);
    return rc;
}

/* ==================================================================== */
/* Running                                                               */
/* ==================================================================== */

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
        s->cap = cap;
    }
    return 0;
}

static const char *script_path(const gw_script_set_t *set, uint32_t id)
{
    return id >= 1 && id <= (uint32_t)set->nfiles ? set->files[id - 1].path : "(scripts)";
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

/* Record the failure of input point i: status, count, log, debug. */
static void fail_point(gw_script_t *s, uint32_t i, int kind, const char *where, const char *msg)
{
    gw_point_t *p = &s->ctl.inp[i];

    s->rec[i].status = kind == KIND_TIMEOUT ? REC_TIMEOUT : kind == KIND_MEMORY ? REC_MEMORY : REC_ERROR;
    s->rec[i].n = 0;
    s->rec[i].steps = chain_pos(s->set, s->chain[i], s->ctl.script);
    note_failure(p->series, kind, where, msg, s->set->drop_on_error);
    if (s->dbg)
        json_array_append_new(s->dbg->errors,
                              json_pack("{s:i, s:s%, s:s, s:s, s:s, s:s}", "src", (int)p->src, "series", p->series.p,
                                        p->series.n, "script", where, "kind", kind_names[kind], "message", msg,
                                        "action", s->set->drop_on_error ? "drop" : "pass"));
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
            fail_point(s, j, KIND_TIMEOUT, where, "not run: the script timed out 3 times in this request");
            s->rec[j].steps = 0;
            s->chain[j] = 0; /* the driver skips it */
        }
    }
}

/* Replace a state that cannot be used any more by a fresh one of the same
 * set; the old one waits in the graveyard (its strings are still referenced
 * by this run's output). 0 or -1. */
static int replace_state(gw_script_t *s, int abandon)
{
    lstate_t *st;

    s->st->abandon = abandon;
    if (abandon)
        s->st->L = NULL;
    graveyard_add(s, s->st);
    s->st = NULL;
    st = state_new(s, s->set, s->state_err, sizeof(s->state_err));
    if (!st) {
        gw_log(GW_LOG_ERROR, "script state failed", "error=\"%s\"", s->state_err);
        s->retry_at = mono_ns() + RETRY_NS;
        return -1;
    }
    s->st = st;
    return 0;
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
        const char *m;

        while (start < c->nin && !c->chain[start])
            start++;
        if (start >= c->nin)
            return;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->st->msgh_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->st->run_ref);
        lua_pushinteger(L, start);
        lua_pushboolean(L, fresh);
        c->cur = UINT32_MAX;
        c->script = 0;
        rc = guarded_pcall(s, L, 2, 0, -4, s->set->timeout_ns);
        if (rc == 0) {
            lua_settop(L, 0);
            start++;
            fresh = 0;
            continue;
        }
        /* A point failed: the one in progress, or the first not done (the
         * stop may land between two points). */
        i = c->cur;
        if (i >= c->nin || !c->chain[i] || s->rec[i].status != REC_PENDING)
            for (i = i < c->nin ? i + 1 : start; i < c->nin && (!c->chain[i] || s->rec[i].status != REC_PENDING); i++)
                ;
        if (i >= c->nin) {
            if (rc > 0)
                lua_settop(L, 0);
            return;
        }
        id = c->script;
        c->nout = c->committed;
        snprintf(where, sizeof(where), "%s", s->guard.where[0] ? s->guard.where : script_path(s->set, id));
        if (rc < 0 || s->guard.timed_out) {
            kind = KIND_TIMEOUT;
            snprintf(msg, sizeof(msg), "stopped: the call used more than %lld ms of CPU (scripts.timeout_ms)",
                     (long long)(s->set->timeout_ns / 1000000));
        } else if (rc == LUA_ERRMEM) {
            kind = KIND_MEMORY;
            snprintf(msg, sizeof(msg), "the Lua state reached scripts.memory_limit (%zu bytes)", s->set->memory_limit);
        } else {
            size_t wl = strlen(where);
            kind = KIND_ERROR;
            m = lua_tostring(L, -1);
            m = m ? m : "error";
            /* "file:line: message" -> script=file:line, error=message */
            if (strncmp(m, where, wl) == 0 && m[wl] == ':' && m[wl + 1] == ' ')
                m += wl + 2;
            else if (!s->guard.where[0]) {
                const char *colon = strstr(m, ": ");
                if (colon && (size_t)(colon - m) < sizeof(where) && strncmp(m, script_path(s->set, id), strlen(script_path(s->set, id))) == 0) {
                    snprintf(where, sizeof(where), "%.*s", (int)(colon - m), m);
                    m = colon + 2;
                }
            }
            snprintf(msg, sizeof(msg), "%s", m);
        }
        fail_point(s, i, kind, where, msg);
        if (rc > 0)
            lua_settop(L, 0);
        if (kind == KIND_TIMEOUT)
            trip(s, id, i + 1, where);
        start = i + 1;
        fresh = 0;
        if (rc < 0) {
            /* Jumped out of compiled code (or the runtime): a new state. */
            if (replace_state(s, rc == -GW_GUARD_ABANDON))
                break;
            fresh = 1;
        } else if (kind == KIND_MEMORY) {
            lua_gc(L, LUA_GCCOLLECT, 0);
            if (gw_lalloc_used(s->st->alloc) > s->set->memory_limit / 4 * 3) {
                /* What is left is the scripts' own data: start afresh. */
                gw_log(GW_LOG_WARN, "script state reset", "reason=\"memory limit\" used=%zu limit=%zu",
                       gw_lalloc_used(s->st->alloc), s->set->memory_limit);
                if (replace_state(s, 0))
                    break;
                fresh = 1;
            }
        }
    }
    /* No state: whatever was not run fails with the reason. */
    for (uint32_t i = start; i < c->nin; i++)
        if (c->chain[i] && s->rec[i].status == REC_PENDING)
            fail_point(s, i, KIND_ERROR, "(scripts)", s->state_err[0] ? s->state_err : "scripts unavailable");
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
                snprintf(where, sizeof(where), "%s:%d", script_path(s->set, s->ctl.script),
                         s->ctl.script ? s->set->files[s->ctl.script - 1].line : 0);
                fail_point(s, i, KIND_ERROR, where, msg);
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
    if (s->dbg) {
        uint32_t *o = realloc(s->dbg->origin, (total ? total : 1) * sizeof(*o));
        if (!o)
            return -ENOMEM;
        s->dbg->origin = o;
        s->dbg->norigin = (uint32_t)total;
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
        if (n) /* dst and s->out are NULL while nothing was emitted */
            memcpy(dst + k, from, n * sizeof(*dst));
        if (s->dbg)
            for (uint32_t q = 0; q < n; q++)
                s->dbg->origin[k + q] = i;
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
    return !ensure_state(s) || (s->set && s->set->nfiles);
}

void gw_script_set_req(gw_script_t *s, const gw_script_req_t *req)
{
    _Static_assert(sizeof(gw_script_req_t) == sizeof(s->ctl.req), "gw_script_req_t is ctl.req");
    if (req)
        memcpy(s->ctl.req, req, sizeof(s->ctl.req));
    else
        memset(s->ctl.req, 0, sizeof(s->ctl.req));
}

int gw_script_run(gw_script_t *s, gw_points_t *pts, gw_arena_t *a, gw_result_t *res, int where_kind)
{
    gw_script_ctl_t *c = &s->ctl;
    const gw_script_set_t *set;
    uint32_t n = pts->n, nscripted = 0, ntags = 0, nfields = 0;
    struct {
        gw_str_t name; /* borrowed: a point's series, valid during this run */
        uint16_t id;
    } seen[8]; /* series already looked up in this request */
    uint32_t nseen = 0;
    int rc;

    (void)res;
    (void)where_kind;
    graveyard_reap(s);
    if (!n)
        return 0;
    if (ensure_state(s) && !(s->set && s->set->nfiles))
        return 0;
    set = s->set;
    if (reserve(s, n))
        return -ENOMEM;

    /* 1. Chains, in C. */
    for (uint32_t i = 0; i < n; i++) {
        const gw_point_t *p = &pts->v[i];
        uint32_t k = 0;
        uint16_t id;
        while (k < nseen && !gw_str_eq(seen[k].name, p->series))
            k++;
        if (k < nseen) {
            id = seen[k].id;
        } else {
            id = set_lookup(set, p->series.p, p->series.n);
            if (nseen < sizeof(seen) / sizeof(seen[0])) {
                seen[nseen].name = p->series;
                seen[nseen++].id = id;
            }
        }
        s->chain[i] = id;
        s->scripted[i] = id != 0;
        if (id) {
            nscripted++;
            ntags += p->ntags;
            nfields += p->nfields;
            s->rec[i].status = REC_PENDING;
            s->rec[i].n = 0;
            s->rec[i].steps = 0;
        }
    }
    if (!nscripted)
        return 0;

    /* 2. The driver. */
    s->arena = a;
    c->inp = pts->v;
    c->chain = s->chain;
    c->rec = s->rec;
    c->nin = n;
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
    if (!s->tripped || s->ntripped < set->nfiles + 1) {
        uint8_t *t = realloc(s->tripped, (size_t)set->nfiles + 1);
        if (!t)
            return -ENOMEM;
        s->tripped = t;
        s->ntripped = set->nfiles + 1;
    }
    memset(s->tripped, 0, (size_t)s->ntripped);
    if (s->st)
        drive(s);
    else
        for (uint32_t i = 0; i < n; i++)
            if (s->chain[i])
                fail_point(s, i, KIND_ERROR, "(scripts)", s->state_err[0] ? s->state_err : "scripts unavailable");

    /* 3. Results in place. What the driver wrote back is checked before C
     * indexes with it: each point's outputs lie among those written, all
     * of them in s->out. */
    if (c->nout > s->outcap)
        c->nout = 0;
    for (uint32_t i = 0; i < n; i++) {
        const gw_script_rec_t *r = &s->rec[i];
        if (!s->scripted[i] || r->status != REC_OK)
            continue;
        if (r->first > c->nout || r->n > c->nout - r->first)
            fail_point(s, i, KIND_ERROR, "(luagw)", "internal error: the driver wrote back a malformed result");
        else if (r->numbers)
            resolve_numbers(s, i);
    }
    rc = merge(s, pts);
    if (s->st)
        lua_gc(s->st->L, LUA_GCSTEP, 0);
    c->inp = NULL;
    s->arena = NULL;
    return rc ? rc : (int)(nscripted > INT32_MAX ? INT32_MAX : nscripted);
}

/* ==================================================================== */
/* Debug transform                                                       */
/* ==================================================================== */

static const char *const type_names[] = {"float", "integer", "unsigned", "string", "boolean"};

static json_t *point_json(const gw_point_t *p)
{
    json_t *o = json_object(), *tags = json_object(), *fields = json_object(), *types = json_object();
    json_t *exact = NULL;
    char buf[32];

    json_object_set_new(o, "series", json_stringn(p->series.p, p->series.n));
    json_object_set_new(o, "time", json_real((double)p->time_ns / 1e9));
    snprintf(buf, sizeof(buf), "%lld", (long long)p->time_ns);
    json_object_set_new(o, "time_ns", json_string(buf));
    for (uint32_t i = 0; i < p->ntags; i++) {
        char *k = strndup(p->tags[i].key.p, p->tags[i].key.n);
        if (k)
            json_object_set_new(tags, k, json_stringn(p->tags[i].val.p, p->tags[i].val.n));
        free(k);
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        char *k = strndup(f->key.p, f->key.n);
        json_t *v = NULL;
        if (!k)
            continue;
        switch (f->type) {
        case GW_FIELD_FLOAT:
            v = json_real(f->v.f);
            break;
        case GW_FIELD_INT:
            v = json_integer(f->v.i);
            if (f->v.i > (1LL << 53) || f->v.i < -(1LL << 53)) {
                snprintf(buf, sizeof(buf), "%lld", (long long)f->v.i);
                if (!exact)
                    exact = json_object();
                json_object_set_new(exact, k, json_string(buf));
            }
            break;
        case GW_FIELD_UINT:
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)f->v.u);
            v = f->v.u <= (uint64_t)INT64_MAX ? json_integer((json_int_t)f->v.u) : json_string(buf);
            if (f->v.u > (1ULL << 53)) {
                if (!exact)
                    exact = json_object();
                json_object_set_new(exact, k, json_string(buf));
            }
            break;
        case GW_FIELD_STRING:
            v = json_stringn(f->v.s.p, f->v.s.n);
            break;
        default:
            v = json_boolean(f->v.b);
        }
        json_object_set_new(fields, k, v);
        json_object_set_new(types, k, json_string(type_names[f->type >= 0 && f->type <= 4 ? f->type : 0]));
        free(k);
    }
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "types", types);
    if (exact)
        json_object_set_new(o, "exact", exact);
    return o;
}

int gw_script_debug_json(gw_script_t *s, int format, const char *body, size_t len, int64_t ns_per_unit,
                         int64_t now_ns, unsigned lp_flags, gw_arena_t *a, gw_points_t *pts, gw_buf_t *out)
{
    int kind = format == GW_FMT_JSON ? GW_WHERE_INDEX : GW_WHERE_LINE;
    gw_result_t res;
    debug_t dbg = {0};
    json_t *doc = NULL, *points = NULL, *rejected = NULL;
    gw_buf_t line = {0};
    const gw_point_t *in;
    uint32_t nin;
    char err[256], *text = NULL;
    int rc;

    memset(&res, 0, sizeof(res));
    gw_arena_reset(a);
    pts->n = 0;
    if (format == GW_FMT_JSON)
        rc = gw_json_parse(body, len, now_ns, a, pts, &res);
    else
        rc = gw_lp_parse(body, len, ns_per_unit, now_ns, a, pts, &res);
    if (rc)
        return rc;
    doc = json_object();
    dbg.errors = json_array();
    points = json_array();
    rejected = json_array();
    if (!doc || !dbg.errors || !points || !rejected)
        goto nomem;
    nin = pts->n;
    in = pts->v;
    s->dbg = &dbg;
    rc = gw_script_run(s, pts, a, &res, kind);
    s->dbg = NULL;
    if (rc < 0)
        goto fail;
    /* When scripts ran, the request's points are now in s->merged (swapped
     * out, intact until the next run) and dbg.origin maps back to them. */
    if (dbg.origin)
        in = s->merged.v;
    for (uint32_t k = 0; k < pts->n; k++) {
        gw_point_t *p = &pts->v[k];
        json_t *o = point_json(p), *ran = json_array();
        uint32_t i = dbg.origin ? dbg.origin[k] : k;

        json_object_set_new(o, "src", json_integer(p->src));
        if (dbg.origin && s->set && i < nin && s->scripted[i]) {
            uint16_t cid = set_lookup(s->set, in[i].series.p, in[i].series.n);
            for (uint32_t q = 0; cid && q < s->rec[i].steps && q < (uint32_t)s->set->chains[cid - 1].n; q++)
                json_array_append_new(ran, json_string(script_path(s->set, s->set->chains[cid - 1].ids[q])));
        }
        json_object_set_new(o, "scripts", ran);
        line.len = 0;
        if (p->nfields == 0) {
            json_array_append_new(rejected, json_pack("{s:i, s:s}", "src", (int)p->src, "error",
                                                      "a point needs at least one field (InfluxDB cannot store a point without fields)"));
            json_decref(o);
            continue;
        }
        rc = gw_lp_encode(&line, p, lp_flags, err, sizeof(err));
        if (rc < 0) {
            json_decref(o);
            goto nomem;
        }
        if (rc > 0) {
            json_array_append_new(rejected, json_pack("{s:i, s:s}", "src", (int)p->src, "error", err));
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "line", json_stringn(line.data, line.len ? line.len - 1 : 0));
        json_array_append_new(points, o);
    }
    json_object_set_new(doc, "points", points);
    json_object_set_new(doc, "errors", dbg.errors);
    json_object_set_new(doc, "rejected", rejected);
    points = rejected = dbg.errors = NULL;
    if (res.has_error)
        json_object_set_new(doc, "parse_error",
                            json_pack("{s:s, s:i, s:s, s:i}", "where",
                                      res.err_kind == GW_WHERE_BODY ? "body" : res.err_kind == GW_WHERE_LINE ? "line" : "index",
                                      "at", (int)res.err_where, "error", res.err_msg, "count", (int)res.rejected));
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text || gw_buf_append(out, text, strlen(text)))
        goto nomem;
    free(text);
    json_decref(doc);
    free(dbg.origin);
    gw_buf_free(&line);
    return 0;

nomem:
    rc = -ENOMEM;
fail:
    free(text);
    json_decref(points);
    json_decref(rejected);
    json_decref(dbg.errors);
    json_decref(doc);
    free(dbg.origin);
    gw_buf_free(&line);
    return rc;
}

/* ==================================================================== */
/* The harness's door                                                    */
/* ==================================================================== */

gw_script_t *gw_script_open(const char *path, char *err, size_t errlen)
{
    gw_config_t *cfg = gw_config_load(path, err, errlen);
    gw_script_set_t *set;
    gw_script_t *s;

    if (!cfg)
        return NULL;
    set = gw_script_set_load(cfg, err, errlen);
    gw_config_free(cfg);
    if (!set)
        return NULL;
    s = gw_script_create(set);
    gw_script_set_release(set);
    if (!s || !(s->own_arena = gw_arena_create(256 * 1024))) {
        gw_script_destroy(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return s;
}

int gw_script_transform(gw_script_t *s, int format, const char *body, size_t len, int64_t ns_per_unit,
                        char **json)
{
    gw_buf_t out = {0};
    int rc;

    *json = NULL;
    rc = gw_script_debug_json(s, format, body, len, ns_per_unit, gw_now_ns(), 0, s->own_arena, &s->own_points, &out);
    if (!rc && gw_buf_putc(&out, '\0'))
        rc = -ENOMEM;
    if (rc) {
        gw_buf_free(&out);
        return rc;
    }
    *json = out.data;
    return 0;
}

void gw_script_close(gw_script_t *s)
{
    gw_script_destroy(s);
}
