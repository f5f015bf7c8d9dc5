/* outconf.h — the outputs a configuration names (docs/outputs.md).
 *
 * `outputs:` maps names to InfluxDBs, each with the keys of monitoring:
 * (and passthrough, max_databases, spool); without it, monitoring: is the
 * one output "monitoring". Each output gets a gw_config_t of its own: a
 * copy of the file's settings with its monitoring.* and spool.* set from
 * its section, so the InfluxDB client, the delivery rules and the spool
 * read it exactly as they read a single monitoring: section. */
#ifndef GW_OUTCONF_H
#define GW_OUTCONF_H

#include <stddef.h>

#include "config.h"

typedef struct {
    char *name;       /* owned */
    gw_config_t *cfg; /* owned: monitoring.* and spool.* are this output's */
    int passthrough;  /* a database the client's write names is used here */
    unsigned max_databases;
} gw_outconf_t;

typedef struct {
    gw_outconf_t *v; /* owned */
    int n;
} gw_outconfs_t;

/* Build the outputs of cfg into *out. 0; or -1 with "<key>: <what>" in
 * msg and *bad the node to point file:line:column at (NULL: the file). */
int gw_outconfs_build(const gw_config_t *cfg, gw_outconfs_t *out, const gw_conf_node_t **bad, char *msg,
                      size_t msglen);

/* The names, in order, into names[0..n) (borrowed from oc). */
void gw_outconfs_names(const gw_outconfs_t *oc, const char **names);

/* Free what build made. NULL or an empty set is a no-op. */
void gw_outconfs_free(gw_outconfs_t *oc);

#endif
