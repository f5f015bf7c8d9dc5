/* config_table.c — the configuration's keys (config_int.h).
 *
 * One table, config_options[] below, drives everything: which keys exist,
 * their types and bounds, their defaults, where they land in gw_config_t, the
 * `luagw --help-config` text and (through it) docs/configuration.md. Adding a
 * setting is adding one row here and one field in its section of config.h
 * (specs read values through gw_config_value, not the layout). A setting
 * that names a choice is parsed once into a C enum. */

#include "config_int.h"

#include <stdint.h>
#include <string.h>

#include "log.h"
#include "spool.h"

static const char *const storage_types[] = {[GW_STORAGE_INFLUX] = "influx", NULL};
static const char *const log_levels[] = {[GW_LOG_DEBUG] = "debug", [GW_LOG_INFO] = "info",
                                         [GW_LOG_WARN] = "warn", [GW_LOG_ERROR] = "error", NULL};
static const char *const on_error_choices[] = {[GW_ON_ERROR_PASS] = "pass", [GW_ON_ERROR_DROP] = "drop", NULL};
static const char *const overflow_choices[] = {[GW_OVERFLOW_REJECT] = "reject",
                                               [GW_OVERFLOW_DROP_OLDEST] = "drop_oldest", NULL};
static const char *const fsync_choices[] = {[GW_SPOOL_FSYNC_BATCH] = "batch", [GW_SPOOL_FSYNC_INTERVAL] = "interval",
                                            [GW_SPOOL_FSYNC_NEVER] = "never", NULL};


#define STRING(k, f, minlen, d, h) {k, OPT_STRING, minlen, 0, NULL, d, OFF(f), h}
#define PATH(k, f, minlen, d, h) {k, OPT_PATH, minlen, 0, NULL, d, OFF(f), h}
#define INT(k, f, lo, hi, d, h) {k, OPT_INT, lo, hi, NULL, d, OFF(f), h}
#define UINT32(k, f, lo, hi, d, h) {k, OPT_UINT32, lo, hi, NULL, d, OFF(f), h}
#define SIZE(k, f, lo, hi, d, h) {k, OPT_SIZE, lo, hi, NULL, d, OFF(f), h}
#define SECONDS(k, f, lo, hi, d, h) {k, OPT_SECONDS, lo, hi, NULL, d, OFF(f), h}
#define BOOL(k, f, d, h) {k, OPT_BOOL, 0, 1, NULL, d, OFF(f), h}
#define ENUM(k, f, c, d, h) {k, OPT_ENUM, 0, 0, c, d, OFF(f), h}
#define TREE(k, t, f, h) {k, t, 0, 0, NULL, "{}", OFF(f), h}
#define LIST(k, f, h) {k, OPT_LIST, 0, 0, NULL, "[]", OFF(f), h}
#define ITEMS(k, f, h) {k, OPT_LIST, 1, 0, NULL, "[]", OFF(f), h}

