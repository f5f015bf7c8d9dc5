/* config_check.c — what a loaded configuration must satisfy
 * (config_int.h): every key without a value gets its default (parsed as a
 * user's value would be), the tree-valued keys have the shapes their
 * users read, and the rules between keys hold; each error points at the
 * key that breaks it, file:line:column. */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

#include "outconf.h"
#include "route.h"
#include "schema.h"
#include "tenant.h"

/* scripts.series: each series names one file or a non-empty list of them. */
int config_check_chains(loader_t *ld, const option_t *o, const gw_conf_node_t *root)
{
    gw_buf_t key = {0};
    int rc = 0;

    for (const gw_conf_node_t *c = root->child; c && !rc; c = c->next) {
        int ok = *c->key != '\0';
        if (c->kind == GW_CONF_SCALAR)
            ok = ok && *c->value;
        else if (c->kind == GW_CONF_SEQ) {
            ok = ok && c->child;
            for (const gw_conf_node_t *f = c->child; f; f = f->next)
                ok = ok && f->kind == GW_CONF_SCALAR && *f->value;
        } else
            ok = 0;
        if (!ok) {
            key.len = 0;
            gw_buf_printf(&key, "%s.%s", o->key, c->key);
            config_report(ld, config_node_mark(c), key.data ? key.data : o->key, key.data ? key.len : strlen(o->key),
                          *c->key ? "must be a script file or a non-empty list of script files"
                           : "a series name must not be empty");
            rc = -1;
        }
    }
    gw_buf_free(&key);
    return rc;
}

/* A list: every item a non-empty scalar. */
int config_check_list(loader_t *ld, const option_t *o, const gw_conf_node_t *root)
{
    for (const gw_conf_node_t *c = root->child; c; c = c->next)
        if (c->kind != GW_CONF_SCALAR || !*c->value) {
            config_report(ld, config_node_mark(c), o->key, strlen(o->key),
                          "must be a list of non-empty strings, got %s",
                          c->kind != GW_CONF_SCALAR ? "a nested item" : "an empty string");
            return -1;
        }
    return 0;
}

/* series: the declarations must make sense (schema.c says what is wrong). */
int config_check_series(loader_t *ld, const gw_conf_node_t *root)
{
    const gw_conf_node_t *bad = root;
    char msg[512];
    const char *colon;

    if (!gw_schema_check(root, &bad, msg, sizeof(msg)))
        return 0;
    colon = strstr(msg, ": ");
    if (!colon)
        colon = msg + strlen(msg);
    config_report(ld, config_node_mark(bad), msg, (size_t)(colon - msg), "%s", *colon ? colon + 2 : "invalid");
    return -1;
}

/* Fill every option the file did not set from its default. 0 or -1. */
int config_apply_defaults(loader_t *ld)
{
    for (size_t i = 0; i < config_noptions; i++) {
        const option_t *o = &config_options[i];
        value_t v = {0};
        if (ld->seen[i])
            continue;
        if (config_parse_value(o, o->def, &v) || config_resolve_path(ld, o, &v)) {
            if (o->type == OPT_PATH)
                free(v.s);
            /* A bad default is a bug in the table, but say so clearly. */
            config_report(ld, (yaml_mark_t){0}, o->key, strlen(o->key),
                          "internal error: default \"%s\" is invalid (or out of memory)", o->def);
            return -1;
        }
        config_store_value(ld->cfg, o, v);
    }
    return 0;
}

/* Where to point a cross-check: at key if the file set it, else at the
 * first of the others that it set, else at the start of the file. */
static yaml_mark_t mark_of(loader_t *ld, const char *key, const char *other1, const char *other2)
{
    const char *keys[] = {key, other1, other2};

    for (int i = 0; i < 3; i++) {
        const option_t *o = keys[i] ? config_find_option(keys[i]) : NULL;
        if (o && ld->seen[o - config_options])
            return ld->mark[o - config_options];
    }
    return (yaml_mark_t){0};
}

