/* config.c — the YAML configuration, see config.h; config_int.h maps its files.
 *
 * Loading it: the file and its include:s read, ${VAR} expanded, each key
 * found in the table (config_table.c; unknown keys are errors, with the
 * nearest known one suggested), its value read and stored (config_value.c),
 * then defaults and the rules between keys (config_check.c). A loaded
 * configuration does not change: SIGHUP loads the file anew and takes the
 * scripts of the new one (main.c).
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

#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static int read_file(loader_t *ld, gw_buf_t *text);
static void report_yaml(loader_t *ld, yaml_parser_t *parser, const gw_buf_t *text);
static int load_root(loader_t *ld, yaml_node_t *root);

/* Append n bytes of s on one line, C-style: backslash, newline, tab and
 * other control bytes escaped, and the quote character when there is one. */
void config_put_escaped(gw_buf_t *b, const char *s, size_t n, char quote)
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
void config_put_quoted(gw_buf_t *b, const char *s, size_t n)
{
    gw_buf_putc(b, '"');
    config_put_escaped(b, s, n > 60 ? 60 : n, '"');
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
            config_put_quoted(b, s, n);
            return;
        }
    gw_buf_append(b, s, n);
}

/* Append "file:line:column: key: ". mark is libyaml's (0-based); key may be
 * a user-written, unterminated slice. */
void config_put_where(gw_buf_t *b, const loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen)
{
    gw_buf_printf(b, "%s:%zu:%zu: ", ld->path, mark.line + 1, mark.column + 1);
    put_key(b, key, keylen);
    gw_buf_printf(b, ": ");
}

/* See config_int.h. */
void config_report(loader_t *ld, yaml_mark_t mark, const char *key, size_t keylen, const char *fmt, ...)
{
    gw_buf_t b = {0};
    va_list ap;
    char *m = NULL;

    config_put_where(&b, ld, mark, key, keylen);
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
int config_resolve_path(const loader_t *ld, const option_t *o, value_t *v)
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
    config_put_where(&ld->warning, ld, mark, o->key, strlen(o->key));
    gw_buf_printf(&ld->warning, "directory \"%s\" does not exist: no script will run", dir);
}

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
            config_put_quoted(&ld->msg, s + i, (size_t)(close - (s + i)) + 1);
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

    if (top && dot && config_find_option(key)) {
        config_report(ld, mark, key, strlen(key),
                      "unknown key (write it nested: \"%.*s:\" then \"%s:\" indented under it)", (int)(dot - key),
                      key, dot + 1);
        return;
    }
    for (size_t i = 0; i < config_noptions; i++) {
        const char *k = config_options[i].key, *kdot = strchr(k, '.');
        size_t d;
        if (!kdot)
            kdot = k + strlen(k); /* a top-level key: its own "section" */
        if (!top && !*kdot)
            continue;
        if (top) {
            snprintf(cand, sizeof(cand), "%.*s", (int)(kdot - k), k);
            d = config_edit_distance(key, cand);
        } else if ((size_t)(kdot - k) == seclen && strncmp(k, key, seclen) == 0) {
            d = config_edit_distance(leaf, kdot + 1);
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
        config_report(ld, mark, key, strlen(key), "unknown key (did you mean %.*s?)", (int)bestlen, best);
        return;
    }
    /* Nothing close: list what is allowed here. */
    ld->msg.len = 0;
    for (size_t i = 0; i < config_noptions; i++) {
        const char *k = config_options[i].key, *kdot = strchr(k, '.');
        if (!kdot) {
            if (top)
                gw_buf_printf(&ld->msg, "%s%s", ld->msg.len ? ", " : "", k);
            continue;
        }
        if (top) {
            if (i && strncmp(config_options[i - 1].key, k, (size_t)(kdot - k) + 1) == 0)
                continue;
            gw_buf_printf(&ld->msg, "%s%.*s", ld->msg.len ? ", " : "", (int)(kdot - k), k);
        } else if ((size_t)(kdot - k) == seclen && strncmp(k, key, seclen) == 0) {
            gw_buf_printf(&ld->msg, "%s%s", ld->msg.len ? ", " : "", kdot + 1);
        }
    }
    if (top)
        gw_buf_printf(&ld->msg, ", include"); /* not an option: read by load_root */
    config_report(ld, mark, key, strlen(key), "unknown key (expected one of: %.*s)", (int)ld->msg.len, ld->msg.data);
}

