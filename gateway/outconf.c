/* outconf.c — the outputs a configuration names; see outconf.h. */
#include "outconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conftree.h"
#include "route.h"
#include "tenant.h"

static const char *const spool_keys[] = {"dir", "max_bytes", "fsync", "fsync_interval", NULL};

/* Set "<section>.<key>" of c from the scalar n. 0 or gw_conf_fail. */
static int set_key(gw_config_t *c, const char *section, const gw_conf_node_t *n, const char *path,
                   const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    char key[128], why[512];
    int rc;

    snprintf(key, sizeof(key), "%s.%s", section, n->key);
    if (n->kind != GW_CONF_SCALAR)
        return gw_conf_fail(bad, n, msg, msglen, "%s.%s: must be a single value, not a %s", path, n->key,
                            n->kind == GW_CONF_SEQ ? "list" : "mapping");
    rc = gw_config_set(c, key, n->value, why, sizeof(why));
    if (rc == -2)
        return gw_conf_fail(bad, n, msg, msglen,
                            "%s.%s: unknown key (an output takes the keys of monitoring:, and spool)", path, n->key);
    if (rc)
        return gw_conf_fail(bad, n, msg, msglen, "%s.%s: %s", path, n->key, why);
    return 0;
}

/* The rules config.c checks for monitoring:, for one output. */
static int check_output(const gw_config_t *c, const gw_conf_node_t *at, const char *path,
                        const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    const char *empty = NULL;

    if (c->monitoring.buffer_limit < c->monitoring.batch_size)
        return gw_conf_fail(bad, at, msg, msglen, "%s.buffer_limit: must be at least batch_size (%u), got %u", path,
                            (unsigned)c->monitoring.batch_size, (unsigned)c->monitoring.buffer_limit);
    if (c->monitoring.version == 1 && !*c->monitoring.database)
        empty = "database";
    else if (c->monitoring.version == 2 && !*c->monitoring.organization)
        empty = "organization";
    else if (c->monitoring.version == 2 && !*c->monitoring.bucket)
        empty = "bucket";
    if (empty)
        return gw_conf_fail(bad, at, msg, msglen, "%s.%s: must not be empty with version %d", path, empty,
                            c->monitoring.version);
    return 0;
}

/* Output number i, from its section sec (NULL: monitoring: itself). */
static int build_one(const gw_config_t *cfg, const gw_conf_node_t *sec, gw_outconf_t *o, const gw_conf_node_t **bad,
                     char *msg, size_t msglen)
{
    const gw_conf_node_t *spool = gw_conf_child(sec, "spool");
    char path[GW_NAME_MAX + 16];

    if (!(o->name = strdup(sec ? sec->key : "monitoring")) || !(o->cfg = gw_config_copy(cfg)))
        return gw_conf_fail(bad, sec, msg, msglen, "outputs: out of memory");
    snprintf(path, sizeof(path), "outputs.%s", o->name);
    if (sec && sec->kind != GW_CONF_MAP)
        return gw_conf_fail(bad, sec, msg, msglen, "%s: must be a mapping of the keys of monitoring:", path);
    if (sec && *cfg->spool.dir) {
        /* The top-level spool: each output in a directory of its own. */
        char *dir;
        if (asprintf(&dir, "%s/%s", cfg->spool.dir, o->name) < 0)
            return gw_conf_fail(bad, sec, msg, msglen, "outputs: out of memory");
        free(o->cfg->spool.dir);
        o->cfg->spool.dir = dir;
    }
    for (const gw_conf_node_t *k = sec ? sec->child : NULL; k; k = k->next)
        if (k != spool && set_key(o->cfg, "monitoring", k, path, bad, msg, msglen))
            return -1;
    if (spool) {
        char sp[GW_NAME_MAX + 32];
        snprintf(sp, sizeof(sp), "%s.spool", path);
        if (spool->kind != GW_CONF_MAP)
            return gw_conf_fail(bad, spool, msg, msglen, "%s: must be a mapping {dir, max_bytes, fsync, fsync_interval}",
                                sp);
        if (gw_conf_known_keys(spool, spool_keys, sp, bad, msg, msglen))
            return -1;
        if (!gw_conf_child(spool, "dir") && gw_config_set(o->cfg, "spool.dir", "", msg, msglen))
            return gw_conf_fail(bad, spool, msg, msglen, "outputs: out of memory");
        for (const gw_conf_node_t *k = spool->child; k; k = k->next)
            if (set_key(o->cfg, "spool", k, sp, bad, msg, msglen))
                return -1;
    }
    o->passthrough = o->cfg->monitoring.passthrough;
    o->max_databases = o->cfg->monitoring.max_databases;
    return check_output(o->cfg, sec, path, bad, msg, msglen);
}

