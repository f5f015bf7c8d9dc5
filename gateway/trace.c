/* trace.c — the record of one traced pipeline run and its JSON answer, see
 * trace.h.
 *
 * Recording keeps copies of the point structs and borrows their strings;
 * the few strings made during the run (messages, script names) are copied
 * into the trace's arena. Every array is kept for the next trace, so a
 * worker's debug requests allocate only when they grow. Output point k's
 * scripts are kept by index (ran[k]), since the scripts report them when
 * they merge their results, before the pipeline's checks decide whether k
 * is stored or rejected. */
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "utf8.h"

typedef struct {
    const char *const *paths; /* borrowed from the script set */
    uint32_t n;
} ran_t;

typedef struct {
    gw_point_t p; /* copy; strings borrowed */
    uint32_t k;
    size_t at, len; /* its line in the run's output */
} stored_t;

typedef struct {
    gw_str_t series; /* borrowed */
    uint32_t src, k;
    const char *err; /* in the arena */
} rejected_t;

typedef struct {
    gw_str_t series; /* borrowed */
    uint32_t src;
    const char *script, *msg; /* in the arena */
    const char *kind;         /* static */
    int dropped;
} failure_t;

struct gw_trace {
    gw_script_trace_t cb; /* ud = this trace */
    gw_arena_t *arena;    /* owned: copied strings of the current run */
    stored_t *stored;     /* owned arrays, reused */
    rejected_t *rejected;
    failure_t *failures;
    ran_t *ran;           /* by output index, up to max */
    uint32_t nstored, nrejected, nfailures, nran;
    uint32_t cap_stored, cap_rejected, cap_failures, cap_ran;
    uint32_t max;         /* points (stored or rejected) kept */
    uint32_t over;        /* points beyond max */
    int nomem;            /* a callback could not record */
    int parsed;           /* parse_result holds the parse's outcome */
    gw_result_t parse_result;
};

/* Room for need entries of size bytes in *v (capacity *cap). 0 or -ENOMEM. */
static int room(void **v, uint32_t *cap, uint32_t need, size_t size)
{
    uint32_t c = *cap ? *cap : 64;
    void *n;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    if (!(n = realloc(*v, (size_t)c * size)))
        return -ENOMEM;
    *v = n;
    *cap = c;
    return 0;
}

static const char *copy(gw_trace_t *t, const char *s)
{
    char *c = gw_arena_dup(t->arena, s, strlen(s) + 1);

    if (!c)
        t->nomem = 1;
    return c ? c : "";
}

static void on_failed(void *ud, const gw_point_t *p, const char *script, const char *kind, const char *msg,
                      int dropped)
{
    gw_trace_t *t = ud;
    failure_t *f;

    if (t->nfailures >= t->max)
        return; /* at most one per input point, of which there are fewer */
    if (room((void **)&t->failures, &t->cap_failures, t->nfailures + 1, sizeof(*f))) {
        t->nomem = 1;
        return;
    }
    f = &t->failures[t->nfailures++];
    *f = (failure_t){p->series, p->src, copy(t, script), copy(t, msg), kind, dropped};
}

static void on_ran(void *ud, uint32_t k, const char *const *scripts, uint32_t n)
{
    gw_trace_t *t = ud;

    if (k >= t->max)
        return; /* beyond what the answer may hold */
    if (k >= t->nran) {
        if (room((void **)&t->ran, &t->cap_ran, k + 1, sizeof(*t->ran))) {
            t->nomem = 1;
            return;
        }
        memset(t->ran + t->nran, 0, (size_t)(k + 1 - t->nran) * sizeof(*t->ran));
        t->nran = k + 1;
    }
    t->ran[k] = (ran_t){scripts, n};
}

gw_trace_t *gw_trace_create(void)
{
    gw_trace_t *t = calloc(1, sizeof(*t));

    if (!t || !(t->arena = gw_arena_create(64 * 1024))) {
        free(t);
        return NULL;
    }
    t->cb = (gw_script_trace_t){.ud = t, .failed = on_failed, .ran = on_ran};
    return t;
}

void gw_trace_destroy(gw_trace_t *t)
{
    if (!t)
        return;
    gw_arena_destroy(t->arena);
    free(t->stored);
    free(t->rejected);
    free(t->failures);
    free(t->ran);
    free(t);
}

void gw_trace_begin(gw_trace_t *t, uint32_t max_points)
{
    gw_arena_reset(t->arena);
    t->nstored = t->nrejected = t->nfailures = t->nran = 0;
    t->max = max_points;
    t->over = 0;
    t->nomem = 0;
    t->parsed = 0;
}

const gw_script_trace_t *gw_trace_scripts(gw_trace_t *t)
{
    return &t->cb;
}

