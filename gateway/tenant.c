/* tenant.c — the tokens of listen.tokens, see tenant.h and docs/outputs.md. */
#include "tenant.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conftree.h"

struct gw_tenants {
    gw_tenant_t *v; /* owned, and every string and array they point to */
    uint32_t n;
};

static const char *const map_keys[] = {"name", "token", "tags", "databases", NULL};

int gw_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > GW_NAME_MAX || s[0] == '-' || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Checking the tree                                                         */

/* tags: a mapping of non-empty keys to non-empty scalar values. */
static int check_tags(const gw_conf_node_t *t, const char *path, const gw_conf_node_t **bad, char *msg,
                      size_t msglen)
{
    if (t->kind != GW_CONF_MAP || !t->child)
        return gw_conf_fail(bad, t, msg, msglen, "%s.tags: must be a mapping of tag keys to values", path);
    for (const gw_conf_node_t *c = t->child; c; c = c->next) {
        if (!*c->key)
            return gw_conf_fail(bad, c, msg, msglen, "%s.tags: a tag key must not be empty", path);
        if (c->kind != GW_CONF_SCALAR || !*c->value)
            return gw_conf_fail(bad, c, msg, msglen, "%s.tags.%s: must be a non-empty value", path, c->key);
    }
    return 0;
}

/* One map token, at index i of the list. */
static int check_map(const gw_conf_node_t *m, const char *path, const gw_conf_node_t **bad, char *msg,
                     size_t msglen)
{
    const gw_conf_node_t *name = gw_conf_child(m, "name"), *tok = gw_conf_child(m, "token");
    const gw_conf_node_t *tags = gw_conf_child(m, "tags"), *dbs = gw_conf_child(m, "databases");
    char sub[96];

    if (gw_conf_known_keys(m, map_keys, path, bad, msg, msglen))
        return -1;
    if (!tok || tok->kind != GW_CONF_SCALAR || !*tok->value)
        return gw_conf_fail(bad, tok ? tok : m, msg, msglen, "%s.token: %s", path,
                            tok ? "must be a non-empty string" : "missing: a map token needs token: and the secret");
    if (name && (name->kind != GW_CONF_SCALAR || !gw_name_ok(name->value)))
        return gw_conf_fail(bad, name, msg, msglen,
                            "%s.name: must be 1 to %d letters, digits, '_', '-' or '.', not starting with '-' or '.'",
                            path, GW_NAME_MAX);
    if (tags && !name)
        return gw_conf_fail(bad, tags, msg, msglen,
                            "%s.tags: a token that sets tags needs a name: (so that routes, scripts and logs can "
                            "tell its points apart)",
                            path);
    if (tags && check_tags(tags, path, bad, msg, msglen))
        return -1;
    snprintf(sub, sizeof(sub), "%s.databases", path);
    if (dbs && dbs->kind == GW_CONF_SEQ && !dbs->child)
        return gw_conf_fail(bad, dbs, msg, msglen,
                            "%s: an empty list lets the token write nowhere (leave databases: out for any)", sub);
    if (dbs && gw_conf_check_names(dbs, sub, bad, msg, msglen))
        return -1;
    return 0;
}

/* The secret of item t (a scalar, or a map's token:). */
static const char *secret_of(const gw_conf_node_t *t)
{
    const gw_conf_node_t *s = t->kind == GW_CONF_SCALAR ? t : gw_conf_child(t, "token");
    return s ? s->value : "";
}

static const char *name_of(const gw_conf_node_t *t)
{
    const gw_conf_node_t *s = t->kind == GW_CONF_MAP ? gw_conf_child(t, "name") : NULL;
    return s ? s->value : NULL;
}

/* No two tokens share a name or a secret (the secret is never quoted). */
static int check_unique(const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    unsigned i = 0;

    for (const gw_conf_node_t *t = tokens->child; t; t = t->next, i++) {
        unsigned j = 0;
        for (const gw_conf_node_t *u = tokens->child; u != t; u = u->next, j++) {
            const char *a = name_of(t), *b = name_of(u);
            if (a && b && strcmp(a, b) == 0)
                return gw_conf_fail(bad, gw_conf_child(t, "name"), msg, msglen,
                                    "listen.tokens[%u].name: \"%s\" is the name of listen.tokens[%u] already", i, a,
                                    j);
            if (strcmp(secret_of(t), secret_of(u)) == 0)
                return gw_conf_fail(bad, t, msg, msglen,
                                    "listen.tokens[%u]: the same token as listen.tokens[%u] (each must be its own)",
                                    i, j);
        }
    }
    return 0;
}

int gw_tenants_check(const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    unsigned i = 0;
    char path[48];

    if (!tokens)
        return 0;
    if (tokens->kind != GW_CONF_SEQ)
        return gw_conf_fail(bad, tokens, msg, msglen, "listen.tokens: must be a list of tokens");
    for (const gw_conf_node_t *t = tokens->child; t; t = t->next, i++) {
        snprintf(path, sizeof(path), "listen.tokens[%u]", i);
        if (t->kind == GW_CONF_SCALAR && !*t->value)
            return gw_conf_fail(bad, t, msg, msglen, "%s: a token must not be empty", path);
        if (t->kind == GW_CONF_SEQ)
            return gw_conf_fail(bad, t, msg, msglen, "%s: must be a token or a map with name:, token:, tags:, databases:",
                                path);
        if (t->kind == GW_CONF_MAP && check_map(t, path, bad, msg, msglen))
            return -1;
    }
    return check_unique(tokens, bad, msg, msglen);
}

