/* conftree.c — helpers for the modules that check config trees; see
 * conftree.h. */
#include "conftree.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const gw_conf_node_t *gw_conf_child(const gw_conf_node_t *m, const char *key)
{
    for (const gw_conf_node_t *c = m && m->kind == GW_CONF_MAP ? m->child : NULL; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

unsigned gw_conf_count(const gw_conf_node_t *n)
{
    unsigned k = 0;

    for (const gw_conf_node_t *c = n && n->kind != GW_CONF_SCALAR ? n->child : NULL; c; c = c->next)
        k++;
    return k;
}

int gw_conf_empty(const gw_conf_node_t *n)
{
    return n && n->kind == GW_CONF_SCALAR && !*n->value;
}

int gw_conf_fail(const gw_conf_node_t **bad, const gw_conf_node_t *at, char *msg, size_t msglen,
                 const char *fmt, ...)
{
    va_list ap;

    *bad = at;
    if (msglen) {
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int gw_conf_known_keys(const gw_conf_node_t *m, const char *const *keys, const char *path,
                       const gw_conf_node_t **bad, char *msg, size_t msglen)
{
    for (const gw_conf_node_t *c = m->child; c; c = c->next) {
        char expected[256] = "";
        size_t at = 0;
        int known = 0;

        for (const char *const *k = keys; *k; k++) {
            known |= strcmp(c->key, *k) == 0;
            if (at < sizeof(expected))
                at += (size_t)snprintf(expected + at, sizeof(expected) - at, "%s%s", k == keys ? "" : ", ", *k);
        }
        if (!known)
            return gw_conf_fail(bad, c, msg, msglen, "%s.%s: unknown key (expected %s)", path, c->key, expected);
    }
    return 0;
}

int gw_conf_check_names(const gw_conf_node_t *n, const char *path, const gw_conf_node_t **bad, char *msg,
                        size_t msglen)
{
    if (n->kind == GW_CONF_MAP)
        return gw_conf_fail(bad, n, msg, msglen, "%s: must be a name or a list of names, got a mapping", path);
    if (n->kind == GW_CONF_SCALAR && !*n->value)
        return gw_conf_fail(bad, n, msg, msglen, "%s: must not be empty", path);
    if (n->kind == GW_CONF_SEQ && !n->child)
        return gw_conf_fail(bad, n, msg, msglen, "%s: an empty list matches nothing", path);
    for (const gw_conf_node_t *c = n->kind == GW_CONF_SEQ ? n->child : NULL; c; c = c->next)
        if (c->kind != GW_CONF_SCALAR || !*c->value)
            return gw_conf_fail(bad, c, msg, msglen, "%s: each item must be a non-empty name, got %s", path,
                                c->kind != GW_CONF_SCALAR ? "a nested item" : "an empty one");
    return 0;
}