void gw_trace_parsed(gw_trace_t *t, const gw_result_t *res)
{
    t->parse_result = *res;
    t->parsed = 1;
}

/* Is there room for one more point? Counts it beyond max. */
static int keeps(gw_trace_t *t)
{
    if (t->nstored + t->nrejected < t->max)
        return 1;
    t->over++;
    return 0;
}

void gw_trace_reject(gw_trace_t *t, uint32_t k, const gw_point_t *p, const char *err)
{
    if (!keeps(t))
        return;
    if (room((void **)&t->rejected, &t->cap_rejected, t->nrejected + 1, sizeof(*t->rejected)))
        t->nomem = 1;
    else
        t->rejected[t->nrejected++] = (rejected_t){p->series, p->src, k, copy(t, err)};
}

void gw_trace_store(gw_trace_t *t, uint32_t k, const gw_point_t *p, size_t at, size_t len)
{
    if (!keeps(t))
        return;
    if (room((void **)&t->stored, &t->cap_stored, t->nstored + 1, sizeof(*t->stored)))
        t->nomem = 1;
    else
        t->stored[t->nstored++] = (stored_t){*p, k, at, len};
}

/* ------------------------------------------------------------------------ */
/* The answer */

/* A message, made safe to echo as the endpoints echo theirs (utf8.h). */
static void put_message(gw_jsonw_t *j, const char *key, const char *msg)
{
    char safe[1024];

    gw_jsonw_member_string(j, key, gw_utf8_echo(safe, sizeof(safe), msg, strlen(msg)));
}

static void put_scripts(gw_jsonw_t *j, const gw_trace_t *t, uint32_t k)
{
    gw_jsonw_key(j, "scripts");
    gw_jsonw_begin_array(j);
    if (k < t->nran)
        for (uint32_t i = 0; i < t->ran[k].n; i++)
            gw_jsonw_string(j, t->ran[k].paths[i]);
    gw_jsonw_end(j);
}

/* An integer beyond +-2^53 (which JSON readers take as doubles) is also
 * given exactly, as a string, in "exact". */
static int inexact(const gw_field_t *f)
{
    return (f->type == GW_FIELD_INT && (f->v.i > (1LL << 53) || f->v.i < -(1LL << 53))) ||
           (f->type == GW_FIELD_UINT && f->v.u > (1ULL << 53));
}

static void put_exact(gw_jsonw_t *j, const gw_point_t *p)
{
    char buf[32];
    int any = 0;

    for (uint32_t i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        if (!inexact(f))
            continue;
        if (!any++) {
            gw_jsonw_key(j, "exact");
            gw_jsonw_begin_object(j);
        }
        if (f->type == GW_FIELD_INT)
            snprintf(buf, sizeof(buf), "%lld", (long long)f->v.i);
        else
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)f->v.u);
        gw_jsonw_key_n(j, f->key.p, f->key.n);
        gw_jsonw_string(j, buf);
    }
    if (any)
        gw_jsonw_end(j);
}

static void put_field_value(gw_jsonw_t *j, const gw_field_t *f)
{
    switch (f->type) {
    case GW_FIELD_FLOAT:
        gw_jsonw_double(j, f->v.f);
        break;
    case GW_FIELD_INT:
        gw_jsonw_int(j, f->v.i);
        break;
    case GW_FIELD_UINT:
        gw_jsonw_uint(j, f->v.u);
        break;
    case GW_FIELD_STRING:
        gw_jsonw_string_n(j, f->v.s.p, f->v.s.n);
        break;
    default:
        gw_jsonw_bool(j, f->v.b);
    }
}

static void put_fields(gw_jsonw_t *j, const gw_point_t *p)
{
    static const char *const type_names[] = {"float", "integer", "unsigned", "string", "boolean"};

    gw_jsonw_key(j, "fields");
    gw_jsonw_begin_object(j);
    for (uint32_t i = 0; i < p->nfields; i++) {
        gw_jsonw_key_n(j, p->fields[i].key.p, p->fields[i].key.n);
        put_field_value(j, &p->fields[i]);
    }
    gw_jsonw_end(j);
    gw_jsonw_key(j, "types");
    gw_jsonw_begin_object(j);
    for (uint32_t i = 0; i < p->nfields; i++) {
        int type = p->fields[i].type;
        gw_jsonw_key_n(j, p->fields[i].key.p, p->fields[i].key.n);
        gw_jsonw_string(j, type_names[type >= 0 && type <= GW_FIELD_BOOL ? type : 0]);
    }
    gw_jsonw_end(j);
}

