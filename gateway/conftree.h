/* conftree.h — reading and checking the trees of free-form config sections
 * (gw_conf_node_t: series:, outputs:, routes:, listen.tokens).
 *
 * The modules that own such a section check its tree themselves and say
 * what is wrong as "<key>: <what>", with the node to point the config's
 * file:line:column at; config.c reports it. These are the helpers they
 * share. */
#ifndef GW_CONFTREE_H
#define GW_CONFTREE_H

#include <stddef.h>

#include "config.h"

/* The item of mapping m with key, or NULL (also when m is NULL). */
const gw_conf_node_t *gw_conf_child(const gw_conf_node_t *m, const char *key);

/* Items of a sequence or mapping (0 for NULL or a scalar). */
unsigned gw_conf_count(const gw_conf_node_t *n);

/* Is n a scalar with nothing in it ("key:" alone, or "")? */
int gw_conf_empty(const gw_conf_node_t *n);

/* Record a check failure: *bad = at, the message into msg. Returns -1. */
int gw_conf_fail(const gw_conf_node_t **bad, const gw_conf_node_t *at, char *msg, size_t msglen,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Check that every key of mapping m is one of the NULL-terminated keys;
 * else gw_conf_fail "<path>.<key>: unknown key (expected a, b, c)". */
int gw_conf_known_keys(const gw_conf_node_t *m, const char *const *keys, const char *path,
                       const gw_conf_node_t **bad, char *msg, size_t msglen);

/* A list of names: a sequence of non-empty scalars, or one scalar standing
 * for a list of one. 0, or gw_conf_fail "<path>: <why>". */
int gw_conf_check_names(const gw_conf_node_t *n, const char *path, const gw_conf_node_t **bad, char *msg,
                        size_t msglen);

/* Call fn for each name of a list checked by gw_conf_check_names. */
#define GW_CONF_EACH_NAME(n, it) \
    for (const gw_conf_node_t *it = (n)->kind == GW_CONF_SCALAR ? (n) : (n)->child; it; \
         it = (n)->kind == GW_CONF_SCALAR ? NULL : it->next)

#endif