/* Check that every key of mapping m is a scalar and appears once. parent is
 * the dotted path of m, for messages ("yaml" at the top). 0 or -1. */
static int check_keys(loader_t *ld, yaml_node_t *m, const char *parent)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        if (k->type != YAML_SCALAR_NODE) {
            config_report(ld, k->start_mark, parent, strlen(parent), "keys must be scalars, got %s", kind_name(k));
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
                config_report(ld, k->start_mark, key.data, key.len, "duplicate key (first at line %zu, column %zu)",
                              k2->start_mark.line + 1, k2->start_mark.column + 1);
                gw_buf_free(&key);
                return -1;
            }
        }
    }
    return 0;
}

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

/* Where a node was written (config_int.h). */
yaml_mark_t config_node_mark(const gw_conf_node_t *n)
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
        config_report(ld, v->start_mark, o->key, strlen(o->key), "out of memory");
        return -1;
    }
    n->line = v->start_mark.line + 1;
    n->column = v->start_mark.column + 1;
    if (depth > 32) {
        config_report(ld, v->start_mark, o->key, strlen(o->key), "nested more than 32 levels deep");
        return -1;
    }
    switch (v->type) {
    case YAML_SCALAR_NODE:
        n->kind = GW_CONF_SCALAR;
        n->plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        ld->msg.len = 0;
        if (expand_env(ld, (const char *)v->data.scalar.value, v->data.scalar.length)) {
            config_report(ld, v->start_mark, o->key, strlen(o->key), "%.*s", (int)ld->msg.len, ld->msg.data);
            return -1;
        }
        if (strlen(ld->val.data) != ld->val.len - 1) {
            config_report(ld, v->start_mark, o->key, strlen(o->key), "must not contain a NUL byte");
            return -1;
        }
        if (!(n->value = strdup(ld->val.data))) {
            config_report(ld, v->start_mark, o->key, strlen(o->key), "out of memory");
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
        config_report(ld, v->start_mark, o->key, strlen(o->key), "unsupported YAML node");
        return -1;
    }
}

static int load_tree_option(loader_t *ld, const option_t *o, yaml_node_t *v)
{
    value_t val = {0};

    if (is_null(v) || (v->type == YAML_MAPPING_NODE && v->data.mapping.pairs.start == v->data.mapping.pairs.top) ||
        (o->type == OPT_LIST && v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.start == v->data.sequence.items.top))
        goto store; /* "params:" with nothing under it, {} or []: the default */
    if (v->type != (o->type == OPT_LIST ? YAML_SEQUENCE_NODE : YAML_MAPPING_NODE)) {
        ld->msg.len = 0;
        config_put_expectation(&ld->msg, o);
        config_report(ld, v->start_mark, o->key, strlen(o->key), "%.*s, got %s", (int)ld->msg.len, ld->msg.data,
                      kind_name(v));
        return -1;
    }
    if (build_tree(ld, o, v, NULL, 0, &val.tree) || (o->type == OPT_CHAINS && config_check_chains(ld, o, val.tree)) ||
        (o->off == OFF(series) && config_check_series(ld, val.tree)) ||
        (o->type == OPT_LIST && o->min == 0 && config_check_list(ld, o, val.tree))) {
        gw_conf_node_free(val.tree);
        return -1;
    }
store:
    config_store_value(ld->cfg, o, val);
    ld->seen[o - config_options] = 1;
    ld->mark[o - config_options] = v->start_mark;
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
        config_put_expectation(&ld->msg, o);
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
    rc = config_parse_value(o, ld->val.data, &val);
    if (!rc)
        rc = config_resolve_path(ld, o, &val);
    if (rc == -2) {
        if (o->type == OPT_PATH)
            free(val.s); /* resolve_path failed, not parse_value */
        gw_buf_printf(&ld->msg, "out of memory");
        goto fail;
    }
    if (rc) {
        config_put_expectation(&ld->msg, o);
        gw_buf_printf(&ld->msg, ", got ");
        config_put_quoted(&ld->msg, ld->val.data, ld->val.len - 1);
        if (ld->val.len - 1 != rawlen || memcmp(ld->val.data, raw, rawlen)) {
            gw_buf_printf(&ld->msg, " (from ");
            config_put_quoted(&ld->msg, raw, rawlen);
            gw_buf_printf(&ld->msg, ")");
        }
        goto fail;
    }
    config_store_value(ld->cfg, o, val);
    ld->seen[o - config_options] = 1;
    ld->mark[o - config_options] = v->start_mark;
    note_missing_dir(ld, o, v->start_mark, val.s);
    return 0;

fail:
    /* ld->msg is a byte count, not a C string: put_quoted adds no NUL. */
    config_report(ld, v->start_mark, o->key, strlen(o->key), "%.*s", (int)ld->msg.len, ld->msg.data);
    return -1;
}

