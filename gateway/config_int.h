/* config_int.h — what the files of the configuration share (not an API).
 *
 *   config.c        loading: the file read with libyaml, ${VAR} expansion,
 *                   include:, paths taken beside the file that sets them,
 *                   every key walked and stored, unknown keys reported with
 *                   a suggestion; errors as file:line:column: key: message
 *   config_table.c  the table: every key with its type, bounds, default,
 *                   place in gw_config_t and help; looking keys up
 *   config_value.c  a key's value: read from text (sizes, seconds,
 *                   booleans, enums), stored, described (--help-config)
 *                   and written back (--print-config, gw_config_value)
 *   config_check.c  defaults, the tree-valued keys' shapes, and the rules
 *                   between keys, checked once the whole file is read */
#ifndef GW_CONFIG_INT_H
#define GW_CONFIG_INT_H

#include <stddef.h>
#include <yaml.h>

#include "buf.h"
#include "config.h"

enum opt_type {
    OPT_STRING,  /* char *; min = minimum length in bytes */
    OPT_PATH,    /* char *, a file or directory; relative to the file that sets it (resolve_path) */
    OPT_INT,     /* int; min..max */
    OPT_UINT32,  /* uint32_t; min..max */
    OPT_SIZE,    /* size_t bytes; min..max; "16MiB" or 16777216 */
    OPT_SECONDS, /* double; min..max; fractions allowed */
    OPT_BOOL,    /* int 0/1; true/false, yes/no, on/off */
    OPT_ENUM,    /* int (a C enum); the index of one of choices */
    OPT_PARAMS,  /* gw_conf_node_t *; a mapping of anything (default {}) */
    OPT_CHAINS,  /* gw_conf_node_t *; a mapping of name -> [file, ...] (default {}) */
    OPT_LIST,    /* gw_conf_node_t *; a sequence of non-empty strings (default []); with min 1, a
                  * sequence of anything, which the module that reads it checks */
};

typedef struct {
    const char *key;            /* dotted: section.name */
    enum opt_type type;
    double min, max;            /* inclusive; exact for every integer we use */
    const char *const *choices; /* OPT_ENUM: NULL-terminated, indexed by the enum's values */
    const char *def;            /* written as in YAML, parsed like a user value */
    size_t off;                 /* into gw_config_t */
    const char *help;
} option_t;

/* Sizes in the table and in what is said about them. */
#define KIB 1024.0
#define MIB (1024.0 * 1024)
#define GIB (1024.0 * 1024 * 1024)

/* A field's offset in gw_config_t. */
#define OFF(field) offsetof(gw_config_t, field)

/* The table (config_table.c), in the order --help-config lists it. */
extern const option_t config_options[];
extern const size_t config_noptions;

/* The most rows the table may have (checked where it is defined). */
#define CONFIG_MAX_OPTIONS 128

typedef struct {
    const char *path;      /* borrowed: as the caller named it, for messages */
    yaml_document_t *doc;  /* borrowed */
    gw_config_t *cfg;      /* borrowed */
    char *err;             /* borrowed: the caller's buffer */
    size_t errlen;
    /* Where each option was set, so the cross-checks can point at it. */
    int seen[CONFIG_MAX_OPTIONS];
    yaml_mark_t mark[CONFIG_MAX_OPTIONS];
    gw_buf_t val;          /* owned: the current value after ${} expansion */
    gw_buf_t msg;          /* owned: scratch for one error message */
    gw_buf_t warning;      /* owned: the note on a missing scripts.dir, "" = none */
    int depth;             /* include: nesting */
} loader_t;

typedef union {
    char *s; /* OPT_STRING, OPT_PATH: owned until stored */
    gw_conf_node_t *tree; /* OPT_PARAMS, OPT_CHAINS: owned until stored */
    long long i;
    unsigned long long u;
    double d;
} value_t;

/* ------------------------------------------------------------ config.c */

/* Write "file:line:column: key: message" into the caller's buffer (the
 * first error only); mark is where, key (keylen bytes) the dotted key. */
void config_report(loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Where a node of a tree-valued key was written. */
yaml_mark_t config_node_mark(const gw_conf_node_t *n);

/* Append "file:line:column: key: " (mark libyaml's, 0-based). */
void config_put_where(gw_buf_t *b, const loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen);

/* Append s quoted, on one line, cut after 60 bytes. */
void config_put_quoted(gw_buf_t *b, const char *s, size_t n);

/* Append n bytes of s on one line, C-style escaped (and quote, if any). */
void config_put_escaped(gw_buf_t *b, const char *s, size_t n, char quote);

/* An OPT_PATH value written relative, taken beside the file that set it. */
int config_resolve_path(const loader_t *ld, const option_t *o, value_t *v);

/* ------------------------------------------------------ config_table.c */

/* The row of a dotted key, or NULL. */
const option_t *config_find_option(const char *key);

/* Is name (n bytes) a section, the prefix of some dotted key? */
int config_is_section(const char *name, size_t n);

/* Edits from a to b (SIZE_MAX past 63 bytes), and the known key nearest
 * to key if one is close enough to suggest. */
size_t config_edit_distance(const char *a, const char *b);
const char *config_nearest_key(const char *key);

/* ------------------------------------------------------ config_value.c */

/* A scalar read as o's type into *out. 0, or -1 when it is not one. */
int config_parse_value(const option_t *o, const char *s, value_t *out);

/* v stored at o's place in cfg (what it owns handed over). */
void config_store_value(gw_config_t *cfg, const option_t *o, value_t v);

/* What o takes, in words ("must be a size between ..."). */
void config_put_expectation(gw_buf_t *b, const option_t *o);

/* ------------------------------------------------------ config_check.c */

/* Every key the file did not set gets its default. 0 or -1 (reported). */
int config_apply_defaults(loader_t *ld);

/* The shapes of tree-valued keys: a chain of script files per series, a
 * list of non-empty strings, series declarations. 0 or -1 (reported). */
int config_check_chains(loader_t *ld, const option_t *o, const gw_conf_node_t *root);
int config_check_list(loader_t *ld, const option_t *o, const gw_conf_node_t *root);
int config_check_series(loader_t *ld, const gw_conf_node_t *root);

/* The rules between keys, after defaults. 0 or -1 (reported). */
int config_cross_check(loader_t *ld);

/* outputs:, routes: and listen.tokens as outconf.c, route.c and tenant.c
 * read them (docs/outputs.md). 0 or -1 (reported); a route that can never
 * match is a warning. */
int config_check_outputs(loader_t *ld);

#endif