const option_t config_options[] = {
    STRING("listen.address", listen.address, 1, "127.0.0.1",
           "address to bind: an IPv4/IPv6 literal or a host name"),
    INT("listen.port", listen.port, 1, 65535, "8080",
        "TCP port for the HTTP API"),
    INT("listen.threads", listen.threads, 1, 256, "2",
        "libmicrohttpd thread pool size; each thread has its own Lua state"),
    SIZE("listen.max_body_bytes", listen.max_body_bytes, KIB, GIB, "16MiB",
         "largest request body accepted, also after gzip inflation (413 beyond)"),
    INT("listen.connection_timeout", listen.connection_timeout, 1, 3600, "30",
        "seconds an idle client connection may stay open"),
    INT("listen.max_connections", listen.max_connections, 1, 1000000, "1024",
        "client connections open at once, over all clients; beyond, see probe_connections"),
    INT("listen.max_connections_per_client", listen.max_connections_per_client, 0, 1000000, "256",
        "connections of one client (IPv4 address, IPv6 /64) at once; more are closed on accept; 0 = no cap"),
    INT("listen.probe_connections", listen.probe_connections, 0, 1000, "16",
        "connections beyond max_connections that answer only /ping, /health, /metrics; more are closed"),
    SIZE("listen.max_header_bytes", listen.max_header_bytes, 8 * KIB, 64 * MIB, "32KiB",
         "memory of one connection for its request line and headers; larger headers are refused"),
    SIZE("listen.max_inflight_bytes", listen.max_inflight_bytes, MIB, 1024 * GIB, "128MiB",
         "memory all requests in progress may hold: bodies, inflated, being processed (503 beyond)"),
    UINT32("listen.max_points", listen.max_points, 1, 100000000, "1000000",
           "points in one request body (413 beyond)"),
    SIZE("listen.max_line_bytes", listen.max_line_bytes, KIB, GIB, "1MiB",
         "longest line of a line-protocol body (413 beyond)"),
    /* The defaults refuse no point InfluxDB stores: its 64 KiB series key
     * holds at most about 16,000 tags (docs/compatibility.md). */
    UINT32("listen.max_tags", listen.max_tags, 1, 65535, "65535",
           "tags of one point; a point with more is rejected (400)"),
    UINT32("listen.max_fields", listen.max_fields, 1, 65535, "65535",
           "fields of one point; a point with more is rejected (400)"),
    SIZE("listen.max_key_bytes", listen.max_key_bytes, 64, 64 * KIB, "1KiB",
         "longest series name, tag key or field key; a point with a longer one is rejected"),
    SIZE("listen.max_value_bytes", listen.max_value_bytes, 64, 64 * MIB, "64KiB",
         "longest tag value or string field value; a point with a longer one is rejected"),
    ITEMS("listen.tokens", listen.tokens,
          "ingest tokens: requests need Authorization: Bearer/Token T (or u/p, Basic); [] = no check; "
          "an item {name, token, tags, databases} names a tenant (docs/outputs.md)"),
    PATH("listen.tls_cert", listen.tls_cert, 0, "",
         "PEM certificate file: serve HTTPS; empty means plain HTTP"),
    PATH("listen.tls_key", listen.tls_key, 0, "",
         "PEM private key file for listen.tls_cert"),
    SECONDS("listen.drain_seconds", listen.drain_seconds, 0, 3600, "0",
            "after SIGTERM: seconds /health answers 503 while ingest goes on, before the flush"),

    ENUM("monitoring.storage_type", monitoring.storage_type, storage_types, "influx",
         "where points are written; only InfluxDB so far"),
    INT("monitoring.version", monitoring.version, 1, 2, "1",
        "InfluxDB API: 1 (database/rp, user/password) or 2 (organization/bucket, token)"),
    STRING("monitoring.host", monitoring.host, 1, "127.0.0.1",
           "InfluxDB host name or IP literal"),
    INT("monitoring.port", monitoring.port, 1, 65535, "8086",
        "InfluxDB port"),
    BOOL("monitoring.use_ssl", monitoring.use_ssl, "false",
         "talk HTTPS to InfluxDB"),
    BOOL("monitoring.tls_verify", monitoring.tls_verify, "true",
         "with use_ssl: verify InfluxDB's certificate and host name (false is logged)"),
    PATH("monitoring.tls_ca", monitoring.tls_ca, 0, "",
         "with use_ssl: CA bundle file to verify InfluxDB against; empty means the system's"),
    STRING("monitoring.database", monitoring.database, 0, "luna_monitoring",
           "v1: database to write to (must not be empty with version 1)"),
    STRING("monitoring.rp", monitoring.rp, 0, "",
           "v1: retention policy; empty means the database's default"),
    STRING("monitoring.user", monitoring.user, 0, "",
           "v1: user for basic auth; empty means no authentication"),
    STRING("monitoring.password", monitoring.password, 0, "",
           "v1: password for basic auth"),
    STRING("monitoring.organization", monitoring.organization, 0, "luna",
           "v2: organization (must not be empty with version 2)"),
    STRING("monitoring.bucket", monitoring.bucket, 0, "luna_monitoring",
           "v2: bucket (must not be empty with version 2)"),
    STRING("monitoring.token", monitoring.token, 0, "",
           "v2: API token; empty sends no Authorization header"),
    SECONDS("monitoring.flushing_period", monitoring.flushing_period, 0.001, 3600, "1",
            "seconds a partly filled batch may wait before it is sent"),
    UINT32("monitoring.batch_size", monitoring.batch_size, 1, 1000000, "5000",
           "points per write request to InfluxDB"),
    UINT32("monitoring.buffer_limit", monitoring.buffer_limit, 1, 1000000000, "1000000",
           "points held at most while InfluxDB is slow or down (503 beyond); >= batch_size"),
    SIZE("monitoring.buffer_limit_bytes", monitoring.buffer_limit_bytes, MIB, 1024 * GIB, "128MiB",
         "bytes of those points held at most (503 beyond); bounds memory whatever the points hold"),
    BOOL("monitoring.gzip", monitoring.gzip, "false",
         "gzip the batches sent to InfluxDB"),
    SECONDS("monitoring.timeout", monitoring.timeout, 0.1, 600, "10",
            "seconds one write request to InfluxDB may take"),
    SECONDS("monitoring.retry_max", monitoring.retry_max, 0.1, 3600, "30",
            "seconds: cap of the exponential backoff between retries"),
    SECONDS("monitoring.shutdown_timeout", monitoring.shutdown_timeout, 0, 3600, "10",
            "seconds to keep flushing after SIGTERM before giving up"),
    ENUM("monitoring.overflow", monitoring.overflow, overflow_choices, "reject",
         "buffer full: refuse the request (503) or drop the oldest points (counted)"),
    PATH("monitoring.dead_letter", monitoring.dead_letter, 0, "",
         "file to append the points InfluxDB rejected to; empty means none"),
    BOOL("monitoring.passthrough", monitoring.passthrough, "false",
         "write to the database (bucket) a client's write names (?db=, ?bucket=); false: always database"),
    UINT32("monitoring.max_databases", monitoring.max_databases, 1, 4096, "64",
           "databases written to at once, each with a buffer of its own (503 for more)"),

    PATH("spool.dir", spool.dir, 0, "",
         "directory of the durable spool; empty means no spool (memory only)"),
    SIZE("spool.max_bytes", spool.max_bytes, MIB, 1024 * GIB, "1GiB",
         "disk the spool may use; beyond it the API answers 503"),
    ENUM("spool.fsync", spool.fsync, fsync_choices, "batch",
         "when appends reach the disk: before each answer, every fsync_interval, or never"),
    SECONDS("spool.fsync_interval", spool.fsync_interval, 0.001, 60, "1",
            "seconds between syncs with fsync: interval"),

    PATH("scripts.dir", scripts.dir, 1, "scripts",
         "directory of per-series Lua scripts; a warning when set and missing"),
    INT("scripts.timeout_ms", scripts.timeout_ms, 1, 60000, "50",
        "CPU milliseconds one script call may use before it is stopped"),
    SIZE("scripts.memory_limit", scripts.memory_limit, MIB, 64 * GIB, "64MiB",
         "memory of each worker's Lua state; an allocation beyond it fails the call"),
    ENUM("scripts.on_error", scripts.on_error, on_error_choices, "pass",
         "a point whose script fails: pass it on as it came in, or drop it"),
    UINT32("scripts.memo_entries", scripts.memo_entries, 0, 4194304, "65536",
           "shapes each worker remembers for scripts that return memo(f) (docs/scripts.md); 0 turns memo off"),
    BOOL("scripts.memo_verify", scripts.memo_verify, "false",
         "run memo(f) scripts anyway on a sample of cache hits, and count and log disagreements"),
    TREE("scripts.series", OPT_CHAINS, scripts.series,
         "per series, the scripts to run in order, instead of <series>.lua"),
    TREE("scripts.params", OPT_PARAMS, scripts.params,
         "any YAML mapping; scripts see it as the table `params`"),

    ENUM("log.level", log.level, log_levels, "info",
         "least severe log level printed"),

    /* Top-level keys (no section). */
    STRING("service", service, 0, "",
           "this deployment's service name; series defaults written $service stand for it"),
    TREE("series", OPT_PARAMS, series,
         "per series: its tags and fields, types, required, defaults (docs/series.md)"),
    TREE("outputs", OPT_PARAMS, outputs,
         "name -> one InfluxDB, with the keys of monitoring: and passthrough, spool (docs/outputs.md); "
         "{} = the one output monitoring:"),
    ITEMS("routes", routes,
          "which points go to which outputs, first match wins (docs/outputs.md); [] = every point to every output"),
};