/* Two outputs must not share a spool directory; dead letters go to one
 * file for the whole gateway (deadletter.h), so the outputs that name one
 * name the same. */
static int check_shared(const gw_outconfs_t *oc, const gw_conf_node_t *outputs, const gw_conf_node_t **bad, char *msg,
                        size_t msglen)
{
    const gw_conf_node_t *at = outputs ? outputs->child : NULL;

    for (int i = 0; i < oc->n; i++, at = at ? at->next : NULL)
        for (int j = 0; j < i; j++) {
            const gw_config_t *a = oc->v[i].cfg, *b = oc->v[j].cfg;
            if (*a->spool.dir && strcmp(a->spool.dir, b->spool.dir) == 0)
                return gw_conf_fail(bad, at, msg, msglen, "outputs.%s.spool.dir: %s is already the spool of output %s",
                                    oc->v[i].name, a->spool.dir, oc->v[j].name);
            if (*a->monitoring.dead_letter && *b->monitoring.dead_letter &&
                strcmp(a->monitoring.dead_letter, b->monitoring.dead_letter) != 0)
                return gw_conf_fail(bad, at, msg, msglen,
                                    "outputs.%s.dead_letter: dead letters go to one file for the whole gateway, and "
                                    "output %s names %s",
                                    oc->v[i].name, oc->v[j].name, b->monitoring.dead_letter);
        }
    return 0;
}

int gw_outconfs_build(const gw_config_t *cfg, gw_outconfs_t *out, const gw_conf_node_t **bad, char *msg,
                      size_t msglen)
{
    const gw_conf_node_t *outputs = cfg->outputs;
    int n = outputs ? (int)gw_conf_count(outputs) : 0;

    *bad = NULL;
    out->n = 0;
    if (n > GW_OUTPUTS_MAX)
        return gw_conf_fail(bad, outputs, msg, msglen, "outputs: %d outputs, more than %d", n, GW_OUTPUTS_MAX);
    out->v = calloc(n ? (size_t)n : 1, sizeof(*out->v));
    if (!out->v)
        return gw_conf_fail(bad, outputs, msg, msglen, "outputs: out of memory");
    if (!n) {
        out->n = 1;
        return build_one(cfg, NULL, &out->v[0], bad, msg, msglen);
    }
    for (const gw_conf_node_t *c = outputs->child; c; c = c->next) {
        if (!gw_name_ok(c->key))
            return gw_conf_fail(bad, c, msg, msglen,
                                "outputs.%s: an output's name is 1 to %d letters, digits, '_', '-' or '.'", c->key,
                                GW_NAME_MAX);
        out->n++;
        if (build_one(cfg, c, &out->v[out->n - 1], bad, msg, msglen))
            return -1;
    }
    return check_shared(out, outputs, bad, msg, msglen);
}

void gw_outconfs_names(const gw_outconfs_t *oc, const char **names)
{
    for (int i = 0; i < oc->n; i++)
        names[i] = oc->v[i].name;
}

void gw_outconfs_free(gw_outconfs_t *oc)
{
    if (!oc || !oc->v)
        return;
    for (int i = 0; i < oc->n; i++) {
        free(oc->v[i].name);
        gw_config_free(oc->v[i].cfg);
    }
    free(oc->v);
    oc->v = NULL;
    oc->n = 0;
}
