/* tenant.h — who writes: the tokens of listen.tokens.
 *
 * A token is a string (any database, no name) or a map
 *   {name: billing, token: T, tags: {tenant: billing}, databases: [billing, x]}
 * whose name routes: and scripts (req.token) see, whose tags are set on
 * every point it writes (over the point's own value, before scripts), and
 * whose databases are the only ones a write with it may name; the first is
 * the default when a write names none. docs/outputs.md.
 *
 * A set is compiled once from the config tree (already checked by
 * gw_tenants_check) and never changes; a reload builds a new one. Workers
 * share it read-only. Finding a token compares it with every configured
 * one, in time that does not depend on where they differ. */
#ifndef GW_TENANT_H
#define GW_TENANT_H

#include <stddef.h>

#include "arena.h"
#include "config.h"
#include "point.h"

typedef struct gw_tenants gw_tenants_t;

typedef struct {
    const char *name;       /* owned by the set; NULL for an unnamed token */
    const char *token;      /* owned by the set */
    const gw_tag_t *tags;   /* owned by the set: set on every point it writes */
    uint32_t ntags;
    const char *const *databases; /* owned by the set; the first is the default */
    uint32_t ndatabases;          /* 0: any database, no default */
} gw_tenant_t;

/* Longest token name (and output name: docs/outputs.md). */
#define GW_NAME_MAX 64

/* Is s a valid name for a token or an output: 1 to GW_NAME_MAX letters,
 * digits, '_', '-' and '.', not starting with '-' or '.'? */
int gw_name_ok(const char *s);

/* Check the tree of listen.tokens (a sequence, NULL = none). 0 when valid;
 * else -1 with the reason in msg (starting with the key, e.g.
 * "listen.tokens[1].tags: ...") and *bad the node to point the
 * file:line:column at. Never quotes a token's secret. */
int gw_tenants_check(const gw_conf_node_t *tokens, const gw_conf_node_t **bad, char *msg, size_t msglen);

/* Is name the name of one of the tokens of the tree tokens? */
int gw_tenants_tree_has(const gw_conf_node_t *tokens, const char *name);

/* Compile a checked tree (NULL: no tokens). NULL on ENOMEM. Free with
 * gw_tenants_destroy. */
gw_tenants_t *gw_tenants_create(const gw_conf_node_t *tokens);

void gw_tenants_destroy(gw_tenants_t *t);

/* Tokens in the set: 0 means no check (every request is let in). */
int gw_tenants_count(const gw_tenants_t *t);

/* The token tok (n bytes) is, or NULL when it is none of them. Every token
 * is compared, each in time that depends only on its own length. */
const gw_tenant_t *gw_tenants_find(const gw_tenants_t *t, const char *tok, size_t n);

/* The database a write by tn (NULL: no token) naming db is for. db.p NULL
 * (or an empty name) is "none named": then tn's default, if it has one.
 * Returns 0 with *out set (db itself, or borrowed from tn; out->p NULL for
 * none), or -1 when tn may not write to db. */
int gw_tenant_database(const gw_tenant_t *tn, gw_str_t db, gw_str_t *out);

/* Set tn's tags on each of the n points at p, over their own values:
 * tag arrays grown in a, strings borrowed from the set. A point the
 * line-protocol parser vouched for keeps its flag with GW_LP_CLEAN_EXTRA
 * (the encoder writes the tags that are not in the line from their values).
 * 0 or -ENOMEM. */
int gw_tenant_tag(const gw_tenant_t *tn, gw_point_t *p, uint32_t n, gw_arena_t *a);

#endif