int gw_tenants_tree_has(const gw_conf_node_t *tokens, const char *name)
{
    for (const gw_conf_node_t *t = tokens ? tokens->child : NULL; t; t = t->next) {
        const char *n = name_of(t);
        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Compiling                                                                 */

static int compile_one(gw_tenant_t *tn, const gw_conf_node_t *t)
{
    const gw_conf_node_t *tags = gw_conf_child(t, "tags"), *dbs = gw_conf_child(t, "databases");
    const char *name = name_of(t);
    gw_tag_t *tv;
    const char **dv;
    uint32_t k = 0;

    if (!(tn->token = strdup(secret_of(t))) || (name && !(tn->name = strdup(name))))
        return -1;
    if (tags) {
        tn->tags = tv = calloc(gw_conf_count(tags), sizeof(*tv));
        if (!tv)
            return -1;
        for (const gw_conf_node_t *c = tags->child; c; c = c->next, tn->ntags++) {
            char *key = strdup(c->key), *val = strdup(c->value);
            tv[tn->ntags] = (gw_tag_t){{key, key ? strlen(key) : 0}, {val, val ? strlen(val) : 0}};
            if (!key || !val)
                return -1;
        }
    }
    if (dbs) {
        tn->databases = dv = calloc(dbs->kind == GW_CONF_SCALAR ? 1 : gw_conf_count(dbs), sizeof(*dv));
        if (!dv)
            return -1;
        GW_CONF_EACH_NAME(dbs, d) {
            if (!(dv[k] = strdup(d->value)))
                return -1;
            tn->ndatabases = ++k;
        }
    }
    return 0;
}

gw_tenants_t *gw_tenants_create(const gw_conf_node_t *tokens)
{
    gw_tenants_t *t = calloc(1, sizeof(*t));
    unsigned n = gw_conf_count(tokens);

    if (!t || (n && !(t->v = calloc(n, sizeof(*t->v)))))
        goto fail;
    for (const gw_conf_node_t *c = n ? tokens->child : NULL; c; c = c->next)
        if (compile_one(&t->v[t->n++], c))
            goto fail;
    return t;

fail:
    gw_tenants_destroy(t);
    return NULL;
}

void gw_tenants_destroy(gw_tenants_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        gw_tenant_t *tn = &t->v[i];
        free((char *)tn->name);
        free((char *)tn->token);
        for (uint32_t j = 0; tn->tags && j < tn->ntags; j++) {
            free((char *)tn->tags[j].key.p);
            free((char *)tn->tags[j].val.p);
        }
        free((gw_tag_t *)tn->tags);
        for (uint32_t j = 0; j < tn->ndatabases; j++)
            free((char *)tn->databases[j]);
        free((char **)tn->databases);
    }
    free(t->v);
    free(t);
}

int gw_tenants_count(const gw_tenants_t *t)
{
    return t ? (int)t->n : 0;
}

/* ------------------------------------------------------------------------ */
/* Per request                                                               */

/* Equal, in time that depends only on the length of want (a configured
 * token), not on where have differs. */
static int token_eq(const char *have, size_t hn, const char *want)
{
    size_t wn = strlen(want);
    unsigned char d = hn != wn;

    for (size_t i = 0; i < wn; i++)
        d |= (unsigned char)(i < hn ? have[i] : 0) ^ (unsigned char)want[i];
    return d == 0;
}

const gw_tenant_t *gw_tenants_find(const gw_tenants_t *t, const char *tok, size_t n)
{
    const gw_tenant_t *found = NULL;

    for (uint32_t i = 0; t && i < t->n; i++)
        if (token_eq(tok, n, t->v[i].token))
            found = &t->v[i]; /* no early exit: every token is compared */
    return found;
}

int gw_tenant_database(const gw_tenant_t *tn, gw_str_t db, gw_str_t *out)
{
    if (!db.p || !db.n) {
        *out = tn && tn->ndatabases ? (gw_str_t){tn->databases[0], strlen(tn->databases[0])} : (gw_str_t){NULL, 0};
        return 0;
    }
    *out = db;
    if (!tn || !tn->ndatabases)
        return 0;
    for (uint32_t i = 0; i < tn->ndatabases; i++)
        if (strlen(tn->databases[i]) == db.n && memcmp(tn->databases[i], db.p, db.n) == 0)
            return 0;
    return -1;
}

int gw_tenant_tag(const gw_tenant_t *tn, gw_point_t *p, uint32_t n, gw_arena_t *a)
{
    if (!tn || !tn->ntags)
        return 0;
    for (uint32_t i = 0; i < n; i++, p++) {
        uint32_t add = 0;
        for (uint32_t j = 0; j < tn->ntags; j++)
            add += gw_point_find_tag(p, tn->tags[j].key) < 0;
        if (add) {
            gw_tag_t *t = gw_arena_alloc(a, (p->ntags + add) * sizeof(*t));
            if (!t)
                return -ENOMEM;
            if (p->ntags)
                memcpy(t, p->tags, p->ntags * sizeof(*t));
            p->tags = t;
        }
        for (uint32_t j = 0; j < tn->ntags; j++) {
            int k = gw_point_find_tag(p, tn->tags[j].key);
            if (k >= 0)
                p->tags[k].val = tn->tags[j].val;
            else
                p->tags[p->ntags++] = tn->tags[j];
        }
        if (p->lp_clean)
            p->lp_clean |= GW_LP_CLEAN_EXTRA;
    }
    return 0;
}