const size_t config_noptions = sizeof(config_options) / sizeof(config_options[0]);

_Static_assert(sizeof(config_options) / sizeof(config_options[0]) <= CONFIG_MAX_OPTIONS,
               "config_int.h: raise CONFIG_MAX_OPTIONS");

const option_t *config_find_option(const char *key)
{
    for (size_t i = 0; i < config_noptions; i++)
        if (strcmp(config_options[i].key, key) == 0)
            return &config_options[i];
    return NULL;
}

/* Is name (n bytes) a section, i.e. the prefix of some dotted key? */
int config_is_section(const char *name, size_t n)
{
    for (size_t i = 0; i < config_noptions; i++)
        if (strncmp(config_options[i].key, name, n) == 0 && config_options[i].key[n] == '.' && !memchr(name, '.', n))
            return 1;
    return 0;
}

/* Optimal string alignment distance: Levenshtein plus adjacent swaps, so
 * "prot" is one edit from "port". Strings longer than 63 bytes get a large
 * distance (no suggestion). */
size_t config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), d[64][64];

    if (la >= 64 || lb >= 64)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The known key nearest to key, if one is close enough to suggest (the
 * same measure as an unknown key in a file). */
const char *config_nearest_key(const char *key)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX, limit = strlen(key) / 3 > 2 ? strlen(key) / 3 : 2;

    for (size_t i = 0; i < config_noptions; i++) {
        size_t d = config_edit_distance(key, config_options[i].key);
        if (d < bestd)
            bestd = d, best = config_options[i].key;
    }
    return bestd <= limit ? best : NULL;
}
