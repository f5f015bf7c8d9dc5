/* config.c — the YAML configuration.
 *
 * One table, options[] below, drives everything: which keys exist, their
 * types and bounds, their defaults, where they land in gw_config_t, the
 * `luagw --help-config` text and (through it) docs/configuration.md. Adding a
 * setting is adding one row here and one field in config.h.
 *
 * A path (OPT_PATH: scripts.dir, spool.dir, monitoring.dead_letter, the TLS
 * files) written relative is taken beside the file that sets it, like
 * include:, so that `luagw -c /etc/luagw/luagw.yaml` reads the same files
 * from any working directory.
 *
 * The file is loaded with yaml_parser_load() into a yaml_document_t rather
 * than streamed as events, because the document keeps a start mark on every
 * node: any error, including the cross-checks that run after the whole file
 * is read, can point at file:line:column. */
#include "config.h"

#include "buf.h"
#include "outconf.h"
#include "route.h"
#include "schema.h"
#include "tenant.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

enum opt_type {
    OPT_STRING,  /* char *; min = minimum length in bytes */
    OPT_PATH,    /* char *, a file or directory; relative to the file that sets it (resolve_path) */
    OPT_INT,     /* int; min..max */
    OPT_UINT32,  /* uint32_t; min..max */
    OPT_SIZE,    /* size_t bytes; min..max; "16MiB" or 16777216 */
    OPT_SECONDS, /* double; min..max; fractions allowed */
    OPT_BOOL,    /* int 0/1; true/false, yes/no, on/off */
    OPT_ENUM,    /* char *; one of choices */
    OPT_PARAMS,  /* gw_conf_node_t *; a mapping of anything (default {}) */
    OPT_CHAINS,  /* gw_conf_node_t *; a mapping of name -> [file, ...] (default {}) */
    OPT_LIST,    /* gw_conf_node_t *; a sequence of non-empty strings (default []); with min 1, a
                  * sequence of anything, which the module that reads it checks */
};

typedef struct {
    const char *key;            /* dotted: section.name */
    enum opt_type type;
    double min, max;            /* inclusive; exact for every integer we use */
    const char *const *choices; /* OPT_ENUM: NULL-terminated */
    const char *def;            /* written as in YAML, parsed like a user value */
    size_t off;                 /* into gw_config_t */
    const char *help;
} option_t;

