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

#include "buf.h"

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

/* The settings that name one of a few choices, parsed once into these (the
 * names are those written in YAML). spool.fsync is a GW_SPOOL_FSYNC_*
 * (spool.h), log.level a GW_LOG_* (log.h). */
typedef enum { GW_STORAGE_INFLUX = 0 } gw_storage_type_t;
typedef enum { GW_OVERFLOW_REJECT = 0, GW_OVERFLOW_DROP_OLDEST } gw_overflow_t;
typedef enum { GW_ON_ERROR_PASS = 0, GW_ON_ERROR_DROP } gw_on_error_t;

/* Every key of the file, in its section, as config.c's table describes it
 * (docs/configuration.md). */
typedef struct {
    char *path; /* owned: the file this was loaded from */

    struct {
        char *address;          /* owned */
        int port;
        int threads;            /* HTTP worker threads, each with its own daemon and Lua state */
        size_t max_body_bytes;  /* request body limit, after gzip inflation too */
        int connection_timeout; /* seconds an idle connection may stay */
        /* Limits on clients and bodies (docs/hardening.md). */
        int max_connections;            /* open client connections at most */
        int max_connections_per_client; /* of one client address at most, 0 = no cap */
        int probe_connections;          /* beyond max_connections, for /ping, /health, /metrics */
        size_t max_header_bytes;        /* a connection's memory for request line and headers */
        size_t max_inflight_bytes;      /* memory requests in progress may hold (inflight.h) */
        uint32_t max_points;            /* points in one request body */
        size_t max_line_bytes;          /* one line-protocol line */
        uint32_t max_tags;              /* tags of one point */
        uint32_t max_fields;            /* fields of one point */
        size_t max_key_bytes;           /* series name, tag key, field key */
        size_t max_value_bytes;         /* tag value, string field value */
        gw_conf_node_t *tokens; /* owned: a sequence of tokens or tenants (tenant.c); NULL = no check */
        char *tls_cert;         /* owned: PEM file; "" = plain HTTP */
        char *tls_key;          /* owned: PEM file */
        double drain_seconds;   /* after SIGTERM: ingest goes on while /health answers 503 */
    } listen;

    struct {
        gw_storage_type_t storage_type;
        int version;        /* 1 or 2 */
        char *host;         /* owned */
        int port;
        int use_ssl;
        int tls_verify;     /* with use_ssl: check InfluxDB's certificate */
        char *tls_ca;       /* owned: CA bundle; "" = the system's */
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
        gw_overflow_t overflow; /* when the buffer is full */
        char *dead_letter;      /* owned: file for points InfluxDB rejected, "" = none */
        int passthrough;        /* the database (bucket) a write names is used (docs/outputs.md) */
        uint32_t max_databases; /* databases written to at once */
    } monitoring;

    struct {
        char *dir;             /* owned: "" = no spool */
        size_t max_bytes;      /* segments on disk at most */
        int fsync;             /* GW_SPOOL_FSYNC_* (spool.h) */
        double fsync_interval; /* seconds, with fsync: interval */
    } spool;

    struct {
        char *dir;              /* owned */
        int timeout_ms;         /* CPU budget of one script call */
        size_t memory_limit;    /* bytes per worker Lua state */
        gw_on_error_t on_error;
        uint32_t memo_entries;  /* memo cache entries per worker, 0 = memo off */
        int memo_verify;        /* check a sample of memo hits by running the script */
        gw_conf_node_t *series; /* owned: mapping series -> [files], NULL = {} */
        gw_conf_node_t *params; /* owned: mapping seen by scripts as params, NULL = {} */
    } scripts;

    struct {
        int level; /* GW_LOG_* (log.h) */
    } log;

    /* Top-level keys. */
    char *service;          /* owned: `service:`, what `$service` defaults stand for; "" = none */
    gw_conf_node_t *series; /* owned: `series:` declarations (schema.c, docs/series.md), NULL = {} */
    gw_conf_node_t *outputs; /* owned: `outputs:`, a mapping name -> the keys of monitoring: (outconf.c), NULL = none */
    gw_conf_node_t *routes;  /* owned: `routes:`, a sequence of {match, to} (route.c), NULL = none */

    char *warnings; /* owned: what loading found odd but allowed, one line each
                     * ("file:line:column: key: what"); NULL = none */
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

/* The value of key in cfg as --print-config's bare form writes it, appended
 * to out (for specs and tools that read a loaded config without knowing its
 * layout; out of memory, the text is cut short). 0, or -1 when key names no
 * key. */
int gw_config_value(const gw_config_t *cfg, const char *key, gw_buf_t *out);

/* The tree of a mapping- or list-valued key (scripts.series, scripts.params,
 * series, listen.tokens): borrowed from cfg, NULL when empty or when key
 * names no such key. */
const gw_conf_node_t *gw_config_tree(const gw_config_t *cfg, const char *key);

#endif
