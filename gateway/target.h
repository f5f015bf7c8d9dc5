/* target.h — where a read for a database goes: the output that owns the
 * database, or the first output. http.c hands it the first output's
 * configuration (outputs:, or monitoring:), so every database resolves to
 * that output; choosing by database is still to come. */
#ifndef GW_TARGET_H
#define GW_TARGET_H

#include "config.h"

/* An output as a reader sees it. Every pointer is borrowed from the config
 * and lives as long as it; "" means none. */
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

/* The output that owns database db (NULL or "": none named) in cfg, into
 * *t. 0, or -ENOENT when no output can take it. */
int gw_target_for_db(const gw_config_t *cfg, const char *db, gw_target_t *t);

/* May a request holding token (NULL: tokens are not set) read database db
 * (NULL: none named)? Today a token is valid for every database; tokens
 * limited to some databases answer here. */
int gw_target_may_read(const gw_config_t *cfg, const char *token, const char *db);

#endif
