/* schema.h — series declarations (the `series:` config section): per series
 * its tags and fields, their types, which are required, and defaults.
 *
 * A schema is compiled once from the config tree and never changes; workers
 * share it read-only. Checking a point costs one hash lookup of its series
 * and a scan of the declared keys; nothing is allocated unless a default has
 * to be added (then from the request's arena). See docs/series.md. */
#ifndef GW_SCHEMA_H
#define GW_SCHEMA_H

#include <stddef.h>

#include "config.h"
#include "point.h"

typedef struct gw_schema gw_schema_t;

/* Check the tree of `series:` as the config loader reads it. 0 when valid;
 * else -1 with the reason in msg (starting with the dotted key) and *bad the
 * node to point the file:line:column at. Used by config.c so that
 * --check-config catches a bad declaration. */
int gw_schema_check(const gw_conf_node_t *root, const gw_conf_node_t **bad, char *msg, size_t msglen);

/* Compile cfg->series (already checked) with cfg->service standing in for
 * `$service` defaults. NULL on ENOMEM. An empty section compiles to a schema
 * that declares nothing. Free with gw_schema_destroy. */
gw_schema_t *gw_schema_create(const gw_config_t *cfg);

void gw_schema_destroy(gw_schema_t *s);

/* Number of declared series. */
int gw_schema_count(const gw_schema_t *s);

/* Check p against its series' declaration and add the defaults it lacks
 * (arrays grown in a, strings borrowed from s). Returns 0 when p passes
 * (undeclared series always pass, as does s == NULL); 1 when p breaks a rule,
 * with "series \"x\": field \"k\": <rule>" in msg (msglen > 0; may be NULL
 * to skip formatting); -ENOMEM. */
int gw_schema_apply(const gw_schema_t *s, gw_point_t *p, gw_arena_t *a, char *msg, size_t msglen);

/* The schema in force for ingest: set once at start-up by main.c (NULL
 * until then: nothing is checked). The caller keeps ownership. */
void gw_schema_publish(gw_schema_t *s);
const gw_schema_t *gw_schema_current(void);

#endif
