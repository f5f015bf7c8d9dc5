/* schema.c — series declarations: check and complete points after scripts.
 *
 * Compiled form: one decl_t per declared series, found through an
 * open-addressing table of indexes keyed by the hash of the series name
 * (hash.h), so a point costs one hash and (almost always) one compare before its
 * rules are scanned. The schema is immutable once built; workers read it
 * without locks. */
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define TYPE_ANY (-1)

typedef struct {
    gw_str_t key;    /* owned (NUL-terminated copy) */
    int type;        /* fields: gw_field_type_t or TYPE_ANY; tags: unused */
    int required;
    int has_default;
    gw_field_t def;  /* the default; for tags def.v.s is the value. Strings owned */
} rule_t;

typedef struct {
    gw_str_t name;   /* owned */
    uint32_t hash;
    rule_t *tags;    /* owned */
    rule_t *fields;  /* owned */
    uint32_t ntags, nfields;
} decl_t;

struct gw_schema {
    decl_t *decls;   /* owned */
    uint32_t n;
    uint32_t *slots; /* owned: decl index + 1, 0 = empty */
    uint32_t mask;
    uint64_t id;     /* unique per schema created: keys the threads' recent lookups */
};

static _Atomic uint64_t last_id;

static const char *const type_names[] = {"float", "int", "uint", "string", "bool"};

static int type_from_name(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, type_names[i]) == 0)
            return i;
    return -2;
}

static int parse_bool(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        return 1;
    if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
        return 0;
    return -1;
}

/* An integer written as digits with an optional sign and an optional
 * suffix ('i' or 'u', as in line protocol). 0 or -1. */
static int parse_int(const char *s, char suffix, int64_t *i, uint64_t *u)
{
    char *end;
    int neg = *s == '-';

    if (!isdigit((unsigned char)s[neg]))
        return -1;
    errno = 0;
    if (neg)
        *i = strtoll(s, &end, 10);
    else
        *u = strtoull(s, &end, 10);
    if (errno)
        return -1;
    if (*end == suffix && suffix)
        end++;
    if (*end)
        return -1;
    if (!neg)
        *i = (int64_t)*u;
    if (!neg && *u > INT64_MAX && suffix == 'i')
        return -1;
    return 0;
}

/* Parse a field default written as text; type may be TYPE_ANY (inferred as
 * in line protocol: 1i int, 1u uint, true bool, 1.5 float, else string).
 * Fills f (f->v.s borrows s). 0 or -1. */
static int parse_default(const char *s, int type, gw_field_t *f)
{
    int64_t i = 0;
    uint64_t u = 0;
    size_t n = strlen(s);
    char *end;

    if (type == TYPE_ANY) {
        if (n > 1 && s[n - 1] == 'i' && !parse_int(s, 'i', &i, &u))
            type = GW_FIELD_INT;
        else if (n > 1 && s[n - 1] == 'u' && *s != '-' && !parse_int(s, 'u', &i, &u))
            type = GW_FIELD_UINT;
        else if (parse_bool(s) >= 0)
            type = GW_FIELD_BOOL;
        else if (n && (strtod(s, &end), !*end) && (isdigit((unsigned char)*s) || *s == '-' || *s == '.'))
            type = GW_FIELD_FLOAT;
        else
            type = GW_FIELD_STRING;
    }
    f->type = type;
    switch (type) {
    case GW_FIELD_INT:
        if (parse_int(s, 'i', &i, &u) || (*s != '-' && u > INT64_MAX))
            return -1;
        f->v.i = i;
        return 0;
    case GW_FIELD_UINT:
        if (*s == '-' || parse_int(s, 'u', &i, &u))
            return -1;
        f->v.u = u;
        return 0;
    case GW_FIELD_FLOAT:
        errno = 0;
        f->v.f = strtod(s, &end);
        return !n || *end || errno || !isfinite(f->v.f) || isspace((unsigned char)*s) ? -1 : 0;
    case GW_FIELD_BOOL:
        f->v.b = parse_bool(s);
        return f->v.b < 0 ? -1 : 0;
    default:
        f->v.s = (gw_str_t){s, n};
        return 0;
    }
}