static const char *const storage_types[] = {"influx", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const on_error_choices[] = {"pass", "drop", NULL};
static const char *const overflow_choices[] = {"reject", "drop_oldest", NULL};
static const char *const fsync_choices[] = {"batch", "interval", "never", NULL};

#define KIB 1024.0
#define MIB (1024.0 * 1024)
#define GIB (1024.0 * 1024 * 1024)
#define OFF(field) offsetof(gw_config_t, field)

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

static const option_t options[] = {
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
    /* stored in gw_config_t.conns, last, for layout */
    INT("listen.max_connections_per_client", conns.per_client, 0, 1000000, "256",
        "connections of one client (IPv4 address, IPv6 /64) at once; more are closed on accept; 0 = no cap"),
    INT("listen.probe_connections", conns.probes, 0, 1000, "16",
        "connections beyond max_connections that answer only /ping, /health, /metrics; more are closed"),
    SIZE("listen.max_header_bytes", listen.max_header_bytes, 8 * KIB, 64 * MIB, "32KiB",
         "memory of one connection for its request line and headers; larger headers are refused"),
    /* stored in gw_config_t.max_inflight_bytes, last, for layout */
    SIZE("listen.max_inflight_bytes", max_inflight_bytes, MIB, 1024 * GIB, "128MiB",
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
    /* stored in gw_config_t.access, after the sections, for layout */
    ITEMS("listen.tokens", access.tokens,
          "ingest tokens: requests need Authorization: Bearer/Token T (or u/p, Basic); [] = no check; "
          "an item {name, token, tags, databases} names a tenant (docs/outputs.md)"),
    PATH("listen.tls_cert", access.tls_cert, 0, "",
         "PEM certificate file: serve HTTPS; empty means plain HTTP"),
    PATH("listen.tls_key", access.tls_key, 0, "",
         "PEM private key file for listen.tls_cert"),
    /* stored in gw_config_t.drain_seconds, last, for layout */
    SECONDS("listen.drain_seconds", drain_seconds, 0, 3600, "0",
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
    /* stored in gw_config_t.access */
    BOOL("monitoring.tls_verify", access.tls_verify, "true",
         "with use_ssl: verify InfluxDB's certificate and host name (false is logged)"),
    PATH("monitoring.tls_ca", access.tls_ca, 0, "",
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
    /* stored in gw_config_t.passthrough and max_databases, last, for layout */
    BOOL("monitoring.passthrough", passthrough, "false",
         "write to the database (bucket) a client's write names (?db=, ?bucket=); false: always database"),
    UINT32("monitoring.max_databases", max_databases, 1, 4096, "64",
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

#define NOPT (sizeof(options) / sizeof(options[0]))

/* ------------------------------------------------------------------------ */
/* Loader state and error reporting                                         */

typedef struct {
    const char *path;      /* borrowed: as the caller named it, for messages */
    yaml_document_t *doc;  /* borrowed */
    gw_config_t *cfg;      /* borrowed */
    char *err;             /* borrowed: the caller's buffer */
    size_t errlen;
    /* Where each option was set, so the cross-checks can point at it. */
    int seen[NOPT];
    yaml_mark_t mark[NOPT];
    gw_buf_t val;          /* owned: the current value after ${} expansion */
    gw_buf_t msg;          /* owned: scratch for one error message */
    gw_buf_t warning;      /* owned: the note on a missing scripts.dir, "" = none */
    int depth;             /* include: nesting */
} loader_t;

/* Append n bytes of s on one line, C-style: backslash, newline, tab and
 * other control bytes escaped, and the quote character when there is one. */
static void put_escaped(gw_buf_t *b, const char *s, size_t n, char quote)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || (quote && c == (unsigned char)quote))
            gw_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            gw_buf_printf(b, "\\n");
        else if (c == '\t')
            gw_buf_printf(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            gw_buf_printf(b, "\\x%02x", c);
        else
            gw_buf_putc(b, (char)c);
    }
}

/* Append s as a quoted, one-line, bounded string: the error is one line and
 * a value may be a multi-line block scalar or a long token. */
static void put_quoted(gw_buf_t *b, const char *s, size_t n)
{
    gw_buf_putc(b, '"');
    put_escaped(b, s, n > 60 ? 60 : n, '"');
    gw_buf_putc(b, '"');
    if (n > 60)
        gw_buf_printf(b, "...");
}

/* Append a key for the "key:" part of a message. User-written keys may hold
 * anything; quote those that would blur where the key ends. */
static void put_key(gw_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == ':' || s[i] == '"' || s[i] == '\\') {
            put_quoted(b, s, n);
            return;
        }
    gw_buf_append(b, s, n);
}

/* Append "file:line:column: key: ". mark is libyaml's (0-based); key may be
 * a user-written, unterminated slice. */
static void put_where(gw_buf_t *b, const loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen)
{
    gw_buf_printf(b, "%s:%zu:%zu: ", ld->path, mark.line + 1, mark.column + 1);
    put_key(b, key, keylen);
    gw_buf_printf(b, ": ");
}

/* Write "file:line:column: key: message" into the caller's buffer. */
static void report(loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen, const char *fmt, ...)
{
    gw_buf_t b = {0};
    va_list ap;
    char *m = NULL;

    put_where(&b, ld, mark, key, keylen);
    va_start(ap, fmt);
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    va_end(ap);
    gw_buf_printf(&b, "%s", m ? m : "out of memory");
    free(m);
    if (ld->errlen)
        snprintf(ld->err, ld->errlen, "%s", b.data ? b.data : "out of memory");
    gw_buf_free(&b);
}

/* Errors that have no line: the file cannot be opened or read. */
static void report_file(loader_t *ld, const char *what, int errnum)
{
    if (ld->errlen)
        snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->path, what, strerror(errnum));
}

/* ------------------------------------------------------------------------ */
/* Value parsing                                                             */

typedef union {
    char *s; /* OPT_STRING, OPT_ENUM: owned until stored */
    gw_conf_node_t *tree; /* OPT_PARAMS, OPT_CHAINS: owned until stored */
    long long i;
    unsigned long long u;
    double d;
} value_t;

static void put_number(gw_buf_t *b, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        gw_buf_printf(b, "%.0f", v);
    else
        gw_buf_printf(b, "%g", v);
}

static void put_size(gw_buf_t *b, double v)
{
    if (v >= GIB && fmod(v, GIB) == 0)
        gw_buf_printf(b, "%.0fGiB", v / GIB);
    else if (v >= MIB && fmod(v, MIB) == 0)
        gw_buf_printf(b, "%.0fMiB", v / MIB);
    else if (v >= KIB && fmod(v, KIB) == 0)
        gw_buf_printf(b, "%.0fKiB", v / KIB);
    else
        put_number(b, v);
}

/* What a valid value of o looks like, as the start of an error message:
 * "must be an integer between 1 and 65535". */
static void put_expectation(gw_buf_t *b, const option_t *o)
{
    switch (o->type) {
    case OPT_STRING:
    case OPT_PATH:
        gw_buf_printf(b, o->min > 0 ? "must be a non-empty string" : "must be a string");
        break;
    case OPT_INT:
    case OPT_UINT32:
        gw_buf_printf(b, "must be an integer between ");
        put_number(b, o->min);
        gw_buf_printf(b, " and ");
        put_number(b, o->max);
        break;
    case OPT_SIZE:
        gw_buf_printf(b, "must be a size between ");
        put_size(b, o->min);
        gw_buf_printf(b, " and ");
        put_size(b, o->max);
        gw_buf_printf(b, " (bytes, or a whole number with KiB, MiB, GiB, TiB or kB, MB, GB, TB)");
        break;
    case OPT_SECONDS:
        gw_buf_printf(b, "must be a number of seconds between ");
        put_number(b, o->min);
        gw_buf_printf(b, " and ");
        put_number(b, o->max);
        break;
    case OPT_BOOL:
        gw_buf_printf(b, "must be true or false (or yes/no, on/off)");
        break;
    case OPT_ENUM:
        gw_buf_printf(b, "must be one of ");
        for (const char *const *c = o->choices; *c; c++)
            gw_buf_printf(b, "%s%s", c == o->choices ? "" : ", ", *c);
        break;
    case OPT_PARAMS:
        gw_buf_printf(b, "must be a mapping");
        break;
    case OPT_CHAINS:
        gw_buf_printf(b, "must be a mapping of series to a list of script files");
        break;
    case OPT_LIST:
        gw_buf_printf(b, o->min > 0 ? "must be a list" : "must be a list of non-empty strings");
        break;
    }
}

/* The type column of --help-config: "int 1..65535". */
static void put_type(gw_buf_t *b, const option_t *o)
{
    switch (o->type) {
    case OPT_STRING:
        gw_buf_printf(b, o->min > 0 ? "string, non-empty" : "string");
        break;
    case OPT_PATH:
        gw_buf_printf(b, o->min > 0 ? "path, non-empty" : "path");
        break;
    case OPT_INT:
    case OPT_UINT32:
    case OPT_SECONDS:
        gw_buf_printf(b, "%s ", o->type == OPT_INT ? "int" : o->type == OPT_UINT32 ? "uint32" : "seconds");
        put_number(b, o->min);
        gw_buf_printf(b, "..");
        put_number(b, o->max);
        break;
    case OPT_SIZE:
        gw_buf_printf(b, "size ");
        put_size(b, o->min);
        gw_buf_printf(b, "..");
        put_size(b, o->max);
        break;
    case OPT_BOOL:
        gw_buf_printf(b, "bool");
        break;
    case OPT_ENUM:
        gw_buf_printf(b, "enum ");
        for (const char *const *c = o->choices; *c; c++)
            gw_buf_printf(b, "%s%s", c == o->choices ? "" : "|", *c);
        break;
    case OPT_PARAMS:
        gw_buf_printf(b, "mapping");
        break;
    case OPT_CHAINS:
        gw_buf_printf(b, "mapping series: [files]");
        break;
    case OPT_LIST:
        gw_buf_printf(b, o->min > 0 ? "list" : "list of strings");
        break;
    }
}

/* Decimal integer, nothing else: no spaces, no 0x, no underscores, so that
 * "80a" or "8_080" is an error rather than a surprise. */
static int parse_integer(const char *s, long long *out)
{
    const char *p = s;
    char *end;

    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* A decimal number with optional fraction and exponent, checked by hand
 * because strtod alone would also take "inf", "nan", hex floats and leading
 * spaces. */
static int parse_decimal(const char *s, double *out)
{
    const char *p = s;
    int digits = 0;
    char *end;

    if (*p == '+' || *p == '-')
        p++;
    for (; isdigit((unsigned char)*p); p++)
        digits++;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits++;
    if (!digits)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    return errno || *end || !isfinite(*out) ? -1 : 0;
}

/* Bytes: a whole number, optionally followed by a unit: KiB, MiB, GiB and
 * TiB (k, K, M, G and T are the same) are powers of 1024; kB, MB, GB and TB
 * (SI, as disks and networks count) are powers of 1000. "KB", which means
 * either, is refused rather than guessed. */
static int parse_size(const char *s, unsigned long long *out)
{
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {
        {"", 1},           {"B", 1},
        {"k", 1ULL << 10}, {"K", 1ULL << 10}, {"KiB", 1ULL << 10}, {"kB", 1000ULL},
        {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"MB", 1000000ULL},
        {"G", 1ULL << 30}, {"GiB", 1ULL << 30}, {"GB", 1000000000ULL},
        {"T", 1ULL << 40}, {"TiB", 1ULL << 40}, {"TB", 1000000000000ULL},
    };
    unsigned long long n;
    char *end;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > ULLONG_MAX / units[i].mult)
                return -1;
            *out = n * units[i].mult;
            return 0;
        }
    return -1;
}

static int parse_bool(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};

    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Parse the NUL-terminated text s as a value of o. 0 ok (a string result in
 * out->s is owned by the caller); -1 when s is not a valid value, -2 when out
 * of memory. */
static int parse_value(const option_t *o, const char *s, value_t *out)
{
    switch (o->type) {
    case OPT_STRING:
    case OPT_PATH:
        if (strlen(s) < (size_t)o->min)
            return -1;
        out->s = strdup(s);
        return out->s ? 0 : -2;
    case OPT_INT:
    case OPT_UINT32:
        if (parse_integer(s, &out->i) || (double)out->i < o->min || (double)out->i > o->max)
            return -1;
        return 0;
    case OPT_SIZE:
        if (parse_size(s, &out->u) || (double)out->u < o->min || (double)out->u > o->max)
            return -1;
        return 0;
    case OPT_SECONDS:
        if (parse_decimal(s, &out->d) || out->d < o->min || out->d > o->max)
            return -1;
        return 0;
    case OPT_BOOL:
        out->i = parse_bool(s);
        return out->i < 0 ? -1 : 0;
    case OPT_ENUM:
        for (const char *const *c = o->choices; *c; c++)
            if (strcmp(s, *c) == 0) {
                out->s = strdup(s);
                return out->s ? 0 : -2;
            }
        return -1;
    case OPT_PARAMS:
    case OPT_CHAINS:
    case OPT_LIST:
        /* Only the default comes here as text; values are loaded as trees. */
        out->tree = NULL;
        return strcmp(s, o->type == OPT_LIST ? "[]" : "{}") == 0 ? 0 : -1;
    }
    return -1;
}

/* Move a parsed value into its field of cfg; takes ownership of strings. */
static void store_value(gw_config_t *cfg, const option_t *o, value_t v)
{
    char *field = (char *)cfg + o->off;

    switch (o->type) {
    case OPT_STRING:
    case OPT_PATH:
    case OPT_ENUM:
        free(*(char **)field);
        *(char **)field = v.s;
        break;
    case OPT_INT:
    case OPT_BOOL:
        *(int *)field = (int)v.i;
        break;
    case OPT_UINT32:
        *(uint32_t *)field = (uint32_t)v.i;
        break;
    case OPT_SIZE:
        *(size_t *)field = (size_t)v.u;
        break;
    case OPT_SECONDS:
        *(double *)field = v.d;
        break;
    case OPT_PARAMS:
    case OPT_CHAINS:
    case OPT_LIST:
        gw_conf_node_free(*(gw_conf_node_t **)field);
        *(gw_conf_node_t **)field = v.tree;
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */

/* name as seen from the file `from`: a relative name is taken beside it (in
 * its directory), an absolute one as it is. A new string, or NULL when out
 * of memory. */
static char *beside(const char *from, const char *name)
{
    const char *slash = strrchr(from, '/');
    char *s;

    if (*name == '/' || !slash)
        return strdup(name);
    if (asprintf(&s, "%.*s%s", (int)(slash - from + 1), from, name) < 0)
        return NULL;
    return s;
}

/* A path option written relative names something beside the file that sets
 * it, the way include: does, so a config means the same from any working
 * directory (defaults: beside the main file). "" (none) stays "". Replaces
 * v->s; 0, or -2 when out of memory. */
static int resolve_path(const loader_t *ld, const option_t *o, value_t *v)
{
    char *resolved;

    if (o->type != OPT_PATH || !*v->s)
        return 0;
    if (!(resolved = beside(ld->path, v->s)))
        return -2;
    free(v->s);
    v->s = resolved;
    return 0;
}

/* A scripts.dir that was set but does not exist is most likely a typo or a
 * path written against the wrong directory. Loading goes on (no scripts is a
 * valid setup) with a note for the log and --check-config; setting the key
 * again (in a later file) replaces the note. */
static void note_missing_dir(loader_t *ld, const option_t *o, yaml_mark_t mark, const char *dir)
{
    struct stat st;

    if (o->off != OFF(scripts.dir))
        return;
    ld->warning.len = 0;
    if (stat(dir, &st) == 0 || errno != ENOENT)
        return;
    put_where(&ld->warning, ld, mark, o->key, strlen(o->key));
    gw_buf_printf(&ld->warning, "directory \"%s\" does not exist: no script will run", dir);
}

/* ------------------------------------------------------------------------ */
/* ${VAR} expansion                                                          */

/* Append the value of the variable name (n bytes) to ld->val, or def when
 * it is unset or empty (shell ":-" semantics); def NULL means required.
 * Returns 0, or -1 with the reason in ld->msg. */
static int expand_var(loader_t *ld, const char *name, size_t n, const char *def, size_t deflen)
{
    char vname[256];
    const char *v;

    if (n >= sizeof(vname)) {
        gw_buf_printf(&ld->msg, "environment variable name too long");
        return -1;
    }
    memcpy(vname, name, n);
    vname[n] = '\0';
    v = getenv(vname);
    if (def && (!v || !*v))
        return gw_buf_append(&ld->val, def, deflen);
    if (!v) {
        gw_buf_printf(&ld->msg, "environment variable %s is not set (write ${%s:-default} for a fallback)",
                      vname, vname);
        return -1;
    }
    return gw_buf_append(&ld->val, v, strlen(v));
}

/* Expand ${NAME}, ${NAME:-default} and $$ in the scalar s (n bytes) into
 * ld->val, NUL-terminated. A lone $ stays literal so that passwords need no
 * escaping unless they contain "${" or "$$". The default is literal text up
 * to the first '}' (no nesting). Returns 0, or -1 with the reason in ld->msg. */
static int expand_env(loader_t *ld, const char *s, size_t n)
{
    size_t i = 0;

    ld->val.len = 0;
    while (i < n) {
        const char *name = s + i + 2, *close, *def = NULL;
        size_t len = 0, deflen = 0;

        if (s[i] != '$' || i + 1 == n || (s[i + 1] != '$' && s[i + 1] != '{')) {
            if (gw_buf_putc(&ld->val, s[i++]))
                goto nomem;
            continue;
        }
        if (s[i + 1] == '$') {
            if (gw_buf_putc(&ld->val, '$'))
                goto nomem;
            i += 2;
            continue;
        }
        close = memchr(name, '}', n - (i + 2));
        if (!close) {
            /* The value is not echoed: it may well be a password. */
            gw_buf_printf(&ld->msg, "unterminated ${ (write $$ for a literal $)");
            return -1;
        }
        while (name + len < close && (isalpha((unsigned char)name[len]) || name[len] == '_' ||
                                      (len && isdigit((unsigned char)name[len]))))
            len++;
        if (close - (name + len) >= 2 && name[len] == ':' && name[len + 1] == '-') {
            def = name + len + 2;
            deflen = (size_t)(close - def);
        }
        if (!len || (!def && name + len != close)) {
            gw_buf_printf(&ld->msg, "bad variable reference ");
            put_quoted(&ld->msg, s + i, (size_t)(close - (s + i)) + 1);
            gw_buf_printf(&ld->msg, ": expected ${NAME} or ${NAME:-default}");
            return -1;
        }
        if (expand_var(ld, name, len, def, deflen)) {
            if (ld->msg.len)
                return -1;
            goto nomem;
        }
        i = (size_t)(close - s) + 1;
    }
    if (gw_buf_putc(&ld->val, '\0'))
        goto nomem;
    return 0;

nomem:
    gw_buf_printf(&ld->msg, "out of memory");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Walking the document                                                      */

static int is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static const char *kind_name(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    return is_null(n) ? "an empty value" : "a scalar";
}

static const option_t *find_option(const char *key)
{
    for (size_t i = 0; i < NOPT; i++)
        if (strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

/* Is name (n bytes) a section, i.e. the prefix of some dotted key? */
static int is_section(const char *name, size_t n)
{
    for (size_t i = 0; i < NOPT; i++)
        if (strncmp(options[i].key, name, n) == 0 && options[i].key[n] == '.' && !memchr(name, '.', n))
            return 1;
    return 0;
}

/* Optimal string alignment distance: Levenshtein plus adjacent swaps, so
 * "prot" is one edit from "port". Strings longer than 63 bytes get a large
 * distance (no suggestion). */
static size_t edit_distance(const char *a, const char *b)
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

/* Report an unknown key with the nearest known one. key is the full dotted
 * path as written; top says whether it is a section name. A suggestion must
 * be within a third of the name's length (at least 2 edits) so that short
 * junk like "zzz" is not "corrected" to "rp". */
static void report_unknown(loader_t *ld, yaml_mark_t mark, const char *key, int top)
{
    const char *dot = strrchr(key, '.'), *leaf = top ? key : dot + 1;
    const char *best = NULL;
    size_t bestd = SIZE_MAX, bestlen = 0, seclen = top ? strlen(key) : (size_t)(dot - key);
    size_t limit = strlen(leaf) / 3 > 2 ? strlen(leaf) / 3 : 2;
    char cand[64];

    if (top && dot && find_option(key)) {
        report(ld, mark, key, strlen(key), "unknown key (write it nested: \"%.*s:\" then \"%s:\" indented under it)",
               (int)(dot - key), key, dot + 1);
        return;
    }
    for (size_t i = 0; i < NOPT; i++) {
        const char *k = options[i].key, *kdot = strchr(k, '.');
        size_t d;
        if (!kdot)
            kdot = k + strlen(k); /* a top-level key: its own "section" */
        if (!top && !*kdot)
            continue;
        if (top) {
            snprintf(cand, sizeof(cand), "%.*s", (int)(kdot - k), k);
            d = edit_distance(key, cand);
        } else if ((size_t)(kdot - k) == seclen && strncmp(k, key, seclen) == 0) {
            d = edit_distance(leaf, kdot + 1);
        } else {
            /* The right name in the wrong section. */
            d = strcmp(leaf, kdot + 1) == 0 ? 1 : SIZE_MAX;
        }
        if (d < bestd) {
            bestd = d;
            best = k;
            bestlen = top ? (size_t)(kdot - k) : strlen(k);
        }
    }
    if (best && bestd <= limit && bestd < strlen(leaf)) {
        report(ld, mark, key, strlen(key), "unknown key (did you mean %.*s?)", (int)bestlen, best);
        return;
    }
    /* Nothing close: list what is allowed here. */
    ld->msg.len = 0;
    for (size_t i = 0; i < NOPT; i++) {
        const char *k = options[i].key, *kdot = strchr(k, '.');
        if (!kdot) {
            if (top)
                gw_buf_printf(&ld->msg, "%s%s", ld->msg.len ? ", " : "", k);
            continue;
        }
        if (top) {
            if (i && strncmp(options[i - 1].key, k, (size_t)(kdot - k) + 1) == 0)
                continue;
            gw_buf_printf(&ld->msg, "%s%.*s", ld->msg.len ? ", " : "", (int)(kdot - k), k);
        } else if ((size_t)(kdot - k) == seclen && strncmp(k, key, seclen) == 0) {
            gw_buf_printf(&ld->msg, "%s%s", ld->msg.len ? ", " : "", kdot + 1);
        }
    }
    if (top)
        gw_buf_printf(&ld->msg, ", include"); /* not an option: read by load_root */
    report(ld, mark, key, strlen(key), "unknown key (expected one of: %.*s)", (int)ld->msg.len, ld->msg.data);
}

/* Check that every key of mapping m is a scalar and appears once. parent is
 * the dotted path of m, for messages ("yaml" at the top). 0 or -1. */
static int check_keys(loader_t *ld, yaml_node_t *m, const char *parent)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        if (k->type != YAML_SCALAR_NODE) {
            report(ld, k->start_mark, parent, strlen(parent), "keys must be scalars, got %s", kind_name(k));
            return -1;
        }
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(ld->doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && k2->data.scalar.length == k->data.scalar.length &&
                memcmp(k2->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0) {
                gw_buf_t key = {0};
                if (strcmp(parent, "yaml"))
                    gw_buf_printf(&key, "%s.", parent);
                gw_buf_append(&key, k->data.scalar.value, k->data.scalar.length);
                report(ld, k->start_mark, key.data, key.len, "duplicate key (first at line %zu, column %zu)",
                       k2->start_mark.line + 1, k2->start_mark.column + 1);
                gw_buf_free(&key);
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tree-valued options (scripts.params, scripts.series)                      */

void gw_conf_node_free(gw_conf_node_t *n)
{
    while (n) {
        gw_conf_node_t *next = n->next;
        gw_conf_node_free(n->child);
        free(n->key);
        free(n->value);
        free(n);
        n = next;
    }
}

static yaml_mark_t node_mark(const gw_conf_node_t *n)
{
    return (yaml_mark_t){.line = n->line - 1, .column = n->column - 1};
}

/* Copy the YAML node v into a new tree at *out (key: its key in the parent
 * mapping, or NULL). Scalars are ${}-expanded. 0 or -1 (reported; *out may
 * hold a partial tree for the caller to free). */
static int build_tree(loader_t *ld, const option_t *o, yaml_node_t *v, const yaml_node_t *key,
                      int depth, gw_conf_node_t **out)
{
    gw_conf_node_t *n = calloc(1, sizeof(*n)), **tail;

    *out = n;
    if (!n || (key && !(n->key = strndup((const char *)key->data.scalar.value, key->data.scalar.length)))) {
        report(ld, v->start_mark, o->key, strlen(o->key), "out of memory");
        return -1;
    }
    n->line = v->start_mark.line + 1;
    n->column = v->start_mark.column + 1;
    if (depth > 32) {
        report(ld, v->start_mark, o->key, strlen(o->key), "nested more than 32 levels deep");
        return -1;
    }
    switch (v->type) {
    case YAML_SCALAR_NODE:
        n->kind = GW_CONF_SCALAR;
        n->plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        ld->msg.len = 0;
        if (expand_env(ld, (const char *)v->data.scalar.value, v->data.scalar.length)) {
            report(ld, v->start_mark, o->key, strlen(o->key), "%.*s", (int)ld->msg.len, ld->msg.data);
            return -1;
        }
        if (strlen(ld->val.data) != ld->val.len - 1) {
            report(ld, v->start_mark, o->key, strlen(o->key), "must not contain a NUL byte");
            return -1;
        }
        if (!(n->value = strdup(ld->val.data))) {
            report(ld, v->start_mark, o->key, strlen(o->key), "out of memory");
            return -1;
        }
        return 0;
    case YAML_SEQUENCE_NODE:
        n->kind = GW_CONF_SEQ;
        tail = &n->child;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            if (build_tree(ld, o, yaml_document_get_node(ld->doc, *it), NULL, depth + 1, tail))
                return -1;
            tail = &(*tail)->next;
        }
        return 0;
    case YAML_MAPPING_NODE:
        n->kind = GW_CONF_MAP;
        if (check_keys(ld, v, o->key))
            return -1;
        tail = &n->child;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            if (build_tree(ld, o, yaml_document_get_node(ld->doc, p->value),
                           yaml_document_get_node(ld->doc, p->key), depth + 1, tail))
                return -1;
            tail = &(*tail)->next;
        }
        return 0;
    default:
        report(ld, v->start_mark, o->key, strlen(o->key), "unsupported YAML node");
        return -1;
    }
}

/* scripts.series: each series names one file or a non-empty list of them. */
static int check_chains(loader_t *ld, const option_t *o, const gw_conf_node_t *root)
{
    gw_buf_t key = {0};
    int rc = 0;

    for (const gw_conf_node_t *c = root->child; c && !rc; c = c->next) {
        int ok = *c->key != '\0';
        if (c->kind == GW_CONF_SCALAR)
            ok = ok && *c->value;
        else if (c->kind == GW_CONF_SEQ) {
            ok = ok && c->child;
            for (const gw_conf_node_t *f = c->child; f; f = f->next)
                ok = ok && f->kind == GW_CONF_SCALAR && *f->value;
        } else
            ok = 0;
        if (!ok) {
            key.len = 0;
            gw_buf_printf(&key, "%s.%s", o->key, c->key);
            report(ld, node_mark(c), key.data ? key.data : o->key, key.data ? key.len : strlen(o->key),
                   *c->key ? "must be a script file or a non-empty list of script files"
                           : "a series name must not be empty");
            rc = -1;
        }
    }
    gw_buf_free(&key);
    return rc;
}

/* A list: every item a non-empty scalar. */
static int check_list(loader_t *ld, const option_t *o, const gw_conf_node_t *root)
{
    for (const gw_conf_node_t *c = root->child; c; c = c->next)
        if (c->kind != GW_CONF_SCALAR || !*c->value) {
            report(ld, node_mark(c), o->key, strlen(o->key), "must be a list of non-empty strings, got %s",
                   c->kind != GW_CONF_SCALAR ? "a nested item" : "an empty string");
            return -1;
        }
    return 0;
}

/* series: the declarations must make sense (schema.c says what is wrong). */
static int check_series(loader_t *ld, const gw_conf_node_t *root)
{
    const gw_conf_node_t *bad = root;
    char msg[512];
    const char *colon;

    if (!gw_schema_check(root, &bad, msg, sizeof(msg)))
        return 0;
    colon = strstr(msg, ": ");
    if (!colon)
        colon = msg + strlen(msg);
    report(ld, node_mark(bad), msg, (size_t)(colon - msg), "%s", *colon ? colon + 2 : "invalid");
    return -1;
}

static int load_tree_option(loader_t *ld, const option_t *o, yaml_node_t *v)
{
    value_t val = {0};

    if (is_null(v) || (v->type == YAML_MAPPING_NODE && v->data.mapping.pairs.start == v->data.mapping.pairs.top) ||
        (o->type == OPT_LIST && v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.start == v->data.sequence.items.top))
        goto store; /* "params:" with nothing under it, {} or []: the default */
    if (v->type != (o->type == OPT_LIST ? YAML_SEQUENCE_NODE : YAML_MAPPING_NODE)) {
        ld->msg.len = 0;
        put_expectation(&ld->msg, o);
        report(ld, v->start_mark, o->key, strlen(o->key), "%.*s, got %s", (int)ld->msg.len, ld->msg.data,
               kind_name(v));
        return -1;
    }
    if (build_tree(ld, o, v, NULL, 0, &val.tree) || (o->type == OPT_CHAINS && check_chains(ld, o, val.tree)) ||
        (o->off == OFF(series) && check_series(ld, val.tree)) || (o->type == OPT_LIST && o->min == 0 && check_list(ld, o, val.tree))) {
        gw_conf_node_free(val.tree);
        return -1;
    }
store:
    store_value(ld->cfg, o, val);
    ld->seen[o - options] = 1;
    ld->mark[o - options] = v->start_mark;
    return 0;
}

/* Load the scalar node v into option o. 0 or -1 (reported). */
static int load_option(loader_t *ld, const option_t *o, yaml_node_t *v)
{
    const char *raw;
    size_t rawlen;
    value_t val = {0};
    int rc;

    if (o->type == OPT_PARAMS || o->type == OPT_CHAINS || o->type == OPT_LIST)
        return load_tree_option(ld, o, v);
    ld->msg.len = 0;
    if (v->type != YAML_SCALAR_NODE || (is_null(v) && o->type != OPT_STRING && o->type != OPT_PATH)) {
        put_expectation(&ld->msg, o);
        gw_buf_printf(&ld->msg, ", got %s", kind_name(v));
        goto fail;
    }
    raw = (const char *)v->data.scalar.value;
    /* "rp:" and "rp: ~" mean the empty string. */
    rawlen = is_null(v) ? 0 : v->data.scalar.length;
    if (expand_env(ld, raw, rawlen))
        goto fail;
    if (strlen(ld->val.data) != ld->val.len - 1) {
        gw_buf_printf(&ld->msg, "must not contain a NUL byte");
        goto fail;
    }
    rc = parse_value(o, ld->val.data, &val);
    if (!rc)
        rc = resolve_path(ld, o, &val);
    if (rc == -2) {
        if (o->type == OPT_PATH)
            free(val.s); /* resolve_path failed, not parse_value */
        gw_buf_printf(&ld->msg, "out of memory");
        goto fail;
    }
    if (rc) {
        put_expectation(&ld->msg, o);
        gw_buf_printf(&ld->msg, ", got ");
        put_quoted(&ld->msg, ld->val.data, ld->val.len - 1);
        if (ld->val.len - 1 != rawlen || memcmp(ld->val.data, raw, rawlen)) {
            gw_buf_printf(&ld->msg, " (from ");
            put_quoted(&ld->msg, raw, rawlen);
            gw_buf_printf(&ld->msg, ")");
        }
        goto fail;
    }
    store_value(ld->cfg, o, val);
    ld->seen[o - options] = 1;
    ld->mark[o - options] = v->start_mark;
    note_missing_dir(ld, o, v->start_mark, val.s);
    return 0;

fail:
    /* ld->msg is a byte count, not a C string: put_quoted adds no NUL. */
    report(ld, v->start_mark, o->key, strlen(o->key), "%.*s", (int)ld->msg.len, ld->msg.data);
    return -1;
}

/* Load the mapping of one section (name is NUL-terminated). 0 or -1. */
static int load_section(loader_t *ld, const char *name, yaml_node_t *sec)
{
    gw_buf_t key = {0};

    if (is_null(sec))
        return 0; /* "log:" with every key commented out: all defaults */
    if (sec->type != YAML_MAPPING_NODE) {
        report(ld, sec->start_mark, name, strlen(name), "must be a mapping of keys, got %s", kind_name(sec));
        return -1;
    }
    if (check_keys(ld, sec, name))
        return -1;
    for (yaml_node_pair_t *p = sec->data.mapping.pairs.start; p < sec->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        const option_t *o;

        key.len = 0;
        gw_buf_printf(&key, "%s.", name);
        gw_buf_append(&key, k->data.scalar.value, k->data.scalar.length);
        if (gw_buf_putc(&key, '\0')) {
            report(ld, k->start_mark, name, strlen(name), "out of memory");
            goto fail;
        }
        if (strlen(key.data) != key.len - 1) {
            /* A NUL inside the key ("\0" escape): cannot be one of ours. */
            report(ld, k->start_mark, key.data, key.len - 1, "unknown key");
            goto fail;
        }
        o = find_option(key.data);
        if (!o) {
            report_unknown(ld, k->start_mark, key.data, 0);
            goto fail;
        }
        if (load_option(ld, o, v))
            goto fail;
    }
    gw_buf_free(&key);
    return 0;

fail:
    gw_buf_free(&key);
    return -1;
}

static int read_file(loader_t *ld, gw_buf_t *text);
static void report_yaml(loader_t *ld, yaml_parser_t *parser, const gw_buf_t *text);
static int load_root(loader_t *ld, yaml_node_t *root);

/* Load one included file (name relative to the including file's directory)
 * into the same config: its top level is read like the main file's, so a key
 * it sets is set; a key set again later wins. 0 or -1 (reported). */
static int load_one_include(loader_t *ld, yaml_node_t *v, const char *name)
{
    const char *saved_path = ld->path;
    yaml_document_t *saved_doc = ld->doc, doc;
    yaml_parser_t parser;
    gw_buf_t text = {0};
    char *path;
    yaml_node_t *root;
    int rc = -1, have_parser = 0, have_doc = 0;

    if (!*name) {
        report(ld, v->start_mark, "include", 7, "must name a file");
        return -1;
    }
    if (ld->depth >= 8) {
        report(ld, v->start_mark, "include", 7, "nested more than 8 levels deep (a loop?)");
        return -1;
    }
    if (!(path = beside(ld->path, name))) {
        report(ld, v->start_mark, "include", 7, "out of memory");
        return -1;
    }
    ld->path = path;
    ld->depth++;
    if (read_file(ld, &text))
        goto out;
    if (!yaml_parser_initialize(&parser)) {
        report_file(ld, "cannot load", ENOMEM);
        goto out;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text.data ? text.data : ""), text.len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml(ld, &parser, &text);
        goto out;
    }
    have_doc = 1;
    ld->doc = &doc;
    root = yaml_document_get_root_node(&doc);
    rc = root ? load_root(ld, root) : 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    ld->depth--;
    ld->doc = saved_doc;
    ld->path = saved_path;
    gw_buf_free(&text);
    free(path);
    return rc;
}

/* include: a file name or a list of them. 0 or -1. */
static int load_include(loader_t *ld, yaml_node_t *v)
{
    if (v->type == YAML_SCALAR_NODE && !is_null(v))
        return load_one_include(ld, v, (const char *)v->data.scalar.value);
    if (v->type != YAML_SEQUENCE_NODE) {
        report(ld, v->start_mark, "include", 7, "must be a file name or a list of file names, got %s", kind_name(v));
        return -1;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *f = yaml_document_get_node(ld->doc, *it);
        if (f->type != YAML_SCALAR_NODE || is_null(f)) {
            report(ld, f->start_mark, "include", 7, "must be a file name, got %s", kind_name(f));
            return -1;
        }
        if (load_one_include(ld, f, (const char *)f->data.scalar.value))
            return -1;
    }
    return 0;
}

/* Load the root mapping. 0 or -1. */
static int load_root(loader_t *ld, yaml_node_t *root)
{
    char name[64];

    if (is_null(root))
        return 0; /* a lone "---": all defaults, like an empty file */
    if (root->type != YAML_MAPPING_NODE) {
        report(ld, root->start_mark, "yaml", 4,
               "the top level must be a mapping of sections (listen:, monitoring:, spool:, scripts:, log:), got %s",
               kind_name(root));
        return -1;
    }
    if (check_keys(ld, root, "yaml"))
        return -1;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        const char *kv = (const char *)k->data.scalar.value;
        size_t kn = k->data.scalar.length;
        const option_t *top = NULL;

        if (kn == 7 && memcmp(kv, "include", 7) == 0) {
            if (load_include(ld, yaml_document_get_node(ld->doc, p->value)))
                return -1;
            continue;
        }
        if (kn < sizeof(name) && !memchr(kv, '.', kn)) {
            memcpy(name, kv, kn);
            name[kn] = '\0';
            top = find_option(name);
        }
        if (top) {
            if (load_option(ld, top, yaml_document_get_node(ld->doc, p->value)))
                return -1;
            continue;
        }
        if (!is_section(kv, kn) || kn >= sizeof(name)) {
            gw_buf_t key = {0};
            gw_buf_append(&key, kv, kn);
            gw_buf_putc(&key, '\0');
            if (key.data && strlen(key.data) == kn)
                report_unknown(ld, k->start_mark, key.data, 1);
            else
                report(ld, k->start_mark, kv, kn, "unknown key");
            gw_buf_free(&key);
            return -1;
        }
        memcpy(name, kv, kn);
        name[kn] = '\0';
        if (load_section(ld, name, yaml_document_get_node(ld->doc, p->value)))
            return -1;
    }
    return 0;
}

/* Fill every option the file did not set from its default. 0 or -1. */
static int apply_defaults(loader_t *ld)
{
    for (size_t i = 0; i < NOPT; i++) {
        value_t v = {0};
        if (ld->seen[i])
            continue;
        if (parse_value(&options[i], options[i].def, &v) || resolve_path(ld, &options[i], &v)) {
            if (options[i].type == OPT_PATH)
                free(v.s);
            /* A bad default is a bug in the table, but say so clearly. */
            report(ld, (yaml_mark_t){0}, options[i].key, strlen(options[i].key),
                   "internal error: default \"%s\" is invalid (or out of memory)", options[i].def);
            return -1;
        }
        store_value(ld->cfg, &options[i], v);
    }
    return 0;
}

/* Where to point a cross-check: at key if the file set it, else at the
 * first of the others that it set, else at the start of the file. */
static yaml_mark_t mark_of(loader_t *ld, const char *key, const char *other1, const char *other2)
{
    const char *keys[] = {key, other1, other2};

    for (int i = 0; i < 3; i++) {
        const option_t *o = keys[i] ? find_option(keys[i]) : NULL;
        if (o && ld->seen[o - options])
            return ld->mark[o - options];
    }
    return (yaml_mark_t){0};
}

/* Rules between keys, checked after defaults so they also hold for them. */
static int cross_check(loader_t *ld)
{
    const gw_config_t *c = ld->cfg;
    const char *empty = NULL;

    if (c->monitoring.buffer_limit < c->monitoring.batch_size) {
        report(ld, mark_of(ld, "monitoring.buffer_limit", "monitoring.batch_size", NULL),
               "monitoring.buffer_limit", strlen("monitoring.buffer_limit"),
               "must be at least monitoring.batch_size (%u), got %u",
               (unsigned)c->monitoring.batch_size, (unsigned)c->monitoring.buffer_limit);
        return -1;
    }
    if (c->max_inflight_bytes < c->listen.max_body_bytes) {
        report(ld, mark_of(ld, "listen.max_inflight_bytes", "listen.max_body_bytes", NULL),
               "listen.max_inflight_bytes", strlen("listen.max_inflight_bytes"),
               "must be at least listen.max_body_bytes (%zu), got %zu", c->listen.max_body_bytes,
               c->max_inflight_bytes);
        return -1;
    }
    if (!*c->access.tls_cert != !*c->access.tls_key) {
        const char *k = *c->access.tls_cert ? "listen.tls_key" : "listen.tls_cert";
        report(ld, mark_of(ld, "listen.tls_cert", "listen.tls_key", NULL), k, strlen(k),
               "listen.tls_cert and listen.tls_key go together: set both or neither");
        return -1;
    }
    if (c->monitoring.version == 1 && !*c->monitoring.database)
        empty = "monitoring.database";
    else if (c->monitoring.version == 2 && !*c->monitoring.organization)
        empty = "monitoring.organization";
    else if (c->monitoring.version == 2 && !*c->monitoring.bucket)
        empty = "monitoring.bucket";
    if (empty) {
        report(ld, mark_of(ld, empty, "monitoring.version", NULL), empty, strlen(empty),
               "must not be empty with monitoring.version %d", c->monitoring.version);
        return -1;
    }
    return 0;
}

/* A check of a module (msg "<key>: <what>", bad the node or NULL) failed:
 * report it at the node. Returns -1. */
static int report_node(loader_t *ld, const gw_conf_node_t *bad, const char *msg)
{
    const char *colon = strstr(msg, ": ");

    if (!colon)
        colon = msg + strlen(msg);
    report(ld, bad ? node_mark(bad) : (yaml_mark_t){0}, msg, (size_t)(colon - msg), "%s", *colon ? colon + 2 : "invalid");
    return -1;
}

/* outputs:, routes: and listen.tokens (docs/outputs.md). */
static int check_outputs(loader_t *ld)
{
    const gw_config_t *c = ld->cfg;
    const gw_conf_node_t *bad = NULL;
    const char *names[GW_OUTPUTS_MAX];
    char msg[600], warn[600];
    gw_outconfs_t oc = {0};
    int rc;

    if (c->outputs) {
        for (size_t i = 0; i < NOPT; i++)
            if (ld->seen[i] && strncmp(options[i].key, "monitoring.", 11) == 0) {
                report(ld, ld->mark[i], "monitoring", 10,
                       "monitoring: and outputs: do not go together: move monitoring: under outputs: as an output "
                       "of its own");
                return -1;
            }
    }
    if (gw_tenants_check(c->access.tokens, &bad, msg, sizeof(msg)))
        return report_node(ld, bad, msg);
    rc = gw_outconfs_build(c, &oc, &bad, msg, sizeof(msg));
    if (!rc) {
        gw_outconfs_names(&oc, names);
        rc = gw_routes_check(c->routes, names, oc.n, c->access.tokens, &bad, msg, sizeof(msg), warn, sizeof(warn));
    }
    gw_outconfs_free(&oc);
    if (rc)
        return report_node(ld, bad, msg);
    if (*warn) {
        if (ld->warning.len)
            gw_buf_putc(&ld->warning, '\n');
        put_where(&ld->warning, ld, c->routes ? node_mark(c->routes) : (yaml_mark_t){0}, "routes", 6);
        gw_buf_printf(&ld->warning, "%s", warn);
    }
    return 0;
}

/* Line and column (0-based, in characters) of a byte offset, for libyaml's
 * reader errors (bad UTF-8), which carry an offset but no mark. */
static yaml_mark_t mark_at(const char *text, size_t len, size_t off)
{
    yaml_mark_t m = {0};

    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n')
            m.line++, m.column = 0;
        else if (((unsigned char)text[i] & 0xc0) != 0x80)
            m.column++;
    }
    return m;
}

static void report_yaml(loader_t *ld, yaml_parser_t *parser, const gw_buf_t *text)
{
    yaml_mark_t mark = parser->problem_mark;

    if (parser->error == YAML_READER_ERROR)
        mark = mark_at(text->data, text->len, parser->problem_offset);
    if (parser->error == YAML_MEMORY_ERROR || !parser->problem)
        report(ld, mark, "yaml", 4, "%s", parser->error == YAML_MEMORY_ERROR ? "out of memory" : "cannot parse");
    else if (parser->context)
        report(ld, mark, "yaml", 4, "%s (%s at line %zu, column %zu)", parser->problem, parser->context,
               parser->context_mark.line + 1, parser->context_mark.column + 1);
    else
        report(ld, mark, "yaml", 4, "%s", parser->problem);
}

/* Read the whole file: config files are small, and having the bytes lets a
 * reader error's byte offset be turned into a line and column. */
static int read_file(loader_t *ld, gw_buf_t *text)
{
    FILE *f = fopen(ld->path, "rb");
    size_t n;

    if (!f) {
        report_file(ld, "cannot open", errno);
        return -1;
    }
    do {
        if (gw_buf_reserve(text, 65536))
            goto fail_errno_nomem;
        n = fread(text->data + text->len, 1, text->cap - text->len, f);
        text->len += n;
    } while (n > 0);
    if (ferror(f)) {
        report_file(ld, "cannot read", errno ? errno : EIO);
        goto fail;
    }
    fclose(f);
    return 0;

fail_errno_nomem:
    report_file(ld, "cannot read", ENOMEM);
fail:
    fclose(f);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

gw_config_t *gw_config_load(const char *path, char *err, size_t errlen)
{
    loader_t ld = {.path = path, .err = err, .errlen = err ? errlen : 0};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_parser = 0, have_doc = 0, have_extra = 0;
    gw_buf_t text = {0};
    yaml_node_t *root;

    if (ld.errlen)
        err[0] = '\0';
    ld.cfg = calloc(1, sizeof(*ld.cfg));
    if (!ld.cfg || !(ld.cfg->path = strdup(path))) {
        report_file(&ld, "cannot load", ENOMEM);
        goto fail;
    }
    if (read_file(&ld, &text))
        goto fail;

    if (!yaml_parser_initialize(&parser)) {
        report_file(&ld, "cannot load", ENOMEM);
        goto fail;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text.data ? text.data : ""), text.len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml(&ld, &parser, &text);
        goto fail;
    }
    have_doc = 1;
    ld.doc = &doc;
    /* A stream may hold several "---" documents; only one makes sense. An
     * empty stream yields a document without a root: all defaults. */
    root = yaml_document_get_root_node(&doc);
    if (root) {
        if (!yaml_parser_load(&parser, &extra)) {
            report_yaml(&ld, &parser, &text);
            goto fail;
        }
        have_extra = 1;
        if (yaml_document_get_root_node(&extra)) {
            report(&ld, extra.start_mark, "yaml", 4, "only one document is allowed, found a second one");
            goto fail;
        }
        if (load_root(&ld, root))
            goto fail;
    }
    if (apply_defaults(&ld) || cross_check(&ld) || check_outputs(&ld))
        goto fail;
    if (ld.warning.len && !(ld.cfg->warnings = strndup(ld.warning.data, ld.warning.len))) {
        report_file(&ld, "cannot load", ENOMEM);
        goto fail;
    }

    if (have_extra)
        yaml_document_delete(&extra);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    gw_buf_free(&text);
    gw_buf_free(&ld.val);
    gw_buf_free(&ld.msg);
    gw_buf_free(&ld.warning);
    return ld.cfg;

fail:
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    gw_buf_free(&text);
    gw_buf_free(&ld.val);
    gw_buf_free(&ld.msg);
    gw_buf_free(&ld.warning);
    gw_config_free(ld.cfg);
    return NULL;
}

void gw_config_free(gw_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NOPT; i++)
        if (options[i].type == OPT_STRING || options[i].type == OPT_PATH || options[i].type == OPT_ENUM)
            free(*(char **)((char *)cfg + options[i].off));
        else if (options[i].type == OPT_PARAMS || options[i].type == OPT_CHAINS || options[i].type == OPT_LIST)
            gw_conf_node_free(*(gw_conf_node_t **)((char *)cfg + options[i].off));
    free(cfg->path);
    free(cfg->warnings);
    free(cfg);
}

static int is_tree(const option_t *o)
{
    return o->type == OPT_PARAMS || o->type == OPT_CHAINS || o->type == OPT_LIST;
}

gw_config_t *gw_config_copy(const gw_config_t *cfg)
{
    gw_config_t *c = malloc(sizeof(*c));
    int ok;

    if (!c)
        return NULL;
    *c = *cfg;
    c->warnings = NULL;
    for (size_t i = 0; i < NOPT; i++)
        if (is_tree(&options[i]) || options[i].type == OPT_STRING || options[i].type == OPT_PATH ||
            options[i].type == OPT_ENUM)
            *(void **)((char *)c + options[i].off) = NULL;
    ok = (c->path = strdup(cfg->path)) != NULL;
    for (size_t i = 0; i < NOPT && ok; i++) {
        char **to = (char **)((char *)c + options[i].off);
        char *const *from = (char *const *)((const char *)cfg + options[i].off);
        if (!is_tree(&options[i]) && (options[i].type == OPT_STRING || options[i].type == OPT_PATH ||
                                      options[i].type == OPT_ENUM))
            ok = !*from || (*to = strdup(*from));
    }
    if (!ok) {
        gw_config_free(c);
        return NULL;
    }
    return c;
}

int gw_config_set(gw_config_t *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    const option_t *o = find_option(key);
    loader_t ld = {.path = cfg->path};
    value_t v = {0};
    gw_buf_t msg = {0};
    int rc;

    if (!o || is_tree(o)) {
        snprintf(err, errlen, "unknown key");
        return -2;
    }
    rc = parse_value(o, value, &v);
    if (!rc)
        rc = resolve_path(&ld, o, &v);
    if (rc == -2) {
        if (o->type == OPT_PATH)
            free(v.s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc) {
        put_expectation(&msg, o);
        gw_buf_printf(&msg, ", got ");
        put_quoted(&msg, value, strlen(value));
        snprintf(err, errlen, "%.*s", (int)msg.len, msg.data ? msg.data : "");
        gw_buf_free(&msg);
        return -1;
    }
    store_value(cfg, o, v);
    return 0;
}

void gw_config_print_reference(FILE *out)
{
    gw_buf_t type = {0}, def = {0};

    for (size_t i = 0; i < NOPT; i++) {
        const option_t *o = &options[i];
        type.len = def.len = 0;
        put_type(&type, o);
        gw_buf_putc(&type, '\0');
        /* Show an empty default the way it would be written in YAML. */
        gw_buf_printf(&def, "%s", *o->def ? o->def : "\"\"");
        fprintf(out, "%-34s %-26s default %-16s %s\n", o->key, type.data ? type.data : "",
                def.data ? def.data : "", o->help);
    }
    gw_buf_free(&type);
    gw_buf_free(&def);
}

/* ------------------------------------------------------------------------ */
/* Printing values (luagw --print-config)                                    */

/* Bytes a plain scalar may hold and still be printed bare in flow style. */
static int flow_safe(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-./+@%~", *s))
            return 0;
    return 1;
}

/* s as a YAML double-quoted scalar (its escapes are C's). */
static void put_yaml_quoted(gw_buf_t *b, const char *s)
{
    gw_buf_putc(b, '"');
    put_escaped(b, s, strlen(s), '"');
    gw_buf_putc(b, '"');
}

/* A tree's items (first and its siblings) in YAML flow style: {k: v} or
 * [a, b]; a plain scalar stays bare where that reads the same. */
static void put_flow(gw_buf_t *b, const gw_conf_node_t *first, int kind)
{
    gw_buf_putc(b, kind == GW_CONF_SEQ ? '[' : '{');
    for (const gw_conf_node_t *n = first; n; n = n->next) {
        if (n != first)
            gw_buf_printf(b, ", ");
        if (n->key) {
            if (flow_safe(n->key))
                gw_buf_printf(b, "%s", n->key);
            else
                put_yaml_quoted(b, n->key);
            gw_buf_printf(b, ": ");
        }
        if (n->kind != GW_CONF_SCALAR)
            put_flow(b, n->child, n->kind);
        else if (n->plain && flow_safe(n->value))
            gw_buf_printf(b, "%s", n->value);
        else
            put_yaml_quoted(b, n->value);
    }
    gw_buf_putc(b, kind == GW_CONF_SEQ ? ']' : '}');
}

/* The shortest decimal that reads back as v: "10", "0.25". */
static void put_exact(gw_buf_t *b, double v)
{
    char text[40];

    if (v == floor(v) && fabs(v) < 1e15) {
        gw_buf_printf(b, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof(text), "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    gw_buf_printf(b, "%s", text);
}

/* The value of o in cfg, as text. */
static void put_value(gw_buf_t *b, const gw_config_t *cfg, const option_t *o)
{
    const char *field = (const char *)cfg + o->off;
    const gw_conf_node_t *tree;

    switch (o->type) {
    case OPT_STRING:
    case OPT_PATH:
    case OPT_ENUM:
        gw_buf_printf(b, "%s", *(char *const *)field);
        break;
    case OPT_INT:
        gw_buf_printf(b, "%d", *(const int *)field);
        break;
    case OPT_UINT32:
        gw_buf_printf(b, "%u", (unsigned)*(const uint32_t *)field);
        break;
    case OPT_SIZE:
        gw_buf_printf(b, "%zu", *(const size_t *)field);
        break;
    case OPT_SECONDS:
        put_exact(b, *(const double *)field);
        break;
    case OPT_BOOL:
        gw_buf_printf(b, *(const int *)field ? "true" : "false");
        break;
    case OPT_PARAMS:
    case OPT_CHAINS:
    case OPT_LIST:
        /* The stored node is the mapping or sequence itself (NULL: empty). */
        tree = *(gw_conf_node_t *const *)field;
        put_flow(b, tree ? tree->child : NULL, tree ? tree->kind : o->type == OPT_LIST ? GW_CONF_SEQ : GW_CONF_MAP);
        break;
    }
}

/* "key=value", the value escaped so that the line stays one line. */
static void put_assignment(gw_buf_t *b, const gw_config_t *cfg, const option_t *o, gw_buf_t *scratch)
{
    scratch->len = 0;
    put_value(scratch, cfg, o);
    gw_buf_printf(b, "%s=", o->key);
    put_escaped(b, scratch->data, scratch->len, 0);
    gw_buf_putc(b, '\n');
}

/* The known key nearest to key, if one is close enough to suggest (the
 * same measure as an unknown key in a file). */
static const char *nearest_key(const char *key)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX, limit = strlen(key) / 3 > 2 ? strlen(key) / 3 : 2;

    for (size_t i = 0; i < NOPT; i++) {
        size_t d = edit_distance(key, options[i].key);
        if (d < bestd)
            bestd = d, best = options[i].key;
    }
    return bestd <= limit ? best : NULL;
}

int gw_config_print_key(const gw_config_t *cfg, const char *key, int bare, FILE *out, char *err,
                        size_t errlen)
{
    const option_t *o = key ? find_option(key) : NULL;
    size_t keylen = key ? strlen(key) : 0, matched = 0;
    gw_buf_t text = {0}, scratch = {0};
    const char *near;

    for (size_t i = 0; i < NOPT; i++) {
        if (key && &options[i] != o &&
            (strncmp(options[i].key, key, keylen) != 0 || options[i].key[keylen] != '.'))
            continue;
        matched++;
        if (o && bare) {
            put_value(&text, cfg, o);
            gw_buf_putc(&text, '\n');
        } else {
            put_assignment(&text, cfg, &options[i], &scratch);
        }
    }
    gw_buf_free(&scratch);
    if (!matched) {
        near = nearest_key(key);
        if (errlen)
            snprintf(err, errlen, "unknown key \"%s\" (%s%s%s)", key, near ? "did you mean " : "see luagw --help-config",
                     near ? near : "", near ? "?" : "");
        return -1;
    }
    if (text.data)
        fwrite(text.data, 1, text.len, out);
    gw_buf_free(&text);
    return 0;
}
