/* config.h — the YAML configuration (libyaml), loaded once and immutable.
 *
 * A reload builds a new gw_config_t and swaps it in; nothing mutates a loaded
 * config. Every key lives in one table in config.c that drives loading,
 * defaults, bounds and `luagw --help-config`. Relative paths in it are
 * resolved against the directory of the file that sets them. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GW_CONFIG_DEFAULT_PATH "config/luagw.yaml"

/* A YAML value kept as a tree, for keys whose value is free-form data
 * (scripts.params, scripts.series). Scalars are ${}-expanded like any value. */
typedef struct gw_conf_node {
    int kind;                   /* GW_CONF_SCALAR, GW_CONF_SEQ or GW_CONF_MAP */
    char *key;                  /* owned: key in the parent mapping, else NULL */
    char *value;                /* owned: GW_CONF_SCALAR: the text, else NULL */
    int plain;                  /* GW_CONF_SCALAR: unquoted (may read as a number or bool) */
    size_t line, column;        /* 1-based, in the config file */
    struct gw_conf_node *child; /* owned: first item of a sequence or mapping */
    struct gw_conf_node *next;  /* owned: next item of the parent */
} gw_conf_node_t;

enum { GW_CONF_SCALAR = 0, GW_CONF_SEQ, GW_CONF_MAP };

typedef struct {
    char *path; /* owned: the file this was loaded from */

    struct {
        char *address;          /* owned */
        int port;
        int threads;            /* libmicrohttpd thread pool size */
        size_t max_body_bytes;  /* request body limit, after gzip inflation too */
        int connection_timeout; /* seconds an idle connection may stay */
        /* Limits on clients and bodies (docs/hardening.md). */
        int max_connections;     /* open client connections at most */
        size_t max_header_bytes; /* a connection's memory for request line and headers */
        uint32_t max_points;     /* points in one request body */
        size_t max_line_bytes;   /* one line-protocol line */
        uint32_t max_tags;       /* tags of one point */
        uint32_t max_fields;     /* fields of one point */
        size_t max_key_bytes;    /* series name, tag key, field key */
        size_t max_value_bytes;  /* tag value, string field value */
    } listen;

    struct {
        char *storage_type; /* owned: "influx" */
        int version;        /* 1 or 2 */
        char *host;         /* owned */
        int port;
        int use_ssl;
        char *database;     /* owned; version 1 */
        char *rp;           /* owned; version 1, "" = default policy */
        char *user;         /* owned; version 1 */
        char *password;     /* owned; version 1 */
        char *organization; /* owned; version 2 */
        char *bucket;       /* owned; version 2 */
        char *token;        /* owned; version 2 */
        double flushing_period; /* seconds */
        uint32_t batch_size;    /* points per batch */
        uint32_t buffer_limit;  /* points held at most */
        size_t buffer_limit_bytes; /* their bytes (lines and ends) at most */
        int gzip;               /* compress batches sent to InfluxDB */
        double timeout;         /* seconds for one write request */
        double retry_max;       /* seconds: cap of the retry backoff */
        double shutdown_timeout; /* seconds to flush on SIGTERM */
        char *overflow;         /* owned: reject | drop_oldest, when the buffer is full */
        char *dead_letter;      /* owned: file for points InfluxDB rejected, "" = none */
    } monitoring;

    struct {
        char *dir;              /* owned */
        int timeout_ms;         /* CPU budget of one script call */
        size_t memory_limit;    /* bytes per worker Lua state */
        char *on_error;         /* owned: pass | drop */
        uint32_t memo_entries;  /* memo cache entries per worker, 0 = memo off */
        int memo_verify;        /* check a sample of memo hits by running the script */
        gw_conf_node_t *series; /* owned: mapping series -> [files], NULL = {} */
        gw_conf_node_t *params; /* owned: mapping seen by scripts as params, NULL = {} */
    } scripts;

    struct {
        char *level; /* owned: debug | info | warn | error */
    } log;

    struct {
        char *dir;             /* owned: "" = no spool */
        size_t max_bytes;      /* segments on disk at most */
        char *fsync;           /* owned: batch | interval | never */
        double fsync_interval; /* seconds, with fsync: interval */
    } spool;

    /* Top-level keys, kept last so the layout above stays put. */
    char *service;          /* owned: `service:`, what `$service` defaults stand for; "" = none */
    gw_conf_node_t *series; /* owned: `series:` declarations (schema.c, docs/series.md), NULL = {} */

    /* Access: listen.tokens, listen.tls_*, monitoring.tls_* (kept here, after
     * the sections, so their layout stays put). */
    struct {
        gw_conf_node_t *tokens; /* owned: listen.tokens, a sequence of scalars; NULL = no check */
        char *tls_cert;         /* owned: listen.tls_cert, PEM file; "" = plain HTTP */
        char *tls_key;          /* owned: listen.tls_key, PEM file */
        int tls_verify;         /* monitoring.tls_verify */
        char *tls_ca;           /* owned: monitoring.tls_ca, CA bundle; "" = the system's */
    } access;

    char *warnings; /* owned: what loading found odd but allowed, one line each
                     * ("file:line:column: key: what"); NULL = none */
    /* Who may connect (docs/hardening.md): listen.max_connections_per_client
     * and listen.probe_connections, kept here, last, so the layout above
     * stays put. */
    struct {
        int per_client; /* connections of one client address at most, 0 = no cap */
        int probes;     /* connections beyond max_connections, for /ping, /health, /metrics */
    } conns;

    /* listen.drain_seconds (kept last so the layout above stays put):
     * after SIGTERM, seconds of ingest while /health already answers 503. */
    double drain_seconds;
    /* listen.max_inflight_bytes (inflight.h): the memory requests in progress
     * may hold, kept here, last, so the layout above stays put. */
    size_t max_inflight_bytes;
    /* outputs: and routes: (docs/outputs.md), kept last so the layout above
     * stays put: trees checked by output.c and route.c; NULL = none. */
    gw_conf_node_t *outputs; /* owned: a mapping name -> the keys of monitoring: */
    gw_conf_node_t *routes;  /* owned: a sequence of {match, to} */
    int passthrough;         /* monitoring.passthrough: the database a write names is used */
    uint32_t max_databases;  /* monitoring.max_databases */
} gw_config_t;