static void put_point(gw_jsonw_t *j, const gw_trace_t *t, const stored_t *s, const char *lines)
{
    const gw_point_t *p = &s->p;
    char ns[32];

    gw_jsonw_begin_object(j);
    put_exact(j, p);
    put_fields(j, p);
    gw_jsonw_key(j, "line");
    gw_jsonw_string_n(j, lines + s->at, s->len);
    put_scripts(j, t, s->k);
    gw_jsonw_key(j, "series");
    gw_jsonw_string_n(j, p->series.p, p->series.n);
    gw_jsonw_member_uint(j, "src", p->src);
    gw_jsonw_key(j, "tags");
    gw_jsonw_begin_object(j);
    for (uint32_t i = 0; i < p->ntags; i++) {
        gw_jsonw_key_n(j, p->tags[i].key.p, p->tags[i].key.n);
        gw_jsonw_string_n(j, p->tags[i].val.p, p->tags[i].val.n);
    }
    gw_jsonw_end(j);
    gw_jsonw_member_double(j, "time", (double)p->time_ns / 1e9);
    snprintf(ns, sizeof(ns), "%lld", (long long)p->time_ns);
    gw_jsonw_member_string(j, "time_ns", ns);
    gw_jsonw_end(j);
}

static void put_failures(gw_jsonw_t *j, const gw_trace_t *t)
{
    gw_jsonw_key(j, "errors");
    gw_jsonw_begin_array(j);
    for (uint32_t i = 0; i < t->nfailures; i++) {
        const failure_t *f = &t->failures[i];
        gw_jsonw_begin_object(j);
        gw_jsonw_member_string(j, "action", f->dropped ? "drop" : "pass");
        gw_jsonw_member_string(j, "kind", f->kind);
        put_message(j, "message", f->msg);
        gw_jsonw_member_string(j, "script", f->script);
        gw_jsonw_key(j, "series");
        gw_jsonw_string_n(j, f->series.p, f->series.n);
        gw_jsonw_member_uint(j, "src", f->src);
        gw_jsonw_end(j);
    }
    gw_jsonw_end(j);
}

static void put_parse_error(gw_jsonw_t *j, const gw_result_t *r)
{
    if (!r->has_error)
        return;
    gw_jsonw_key(j, "parse_error");
    gw_jsonw_begin_object(j);
    gw_jsonw_member_uint(j, "at", r->err_where);
    gw_jsonw_member_uint(j, "count", r->rejected);
    put_message(j, "error", r->err_msg);
    gw_jsonw_member_string(j, "where", r->err_kind == GW_WHERE_BODY   ? "body"
                                      : r->err_kind == GW_WHERE_LINE ? "line"
                                                                     : "index");
    gw_jsonw_end(j);
}

static void put_rejected(gw_jsonw_t *j, const gw_trace_t *t)
{
    gw_jsonw_key(j, "rejected");
    gw_jsonw_begin_array(j);
    for (uint32_t i = 0; i < t->nrejected; i++) {
        const rejected_t *r = &t->rejected[i];
        gw_jsonw_begin_object(j);
        put_message(j, "error", r->err);
        put_scripts(j, t, r->k);
        gw_jsonw_key(j, "series");
        gw_jsonw_string_n(j, r->series.p, r->series.n);
        gw_jsonw_member_uint(j, "src", r->src);
        gw_jsonw_end(j);
    }
    gw_jsonw_end(j);
}

/* What /write would answer: its status and the members of its JSON body
 * (413: the body's error alone, as the endpoints answer it). */
static void put_verdict(gw_jsonw_t *j, int status, const gw_result_t *res)
{
    gw_jsonw_key(j, "verdict");
    gw_jsonw_begin_object(j);
    gw_jsonw_member_int(j, "status", status);
    if (status == 413)
        put_message(j, "error", res->err_msg);
    else
        gw_result_json(j, res);
    gw_jsonw_end(j);
}

int gw_trace_write(gw_trace_t *t, int status, const gw_result_t *res, const char *lines, gw_buf_t *out)
{
    gw_jsonw_t j;

    if (t->nomem)
        return -ENOMEM;
    if (t->over)
        return GW_TRACE_TOO_MANY;
    gw_jsonw_init(&j, out);
    gw_jsonw_begin_object(&j);
    put_failures(&j, t);
    if (t->parsed)
        put_parse_error(&j, &t->parse_result);
    gw_jsonw_key(&j, "points");
    gw_jsonw_begin_array(&j);
    for (uint32_t i = 0; i < t->nstored; i++)
        put_point(&j, t, &t->stored[i], lines);
    gw_jsonw_end(&j);
    put_rejected(&j, t);
    put_verdict(&j, status, res);
    gw_jsonw_end(&j);
    return gw_jsonw_finish(&j);
}
