/* config_value.c — a key's value as text (config_int.h): read from YAML
 * scalars (numbers, sizes with binary or SI units, seconds, booleans,
 * choices), stored at its place in gw_config_t, described for errors and
 * `luagw --help-config`, and written back as YAML for
 * `luagw --print-config` and gw_config_value. */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
void config_put_expectation(gw_buf_t *b, const option_t *o)
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
int config_parse_value(const option_t *o, const char *s, value_t *out)
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
                out->i = c - o->choices;
                return 0;
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
void config_store_value(gw_config_t *cfg, const option_t *o, value_t v)
{
    char *field = (char *)cfg + o->off;

    switch (o->type) {
    case OPT_STRING:
    case OPT_PATH:
        free(*(char **)field);
        *(char **)field = v.s;
        break;
    case OPT_INT:
    case OPT_BOOL:
    case OPT_ENUM:
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
    for (size_t i = 0; i < config_noptions; i++)
        if (is_tree(&config_options[i]) || config_options[i].type == OPT_STRING || config_options[i].type == OPT_PATH)
            *(void **)((char *)c + config_options[i].off) = NULL;
    ok = (c->path = strdup(cfg->path)) != NULL;
    for (size_t i = 0; i < config_noptions && ok; i++) {
        const option_t *o = &config_options[i];
        char **to = (char **)((char *)c + o->off);
        char *const *from = (char *const *)((const char *)cfg + o->off);
        if (o->type == OPT_STRING || o->type == OPT_PATH)
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
    const option_t *o = config_find_option(key);
    loader_t ld = {.path = cfg->path};
    value_t v = {0};
    gw_buf_t msg = {0};
    int rc;

    if (!o || is_tree(o)) {
        snprintf(err, errlen, "unknown key");
        return -2;
    }
    rc = config_parse_value(o, value, &v);
    if (!rc)
        rc = config_resolve_path(&ld, o, &v);
    if (rc == -2) {
        if (o->type == OPT_PATH)
            free(v.s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc) {
        config_put_expectation(&msg, o);
        gw_buf_printf(&msg, ", got ");
        config_put_quoted(&msg, value, strlen(value));
        snprintf(err, errlen, "%.*s", (int)msg.len, msg.data ? msg.data : "");
        gw_buf_free(&msg);
        return -1;
    }
    config_store_value(cfg, o, v);
    return 0;
}

void gw_config_print_reference(FILE *out)
{
    gw_buf_t type = {0}, def = {0};

    for (size_t i = 0; i < config_noptions; i++) {
        const option_t *o = &config_options[i];
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
    config_put_escaped(b, s, strlen(s), '"');
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
        gw_buf_printf(b, "%s", *(char *const *)field);
        break;
    case OPT_ENUM:
        gw_buf_printf(b, "%s", o->choices[*(const int *)field]);
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
    config_put_escaped(b, scratch->data, scratch->len, 0);
    gw_buf_putc(b, '\n');
}

int gw_config_value(const gw_config_t *cfg, const char *key, gw_buf_t *out)
{
    const option_t *o = config_find_option(key);

    if (!o)
        return -1;
    put_value(out, cfg, o);
    return 0;
}

const gw_conf_node_t *gw_config_tree(const gw_config_t *cfg, const char *key)
{
    const option_t *o = config_find_option(key);

    if (!o || (o->type != OPT_PARAMS && o->type != OPT_CHAINS && o->type != OPT_LIST))
        return NULL;
    return *(gw_conf_node_t *const *)((const char *)cfg + o->off);
}

int gw_config_print_key(const gw_config_t *cfg, const char *key, int bare, FILE *out, char *err,
                        size_t errlen)
{
    const option_t *o = key ? config_find_option(key) : NULL;
    size_t keylen = key ? strlen(key) : 0, matched = 0;
    gw_buf_t text = {0}, scratch = {0};
    const char *near;

    for (size_t i = 0; i < config_noptions; i++) {
        if (key && &config_options[i] != o &&
            (strncmp(config_options[i].key, key, keylen) != 0 || config_options[i].key[keylen] != '.'))
            continue;
        matched++;
        if (o && bare) {
            put_value(&text, cfg, o);
            gw_buf_putc(&text, '\n');
        } else {
            put_assignment(&text, cfg, &config_options[i], &scratch);
        }
    }
    gw_buf_free(&scratch);
    if (!matched) {
        near = config_nearest_key(key);
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