/* Load and validate path. On success returns a new config (free with
 * gw_config_free). On failure returns NULL and writes one line
 * "file:line:column: key: what is wrong" into err. */
gw_config_t *gw_config_load(const char *path, char *err, size_t errlen);

/* Free a config. NULL is a no-op. */
void gw_config_free(gw_config_t *cfg);

/* Free a tree and its siblings. NULL is a no-op. */
void gw_conf_node_free(gw_conf_node_t *n);

/* A copy of cfg's settings (strings copied), without its trees (scripts,
 * series, tokens, outputs, routes: NULL): what one output's sender and
 * spool read (output.c). NULL on ENOMEM. Free with gw_config_free. */
gw_config_t *gw_config_copy(const gw_config_t *cfg);

/* Set key ("monitoring.port") to value as the file would (a relative path
 * beside cfg->path). 0; -1 with "must be ..., got ..." in err; -2 for a key
 * that is not one (or is a tree). */
int gw_config_set(gw_config_t *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Print every key with its type, default and help text (--help-config). */
void gw_config_print_reference(FILE *out);

/* luagw --print-config: write what cfg holds for key (defaults applied,
 * ${VAR} expanded, paths resolved) as text. bare: the value alone on its
 * line; else "key=value" with \, newlines and other control bytes escaped
 * C-style. A section name ("monitoring") prints each of its keys, and key
 * NULL every key, as key=value. Sizes are bytes, seconds a decimal number,
 * booleans true/false, lists and mappings YAML flow style. Returns 0, or -1
 * (nothing written) when key names no key or section, with the reason in
 * err. */
int gw_config_print_key(const gw_config_t *cfg, const char *key, int bare, FILE *out, char *err,
                        size_t errlen);

#endif