/* Rules between keys, checked after defaults so they also hold for them. */
int config_cross_check(loader_t *ld)
{
    const gw_config_t *c = ld->cfg;
    const char *empty = NULL;

    if (c->monitoring.buffer_limit < c->monitoring.batch_size) {
        config_report(ld, mark_of(ld, "monitoring.buffer_limit", "monitoring.batch_size", NULL),
                      "monitoring.buffer_limit", strlen("monitoring.buffer_limit"),
                      "must be at least monitoring.batch_size (%u), got %u",
                      (unsigned)c->monitoring.batch_size, (unsigned)c->monitoring.buffer_limit);
        return -1;
    }
    if (c->listen.max_inflight_bytes < c->listen.max_body_bytes) {
        config_report(ld, mark_of(ld, "listen.max_inflight_bytes", "listen.max_body_bytes", NULL),
                      "listen.max_inflight_bytes", strlen("listen.max_inflight_bytes"),
                      "must be at least listen.max_body_bytes (%zu), got %zu", c->listen.max_body_bytes,
                      c->listen.max_inflight_bytes);
        return -1;
    }
    if (!*c->listen.tls_cert != !*c->listen.tls_key) {
        const char *k = *c->listen.tls_cert ? "listen.tls_key" : "listen.tls_cert";
        config_report(ld, mark_of(ld, "listen.tls_cert", "listen.tls_key", NULL), k, strlen(k),
                      "listen.tls_cert and listen.tls_key go together: set both or neither");
        return -1;
    }
    if (c->monitoring.version == 1 && !*c->monitoring.database)
        empty = "monitoring.database";
    else if (c->monitoring.version == 2 && !*c->monitoring.organization)
        empty = "monitoring.organization";
    else if (c->monitoring.version == 2 && !*c->monitoring.bucket)
        empty = "monitoring.bucket";
    if (empty) {
        config_report(ld, mark_of(ld, empty, "monitoring.version", NULL), empty, strlen(empty),
                      "must not be empty with monitoring.version %d", c->monitoring.version);
        return -1;
    }
    return 0;
}

/* A check of a module (msg "<key>: <what>", bad the node or NULL) failed:
 * report it at the node. Returns -1. */
static int report_node(loader_t *ld, const gw_conf_node_t *bad, const char *msg)
{
    const char *colon = strstr(msg, ": ");

    if (!colon)
        colon = msg + strlen(msg);
    config_report(ld, bad ? config_node_mark(bad) : (yaml_mark_t){0}, msg, (size_t)(colon - msg), "%s",
                  *colon ? colon + 2 : "invalid");
    return -1;
}

/* monitoring: and outputs: do not go together. */
static int check_alone(loader_t *ld)
{
    if (!ld->cfg->outputs)
        return 0;
    for (size_t i = 0; i < config_noptions; i++)
        if (ld->seen[i] && strncmp(config_options[i].key, "monitoring.", 11) == 0) {
            config_report(ld, ld->mark[i], "monitoring", 10,
                          "monitoring: and outputs: do not go together: move monitoring: under outputs: as an "
                          "output of its own");
            return -1;
        }
    return 0;
}

/* See config_int.h. */
int config_check_outputs(loader_t *ld)
{
    const gw_config_t *c = ld->cfg;
    const gw_conf_node_t *bad = NULL;
    const char *names[GW_OUTPUTS_MAX];
    char msg[600], warn[600] = "";
    gw_outconfs_t oc = {0};
    int rc;

    if (check_alone(ld))
        return -1;
    if (gw_tenants_check(c->listen.tokens, &bad, msg, sizeof(msg)))
        return report_node(ld, bad, msg);
    rc = gw_outconfs_build(c, &oc, &bad, msg, sizeof(msg));
    if (!rc) {
        gw_outconfs_names(&oc, names);
        rc = gw_routes_check(c->routes, names, oc.n, c->listen.tokens, &bad, msg, sizeof(msg), warn, sizeof(warn));
    }
    gw_outconfs_free(&oc);
    if (rc)
        return report_node(ld, bad, msg);
    if (*warn) {
        if (ld->warning.len)
            gw_buf_putc(&ld->warning, '\n');
        config_put_where(&ld->warning, ld, c->routes ? config_node_mark(c->routes) : (yaml_mark_t){0}, "routes", 6);
        gw_buf_printf(&ld->warning, "%s", warn);
    }
    return 0;
}
