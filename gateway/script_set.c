/* script_set.c — script sets: what the configuration names, read and
 * checked once, shared by reference (script.h, script_internal.h).
 *
 * A set holds the script files (path and source), one chain per series
 * (the ids of its files, _all.lua first) and a table from series names to
 * chains: open addressing over the hash of the name (hash.h), at least
 * twice as many entries as chains, so a miss ends at an empty entry soon.
 * Loading reads scripts.dir (_all.lua, <series>.lua) and scripts.series
 * (chains of named files, which replace <series>.lua), then builds one Lua
 * state from the set exactly as a worker will: a script that does not
 * compile, whose top level fails or overruns, or that returns no function
 * refuses the whole set with its file:line.
 *
 * Publishing: one process-wide set, behind a mutex, with a generation
 * counter that workers compare (one atomic load per request) to see that a
 * newer set is out. The publisher's reference moves into the published
 * slot; a worker retains the set its state was built from, so the old set
 * lives until its last worker has moved on. */
#include "script_internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"

uint16_t gw_script_set_chain(const gw_script_set_t *set, const char *p, size_t n)
{
    if (set->slots) {
        for (uint32_t i = (uint32_t)gw_hash(p, n) & set->mask;; i = (i + 1) & set->mask) {
            const slot_t *sl = &set->slots[i];
            if (!sl->name)
                break;
            if (sl->len == n && memcmp(sl->name, p, n) == 0)
                return sl->id;
        }
    }
    return set->all_chain;
}

const char *gw_script_set_path(const gw_script_set_t *set, uint32_t id)
{
    return id >= 1 && id <= (uint32_t)set->nfiles ? set->files[id - 1].path : "(scripts)";
}

/* A deep copy of the nodes from n on (scripts.params outlives the config). */
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
    gw_conf_node_free(head);
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
        free(set->chains[i].paths);
    }
    free(set->chains);
    free(set->slots);
    gw_conf_node_free(set->params);
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
    c->paths = malloc((size_t)(n + 1) * sizeof(*c->paths));
    if (!c->ids || !c->paths || (series && !(c->series = strdup(series)))) {
        free(c->ids);
        free(c->paths);
        return -1;
    }
    if (all_id)
        c->ids[k++] = (uint16_t)all_id;
    for (int i = 0; i < n; i++)
        c->ids[k++] = (uint16_t)ids[i];
    for (int i = 0; i < k; i++)
        c->paths[i] = set->files[c->ids[i] - 1].path;
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

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The names of the regular *.lua files in dir, sorted, into *out (*n of
 * them; the caller frees them with free_names). A missing directory means
 * no scripts (chains in scripts.series still need their files). 0, or -1
 * with err set. */
static int list_dir(const char *dir, char ***out, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t k = 0;

    *out = NULL;
    *n = 0;
    if (!d && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
        return -1;
    }
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char *path, **nn;
        struct stat st;
        int bad;

        if (len <= 4 || de->d_name[0] == '.' || strcmp(de->d_name + len - 4, ".lua") != 0)
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
        if (!(nn = realloc(names, (k + 1) * sizeof(*names))))
            goto nomem;
        names = nn;
        if (!(names[k] = strdup(de->d_name)))
            goto nomem;
        k++;
    }
    if (d)
        closedir(d);
    if (names)
        qsort(names, k, sizeof(*names), cmp_names);
    *out = names;
    *n = k;
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
fail:
    closedir(d);
    free_names(names, k);
    return -1;
}

/* The chains of scripts.series (each replaces <series>.lua), _all.lua
 * (file all_id, 0 = none) first in each. 0, or -1 with err set. */
static int add_series_chains(gw_script_set_t *set, const gw_config_t *cfg, int all_id, char *err, size_t errlen)
{
    const char *dir = cfg->scripts.dir;
    int ids[256];

    if (!cfg->scripts.series)
        return 0;
    for (const gw_conf_node_t *c = cfg->scripts.series->child; c; c = c->next) {
        int n = 0;
        const gw_conf_node_t *f = c->kind == GW_CONF_SCALAR ? c : c->child;
        for (; f; f = c->kind == GW_CONF_SCALAR ? NULL : f->next) {
            if (n >= (int)(sizeof(ids) / sizeof(ids[0]))) {
                snprintf(err, errlen, "%s:%zu:%zu: scripts.series.%s: more than %d scripts", cfg->path, c->line,
                         c->column, c->key, n);
                return -1;
            }
            if (!(ids[n++] = set_add_file(set, dir, f->value, err, errlen))) {
                /* Say which line of the config named the file. */
                char inner[512];
                snprintf(inner, sizeof(inner), "%s", err);
                snprintf(err, errlen, "%s:%zu:%zu: scripts.series.%s: %s", cfg->path, f->line, f->column, c->key,
                         inner);
                return -1;
            }
        }
        if (set_add_chain(set, c->key, all_id, ids, n)) {
            snprintf(err, errlen, "%s: out of memory", dir);
            return -1;
        }
    }
    return 0;
}

