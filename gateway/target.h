/* target.h — where a read for a database goes, and who may read it.
 *
 * A /query goes to the output whose own database (1.x `database`, 2.x
 * `bucket`) is the one the request names; when none is, to the first
 * output (outputs:, or monitoring:). A token limited to some databases
 * (listen.tokens[].databases) must name one of them with db=. The query
 * text itself is not parsed: a statement that names another database
 * explicitly ("other".."m") is InfluxDB's to refuse (docs/operations.md). */
#ifndef GW_TARGET_H
#define GW_TARGET_H

#include "output.h"
#include "tenant.h"

/* An output as a reader sees it. Every pointer is borrowed from the
 * output's configuration and lives as long as it; "" means none. */
typedef struct {
    const char *name;     /* the output's name, for messages */
    int version;          /* InfluxDB's API: 1 or 2 (2.x answers /query through its 1.x API) */
    const char *host;
    int port;
    int use_ssl;
    int tls_verify;
    const char *tls_ca;   /* CA bundle, "" = the system's */
    const char *user;     /* 1.x: HTTP Basic */
    const char *password;
    const char *token;    /* 2.x: Authorization: Token */
    double connect_timeout; /* seconds */
} gw_target_t;

/* The output of outs that owns database db (NULL or "": none named), or
 * the first, into *t. 0, or -ENOENT when there is none to ask. */
int gw_target_for_db(gw_outputs_t *outs, const char *db, gw_target_t *t);

/* May a request holding token tn (NULL: tokens are not set, or none is
 * needed) read database db (NULL or "": none named)? A token without
 * databases reads every one. */
int gw_target_may_read(const gw_tenant_t *tn, const char *db);

#endif