static const gw_conf_node_t *child(const gw_conf_node_t *m, const char *key)
{
    for (const gw_conf_node_t *c = m ? m->child : NULL; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Checking the config tree                                                  */

static int fail(const gw_conf_node_t **bad, const gw_conf_node_t *at, char *msg, size_t msglen,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(const gw_conf_node_t **bad, const gw_conf_node_t *at, char *msg, size_t msglen,
                const char *fmt, ...)
{
    va_list ap;

    *bad = at;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return -1;
}

/* One rule: "series.<s>.<what>.<key>: {type, required, default}". */
static int check_rule(const char *series, const char *what, const gw_conf_node_t *r,
                      const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    const gw_conf_node_t *type, *req, *def;
    int t = TYPE_ANY, tags = what[0] == 't';
    gw_field_t f;

    if (!*r->key)
        return fail(bad, r, msg, msglen, "series.%s.%s: a key must not be empty", series, what);
    if (r->kind == GW_CONF_SCALAR && !*r->value)
        return 0; /* "key:" alone: declared, optional, any type */
    if (r->kind != GW_CONF_MAP)
        return fail(bad, r, msg, msglen, "series.%s.%s.%s: must be a mapping of %s", series, what, r->key,
                    tags ? "required, default" : "type, required, default");
    for (const gw_conf_node_t *c = r->child; c; c = c->next)
        if (strcmp(c->key, "required") && strcmp(c->key, "default") && (tags || strcmp(c->key, "type")))
            return fail(bad, c, msg, msglen, "series.%s.%s.%s.%s: unknown key (expected %s)", series, what,
                        r->key, c->key, tags ? "required, default" : "type, required, default");
        else if (c->kind != GW_CONF_SCALAR)
            return fail(bad, c, msg, msglen, "series.%s.%s.%s.%s: must be a scalar", series, what, r->key,
                        c->key);
    type = child(r, "type");
    req = child(r, "required");
    def = child(r, "default");
    if (type && (t = type_from_name(type->value)) < 0)
        return fail(bad, type, msg, msglen, "series.%s.%s.%s.type: must be one of float, int, uint, string, bool",
                    series, what, r->key);
    if (req && parse_bool(req->value) < 0)
        return fail(bad, req, msg, msglen, "series.%s.%s.%s.required: must be true or false", series, what,
                    r->key);
    if (def && !tags && parse_default(def->value, t, &f))
        return fail(bad, def, msg, msglen, "series.%s.%s.%s.default: not a valid %s value", series, what, r->key,
                    type_names[t]);
    if (def && tags && !*def->value)
        return fail(bad, def, msg, msglen, "series.%s.%s.%s.default: must not be empty", series, what, r->key);
    return 0;
}

int gw_schema_check(const gw_conf_node_t *root, const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    for (const gw_conf_node_t *s = root ? root->child : NULL; s; s = s->next) {
        if (!*s->key)
            return fail(bad, s, msg, msglen, "series: a series name must not be empty");
        if (s->kind == GW_CONF_SCALAR && !*s->value)
            continue;
        if (s->kind != GW_CONF_MAP)
            return fail(bad, s, msg, msglen, "series.%s: must be a mapping with tags: and fields:", s->key);
        for (const gw_conf_node_t *sec = s->child; sec; sec = sec->next) {
            if (strcmp(sec->key, "tags") && strcmp(sec->key, "fields"))
                return fail(bad, sec, msg, msglen, "series.%s.%s: unknown key (expected tags, fields)", s->key,
                            sec->key);
            if (sec->kind == GW_CONF_SCALAR && !*sec->value)
                continue;
            if (sec->kind != GW_CONF_MAP)
                return fail(bad, sec, msg, msglen, "series.%s.%s: must be a mapping of keys", s->key, sec->key);
            for (const gw_conf_node_t *r = sec->child; r; r = r->next)
                if (check_rule(s->key, sec->key, r, bad, msg, msglen))
                    return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Compiling                                                                 */

static uint32_t count(const gw_conf_node_t *m)
{
    uint32_t n = 0;
    for (const gw_conf_node_t *c = m ? m->child : NULL; c; c = c->next)
        n++;
    return n;
}

static int dup_str(gw_str_t *dst, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return -1;
    *dst = (gw_str_t){d, strlen(d)};
    return 0;
}

static int compile_rules(const gw_conf_node_t *sec, int tags, const char *service, rule_t **out, uint32_t *n)
{
    uint32_t i = 0;

    *n = count(sec);
    if (!*n)
        return 0;
    if (!(*out = calloc(*n, sizeof(**out))))
        return -1;
    for (const gw_conf_node_t *r = sec->child; r; r = r->next, i++) {
        const gw_conf_node_t *type = child(r, "type"), *req = child(r, "required"), *def = child(r, "default");
        rule_t *rule = &(*out)[i];

        if (dup_str(&rule->key, r->key))
            return -1;
        rule->type = type ? type_from_name(type->value) : TYPE_ANY;
        rule->required = req && parse_bool(req->value) == 1;
        if (!def)
            continue;
        if (tags) {
            /* "$service" stands for the top-level `service:`; unset, no default. */
            const char *v = strcmp(def->value, "$service") == 0 ? service : def->value;
            if (!v || !*v)
                continue;
            rule->has_default = 1;
            rule->def.type = GW_FIELD_STRING;
            if (dup_str(&rule->def.v.s, v))
                return -1;
        } else {
            rule->has_default = 1;
            parse_default(def->value, rule->type, &rule->def);
            if (rule->def.type == GW_FIELD_STRING && dup_str(&rule->def.v.s, def->value))
                return -1;
        }
    }
    return 0;
}

gw_schema_t *gw_schema_create(const gw_config_t *cfg)
{
    gw_schema_t *s = calloc(1, sizeof(*s));
    uint32_t cap = 8, i = 0;

    if (!s)
        return NULL;
    s->id = atomic_fetch_add(&last_id, 1) + 1;
    s->n = count(cfg->series);
    while (cap < 2 * s->n)
        cap *= 2;
    s->mask = cap - 1;
    s->slots = calloc(cap, sizeof(*s->slots));
    if (!s->slots || (s->n && !(s->decls = calloc(s->n, sizeof(*s->decls)))))
        goto fail;
    for (const gw_conf_node_t *c = cfg->series ? cfg->series->child : NULL; c; c = c->next, i++) {
        decl_t *d = &s->decls[i];
        uint32_t h;

        if (dup_str(&d->name, c->key) ||
            compile_rules(child(c, "tags"), 1, cfg->service, &d->tags, &d->ntags) ||
            compile_rules(child(c, "fields"), 0, cfg->service, &d->fields, &d->nfields))
            goto fail;
        d->hash = (uint32_t)gw_hash(d->name.p, d->name.n);
        /* A series declared twice in one mapping is refused by the loader;
         * insert each name once. */
        for (h = d->hash & s->mask; s->slots[h]; h = (h + 1) & s->mask)
            ;
        s->slots[h] = i + 1;
    }
    return s;

fail:
    gw_schema_destroy(s);
    return NULL;
}

static void free_rules(rule_t *r, uint32_t n)
{
    for (uint32_t i = 0; r && i < n; i++) {
        free((char *)r[i].key.p);
        if (r[i].has_default && r[i].def.type == GW_FIELD_STRING)
            free((char *)r[i].def.v.s.p);
    }
    free(r);
}

void gw_schema_destroy(gw_schema_t *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; s->decls && i < s->n; i++) {
        free((char *)s->decls[i].name.p);
        free_rules(s->decls[i].tags, s->decls[i].ntags);
        free_rules(s->decls[i].fields, s->decls[i].nfields);
    }
    free(s->decls);
    free(s->slots);
    free(s);
}

int gw_schema_count(const gw_schema_t *s)
{
    return s ? (int)s->n : 0;
}

/* ------------------------------------------------------------------------ */
/* The hot path                                                              */

/* The declarations this thread found last, newest first: bodies mix a few
 * series, and comparing a name with a handful costs less than hashing it. */
#define RECENT 8
static __thread struct {
    uint64_t id; /* the schema they belong to (ids are never reused, addresses may be) */
    const decl_t *d[RECENT];
} recent;

static const decl_t *lookup_hashed(const gw_schema_t *s, gw_str_t name)
{
    uint32_t h = (uint32_t)gw_hash(name.p, name.n);

    for (uint32_t i = h & s->mask;; i = (i + 1) & s->mask) {
        uint32_t k = s->slots[i];
        if (!k)
            return NULL;
        if (s->decls[k - 1].hash == h && gw_str_eq(s->decls[k - 1].name, name))
            return &s->decls[k - 1];
    }
}

static const decl_t *lookup(const gw_schema_t *s, gw_str_t name)
{
    const decl_t *d;

    if (recent.id != s->id) { /* another schema (a test's, or none yet) */
        memset(&recent, 0, sizeof(recent));
        recent.id = s->id;
    }
    for (int i = 0; i < RECENT && recent.d[i]; i++)
        if (gw_str_eq(recent.d[i]->name, name))
            return recent.d[i];
    d = lookup_hashed(s, name);
    if (d) {
        memmove(&recent.d[1], &recent.d[0], (RECENT - 1) * sizeof(recent.d[0]));
        recent.d[0] = d;
    }
    return d;
}

static int reject(char *msg, size_t msglen, const decl_t *d, const char *what, const rule_t *r,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int reject(char *msg, size_t msglen, const decl_t *d, const char *what, const rule_t *r,
                  const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!msg || !msglen)
        return 1;
    n = snprintf(msg, msglen, "series \"%.64s\": %s \"%.64s\": ", d->name.p, what, r->key.p);
    if (n > 0 && (size_t)n < msglen) {
        va_start(ap, fmt);
        vsnprintf(msg + n, msglen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return 1;
}

/* Make f's value of the declared type when no precision is lost in a way
 * InfluxDB would care about: integers to floats, non-negative integers
 * between int and uint. 0, or -1 when f cannot be of that type. */
static int coerce(gw_field_t *f, int type)
{
    switch (type) {
    case GW_FIELD_FLOAT:
        if (f->type == GW_FIELD_INT)
            f->v.f = (double)f->v.i;
        else if (f->type == GW_FIELD_UINT)
            f->v.f = (double)f->v.u;
        else
            return -1;
        break;
    case GW_FIELD_INT:
        if (f->type != GW_FIELD_UINT || f->v.u > INT64_MAX)
            return -1;
        f->v.i = (int64_t)f->v.u;
        break;
    case GW_FIELD_UINT:
        if (f->type != GW_FIELD_INT || f->v.i < 0)
            return -1;
        f->v.u = (uint64_t)f->v.i;
        break;
    default:
        return -1;
    }
    f->type = type;
    return 0;
}

int gw_schema_apply(const gw_schema_t *s, gw_point_t *p, gw_arena_t *a, char *msg, size_t msglen)
{
    const decl_t *d;
    uint32_t addt = 0, addf = 0;

    if (!s || !s->n || !(d = lookup(s, p->series)))
        return 0;
    for (uint32_t i = 0; i < d->ntags; i++) {
        const rule_t *r = &d->tags[i];
        int k = gw_point_find_tag(p, r->key);
        if (k >= 0 && p->tags[k].val.n)
            continue;
        if (r->has_default && k >= 0) {
            p->tags[k].val = r->def.v.s; /* empty value: no tag for InfluxDB */
            p->lp_clean = 0;
        } else if (r->has_default)
            addt++;
        else if (r->required)
            return reject(msg, msglen, d, "tag", r, "required but missing");
    }
    for (uint32_t i = 0; i < d->nfields; i++) {
        const rule_t *r = &d->fields[i];
        int k = gw_point_find_field(p, r->key);
        if (k < 0) {
            if (r->has_default)
                addf++;
            else if (r->required)
                return reject(msg, msglen, d, "field", r, "required but missing");
        } else if (r->type != TYPE_ANY && p->fields[k].type != r->type) {
            if (coerce(&p->fields[k], r->type))
                return reject(msg, msglen, d, "field", r, "must be %s %s, got %s %s",
                              r->type == GW_FIELD_INT ? "an" : "a", type_names[r->type],
                              p->fields[k].type == GW_FIELD_INT ? "an" : "a", type_names[p->fields[k].type]);
            p->lp_clean = 0; /* converted: the encoder writes the new value */
        }
    }
    /* A point the line-protocol parser vouched for (lp_clean) keeps the
     * flag for what is added below: the encoder copies the line's text and
     * writes added tags and fields from their values (encode_clean). */
    if ((addt || addf) && p->lp_clean)
        p->lp_clean |= GW_LP_CLEAN_EXTRA;
    if (addt) {
        gw_tag_t *t = gw_arena_alloc(a, (p->ntags + addt) * sizeof(*t));
        uint32_t n = p->ntags;
        if (!t)
            return -ENOMEM;
        if (p->ntags)
            memcpy(t, p->tags, p->ntags * sizeof(*t));
        for (uint32_t i = 0; i < d->ntags; i++)
            if (d->tags[i].has_default && gw_point_find_tag(p, d->tags[i].key) < 0)
                t[n++] = (gw_tag_t){d->tags[i].key, d->tags[i].def.v.s};
        p->tags = t;
        p->ntags = n;
    }
    if (addf) {
        gw_field_t *f = gw_arena_alloc(a, (p->nfields + addf) * sizeof(*f));
        uint32_t n = p->nfields;
        if (!f)
            return -ENOMEM;
        if (p->nfields)
            memcpy(f, p->fields, p->nfields * sizeof(*f));
        for (uint32_t i = 0; i < d->nfields; i++)
            if (d->fields[i].has_default && gw_point_find_field(p, d->fields[i].key) < 0) {
                f[n] = d->fields[i].def;
                f[n].key = d->fields[i].key;
                n++;
            }
        p->fields = f;
        p->nfields = n;
    }
    return 0;
}

static _Atomic(gw_schema_t *) current;

void gw_schema_publish(gw_schema_t *s)
{
    atomic_store_explicit(&current, s, memory_order_release);
}

const gw_schema_t *gw_schema_current(void)
{
    return atomic_load_explicit(&current, memory_order_acquire);
}