/* Load the mapping of one section (name is NUL-terminated). 0 or -1. */
static int load_section(loader_t *ld, const char *name, yaml_node_t *sec)
{
    gw_buf_t key = {0};

    if (is_null(sec))
        return 0; /* "log:" with every key commented out: all defaults */
    if (sec->type != YAML_MAPPING_NODE) {
        config_report(ld, sec->start_mark, name, strlen(name), "must be a mapping of keys, got %s", kind_name(sec));
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
            config_report(ld, k->start_mark, name, strlen(name), "out of memory");
            goto fail;
        }
        if (strlen(key.data) != key.len - 1) {
            /* A NUL inside the key ("\0" escape): cannot be one of ours. */
            config_report(ld, k->start_mark, key.data, key.len - 1, "unknown key");
            goto fail;
        }
        o = config_find_option(key.data);
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
        config_report(ld, v->start_mark, "include", 7, "must name a file");
        return -1;
    }
    if (ld->depth >= 8) {
        config_report(ld, v->start_mark, "include", 7, "nested more than 8 levels deep (a loop?)");
        return -1;
    }
    if (!(path = beside(ld->path, name))) {
        config_report(ld, v->start_mark, "include", 7, "out of memory");
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
        config_report(ld, v->start_mark, "include", 7, "must be a file name or a list of file names, got %s",
                      kind_name(v));
        return -1;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *f = yaml_document_get_node(ld->doc, *it);
        if (f->type != YAML_SCALAR_NODE || is_null(f)) {
            config_report(ld, f->start_mark, "include", 7, "must be a file name, got %s", kind_name(f));
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
        config_report(ld, root->start_mark, "yaml", 4,
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
            top = config_find_option(name);
        }
        if (top) {
            if (load_option(ld, top, yaml_document_get_node(ld->doc, p->value)))
                return -1;
            continue;
        }
        if (!config_is_section(kv, kn) || kn >= sizeof(name)) {
            gw_buf_t key = {0};
            gw_buf_append(&key, kv, kn);
            gw_buf_putc(&key, '\0');
            if (key.data && strlen(key.data) == kn)
                report_unknown(ld, k->start_mark, key.data, 1);
            else
                config_report(ld, k->start_mark, kv, kn, "unknown key");
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
        config_report(ld, mark, "yaml", 4, "%s", parser->error == YAML_MEMORY_ERROR ? "out of memory" : "cannot parse");
    else if (parser->context)
        config_report(ld, mark, "yaml", 4, "%s (%s at line %zu, column %zu)", parser->problem, parser->context,
                      parser->context_mark.line + 1, parser->context_mark.column + 1);
    else
        config_report(ld, mark, "yaml", 4, "%s", parser->problem);
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
            config_report(&ld, extra.start_mark, "yaml", 4, "only one document is allowed, found a second one");
            goto fail;
        }
        if (load_root(&ld, root))
            goto fail;
    }
    if (config_apply_defaults(&ld) || config_cross_check(&ld) || config_check_outputs(&ld))
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
    for (size_t i = 0; i < config_noptions; i++) {
        const option_t *o = &config_options[i];
        if (o->type == OPT_STRING || o->type == OPT_PATH)
            free(*(char **)((char *)cfg + o->off));
        else if (o->type == OPT_PARAMS || o->type == OPT_CHAINS || o->type == OPT_LIST)
            gw_conf_node_free(*(gw_conf_node_t **)((char *)cfg + o->off));
    }
    free(cfg->path);
    free(cfg->warnings);
    free(cfg);
}