/* A chain for each <series>.lua of names (the sorted *.lua files of dir)
 * that scripts.series left alone, and one of _all.lua alone for every
 * other series. 0, or -1 with err set. */
static int add_dir_chains(gw_script_set_t *set, const char *dir, char **names, size_t nnames, int all_id,
                          char *err, size_t errlen)
{
    for (size_t i = 0; i < nnames; i++) {
        char *series;
        int id, rc = 0;

        if (strcmp(names[i], "_all.lua") == 0)
            continue;
        if (!(series = strndup(names[i], strlen(names[i]) - 4)))
            goto nomem;
        if (!chain_has_series(set, series)) {
            if (!(id = set_add_file(set, dir, names[i], err, errlen)))
                rc = -1;
            else if (set_add_chain(set, series, all_id, &id, 1))
                rc = -ENOMEM;
        }
        free(series);
        if (rc == -ENOMEM)
            goto nomem;
        if (rc)
            return -1;
    }
    if (all_id) {
        if (set_add_chain(set, NULL, all_id, NULL, 0))
            goto nomem;
        set->all_chain = (uint16_t)set->nchains;
    }
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
    return -1;
}

/* The series table: a power of two at least twice the chains. 0 or -1. */
static int build_table(gw_script_set_t *set)
{
    uint32_t cap = 8;

    while (cap < (uint32_t)set->nchains * 2)
        cap *= 2;
    set->slots = calloc(cap, sizeof(*set->slots));
    if (!set->slots)
        return -1;
    set->mask = cap - 1;
    for (int i = 0; i < set->nchains; i++) {
        chain_t *c = &set->chains[i];
        size_t len;
        uint32_t j;
        if (!c->series)
            continue;
        len = strlen(c->series);
        for (j = (uint32_t)gw_hash(c->series, len) & set->mask; set->slots[j].name; j = (j + 1) & set->mask)
            ;
        set->slots[j] = (slot_t){c->series, len, (uint16_t)(i + 1)};
    }
    return 0;
}

/* Compile and run each file's top level once, exactly as a worker will:
 * a state built from the set on this thread, then thrown away. 0, or -1
 * with err set. */
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
    } else if (!(st = gw_script_state_new(s, set, err, errlen))) {
        rc = -1;
    } else {
        gw_script_state_free(st);
    }
    /* The pinned reference is the caller's; drop ours without freeing. */
    gw_script_destroy(s);
    return rc;
}

gw_script_set_t *gw_script_set_load(const gw_config_t *cfg, char *err, size_t errlen)
{
    gw_script_set_t *set = calloc(1, sizeof(*set));
    const char *dir = cfg->scripts.dir;
    char **names = NULL;
    size_t nnames = 0;
    int all_id = 0;

    if (errlen)
        err[0] = '\0';
    if (!set)
        goto nomem;
    atomic_init(&set->refs, 1);
    set->timeout_ns = (int64_t)cfg->scripts.timeout_ms * 1000000;
    set->memory_limit = cfg->scripts.memory_limit;
    set->drop_on_error = cfg->scripts.on_error == GW_ON_ERROR_DROP;
    set->memo_entries = cfg->scripts.memo_entries;
    set->memo_verify = cfg->scripts.memo_verify;
    if (cfg->scripts.params && cfg->scripts.params->child &&
        !(set->params = copy_node(cfg->scripts.params->child)))
        goto nomem;
    if (list_dir(dir, &names, &nnames, err, errlen))
        goto fail;
    for (size_t i = 0; i < nnames; i++)
        if (strcmp(names[i], "_all.lua") == 0 && !(all_id = set_add_file(set, dir, names[i], err, errlen)))
            goto fail;
    if (add_series_chains(set, cfg, all_id, err, errlen) ||
        add_dir_chains(set, dir, names, nnames, all_id, err, errlen))
        goto fail;
    if (build_table(set))
        goto nomem;
    free_names(names, nnames);
    names = NULL;
    nnames = 0;
    if (set->nfiles && check_set(set, err, errlen))
        goto fail;
    return set;

nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
fail:
    free_names(names, nnames);
    set_free(set);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Publishing */

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

uint64_t gw_script_published_gen(void)
{
    return atomic_load(&pub_gen);
}

gw_script_set_t *gw_script_published(uint64_t *gen)
{
    gw_script_set_t *set;

    pthread_mutex_lock(&pub_lock);
    set = gw_script_set_retain(published);
    *gen = atomic_load(&pub_gen);
    pthread_mutex_unlock(&pub_lock);
    return set;
}
