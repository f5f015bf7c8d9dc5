/* json.c — JSON ingest for POST /v1/points, see json.h.
 *
 * A streaming parse with our own validating tokenizer: no DOM, no tree. We
 * build the gw_point_t of each array element directly in the arena as its
 * tokens are read. Numbers keep their JSON text, so integer vs float is
 * decided by syntax, int64 and uint64 are exact, and integers beyond int64
 * need no second pass. Strings are read in place in the body, or unescaped
 * into the arena; whatever a point keeps is in the arena (json.h).
 *
 * Why not a library: jansson spent about 87% of a JSON ingest building and
 * freeing its DOM, and YAJL's tokenizer alone cost three times the whole
 * line-protocol parse (bench/json_choice.md has the figures). The grammar is
 * small and fixed (RFC 8259); parse_body below reads exactly it, with the
 * tokens of json_lex.h; times are read by json_time.h.
 *
 * This file: the point reader. parse_body walks the grammar over a stack of
 * frames (the open objects and arrays) and hands each token to a handler
 * (on_value, on_map_key, on_end), which builds the point its frame belongs
 * to (on_point_value, on_time, on_tag, on_field, end_point).
 *
 * The rules are jansson's, which this file used first, kept exactly:
 *  - The lexer's (json_lex.h), and nesting at most jansson's 2048 deep.
 *  - A body that is not JSON is rejected as a whole: points already built
 *    are dropped and per-point errors are forgotten. Its message says what
 *    was wrong and where: the line and column (in characters) of the first
 *    byte that is not JSON, and the text there (gw_json_body_error).
 *  - Time as a number keeps its microseconds exactly and rounds what lies
 *    beyond.
 * One difference, on purpose: jansson skips a raw NUL byte that directly
 * follows a number, true, false or null (a quirk of its lexer's pushback);
 * here any raw NUL is a body error, as it is anywhere else in JSON.
 *
 * What a point may hold is ours, as in line protocol (lineproto.h):
 *  - \u0000 is read, but a NUL byte in a series, tag or field (key or
 *    value) rejects the point;
 *  - a key repeated in "tags" or "fields" takes its last value, as JSON
 *    parsers and InfluxDB do; repeated in the point object itself (two
 *    "series"...) it rejects the point; elsewhere it does not matter;
 *  - a field named time is dropped, counted and logged, as in line
 *    protocol. */
#include "json.h"

#include "hash.h"
#include "json_lex.h"
#include "json_time.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's JSON_PARSER_MAX_DEPTH: the top-level value is at depth 1. */
#define MAX_DEPTH 2048

#define KEY_SHOW 64 /* bytes of a key or value quoted in an error message */

static int show(size_t n)
{
    return (int)(n > KEY_SHOW ? KEY_SHOW : n);
}

/* Is k the 4- or 6-byte literal w? Loads, never a call: this runs for
 * every key of every point. */
static inline __attribute__((always_inline)) int key_is(gw_str_t k, const char *w, size_t n)
{
    uint32_t a, b;
    uint16_t c, d;

    if (k.n != n)
        return 0;
    memcpy(&a, k.p, 4);
    memcpy(&b, w, 4);
    if (a != b || n == 4)
        return a == b;
    memcpy(&c, k.p + 4, 2);
    memcpy(&d, w + 4, 2);
    return c == d;
}
#define KEY_IS(k, w) key_is((k), (w), sizeof(w) - 1)

/* ---- the parse state ---------------------------------------------------- */

/* What the innermost open value is, as a frame on our stack. */
enum {
    F_TOP = 0, /* before the top-level value (fr[0], always there) */
    F_ARRAY,   /* the top-level array: each element is a point */
    F_POINT,   /* a point object */
    F_TAGS,    /* a point's "tags" object */
    F_FIELDS,  /* a point's "fields" object */
    F_SKIP,    /* any other object or array: read, checked, dropped */
};

/* Which key of a point the next value belongs to. */
enum { K_NONE = 0, K_SERIES, K_TIME, K_TAGS, K_FIELDS };

/* Kinds of JSON value, for dispatch and for "null is not a ..." messages. */
enum { V_NULL = 0, V_BOOL, V_NUM, V_STR, V_MAP, V_ARR };

typedef struct {
    uint8_t kind;   /* F_* */
    uint8_t is_map; /* an object: keys[kbase..nkeys) are its keys so far */
    uint32_t kbase;
    uint64_t seen;  /* a bit per key (key_bit): a key whose bit is clear is new */
} frame_t;

/* The tags (or fields) of the current point, built in place in the arena:
 * the items from start to cur, in a block with room up to end. */
typedef struct {
    char *start; /* borrowed (arena) */
    char *cur;
    char *end;
} run_t;

/* A growable array of fixed-size items, malloc'd, freed by the parse. */
typedef struct {
    void *v; /* owned */
    uint32_t n;
    uint32_t cap;
} vec_t;

typedef struct {
    gw_result_t *res; /* borrowed */
    gw_points_t *out; /* borrowed */
    int64_t now_ns;

    vec_t fr;         /* frame_t: open values, fr[0] is F_TOP */
    frame_t *frame;   /* borrowed: the innermost, &fr[fr.n - 1] */
    vec_t keys;       /* gw_str_t: keys of the open objects (borrow body or arena) */
    run_t tags;       /* gw_tag_t: the current point's tags so far */
    run_t fields;     /* gw_field_t: the current point's fields so far */

    gw_point_t pt;    /* the point being built */
    int rejected;     /* pt is rejected: read the rest of it, keep nothing */
    int has_series;
    int has_time;
    int pkey;         /* K_*: the point key whose value comes next */
    gw_str_t key;     /* the tag or field key whose value comes next (body or arena) */
    int key_again;    /* ... appeared before in its object */
    int drop_field;   /* ... is time: its value is dropped */
    int run_dups;     /* the open "tags" or "fields" object repeats a key */
    uint32_t time_dropped; /* fields named time dropped from the current point */
    uint32_t index;   /* of the point being parsed */
    uint32_t nelem;   /* elements of the top-level array seen */
    int top;          /* V_*: kind of a top-level scalar, -1 when none */

    uint32_t *kset;   /* owned: hash index of the keys of big objects (see key_seen) */
    uint32_t kset_cap;
    uint32_t kset_used;

    gw_json_lex_t lx; /* the body, the token, the arena, a body error; its str_nul
                         is reset when a point begins: a string of the point
                         holding a NUL byte (\u0000) rejects the point where it
                         lands (a string read without a check rejects it anyway) */
} parse_t;

static __attribute__((noinline)) int vec_grow(vec_t *v, size_t size)
{
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    void *nv = realloc(v->v, (size_t)cap * size);

    if (!nv)
        return -ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

static inline void *vec_push(vec_t *v, size_t size)
{
    if (v->n == v->cap && vec_grow(v, size))
        return NULL;
    return (char *)v->v + (size_t)v->n++ * size;
}

#define FRAME(ps) ((ps)->frame)

/* Room for one more item in r, in a new block (with r's items moved there)
 * when the current one is full. 0 or -ENOMEM. */
static __attribute__((noinline)) int run_grow(parse_t *ps, run_t *r, size_t size)
{
    size_t used = (size_t)(r->cur - r->start), cap = used * 2 > 64 * size ? used * 2 : 64 * size;
    char *b = gw_arena_alloc(ps->lx.a, cap);

    if (!b)
        return -ENOMEM;
    if (used)
        memcpy(b, r->start, used);
    r->start = b;
    r->cur = b + used;
    r->end = b + cap;
    return 0;
}

static inline void *run_push(parse_t *ps, run_t *r, size_t size)
{
    char *p;

    if ((size_t)(r->end - r->cur) < size && run_grow(ps, r, size))
        return NULL;
    p = r->cur;
    r->cur = p + size;
    return p;
}

/* The items of r as an array, NULL when none; and their number. */
static inline void *run_take(const run_t *r, size_t size, uint32_t *n)
{
    *n = (uint32_t)((size_t)(r->cur - r->start) / size);
    return *n ? r->start : NULL;
}

/* Stop the parse at the current token: the body is not JSON, for the
 * reason why (gw_json_body_error says where, and quotes the text there).
 * Returns 0, what a handler returns to stop. Cold, like every error path
 * here: kept out of the lexers' code, the JSON parse costs some 45
 * instructions a point less. */
static __attribute__((cold, noinline)) int body_bad(parse_t *ps, const char *why)
{
    bad_at(&ps->lx, ps->lx.tok, why);
    return 0;
}

static int out_of_memory(parse_t *ps)
{
    return no_memory(&ps->lx);
}

/* Reject the current point (once) and read on. Returns 1, the handler
 * return for "go on". */
__attribute__((format(printf, 2, 3))) static int reject(parse_t *ps, const char *fmt, ...)
{
    char msg[sizeof(ps->res->err_msg)];
    va_list ap;

    ps->rejected = 1;
    if (!gw_result_wants_msg(ps->res, ps->index)) {
        gw_result_reject(ps->res, GW_WHERE_INDEX, ps->index, "%s", "");
        return 1;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_result_reject(ps->res, GW_WHERE_INDEX, ps->index, "%s", msg);
    return 1;
}

/* A name or value of the point holds a NUL byte (\u0000): "tags.k: the
 * value holds a NUL byte...". Out of line: the handlers are inlined many
 * times. Returns 1. */
static __attribute__((noinline)) int reject_nul(parse_t *ps, const char *where, gw_str_t key,
                                                const char *what)
{
    return reject(ps, "%s%.*s: %s holds a NUL byte (\\u0000), which luagw refuses", where,
                  show(key.n), key.p, what);
}

/* "null is not a field value", "an object is not a tag value"... */
static const char *what(int kind)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string",
                                        "an object", "an array"};
    return names[kind];
}

/* ---- time values ------------------------------------------------------- */

static int on_time(parse_t *ps, int kind, gw_json_num_t *num, const char *s, size_t n)
{
    int64_t *ns = &ps->pt.time_ns;
    const char *why;
    int rc;

    ps->has_time = 1;
    switch (kind) {
    case V_NUM:
        if (num->big)
            return reject(ps, "time: %.*s is " TIME_RANGE, show(num->n), num->t);
        if (num->is_int) {
            if (!__builtin_mul_overflow(num->i, NS_PER_SEC, ns))
                return 1;
            return reject(ps, "time: %" PRId64 " is " TIME_RANGE, num->i);
        }
        if (!gw_json_text_ns(num, ns))
            return 1;
        if (real_of(&ps->lx, num))
            return 0;
        if (!gw_json_real_ns(num->d, ns))
            return 1;
        return reject(ps, "time: %.17g is " TIME_RANGE, num->d);
    case V_STR:
        rc = gw_json_rfc3339_ns(s, n, ns, &why);
        if (rc == -2)
            return reject(ps, "time: \"%.*s\" is " TIME_RANGE, show(n), s);
        if (rc)
            return reject(ps, "time: \"%.*s\" is not an RFC 3339 time: %s", show(n), s, why);
        return 1;
    case V_NULL:
        return reject(ps, "time: null is not a time (leave the key out for the time of receipt)");
    default:
        return reject(ps, "time: %s is not a time (Unix seconds or an RFC 3339 string)",
                      what(kind));
    }
}

/* ---- tag and field values ---------------------------------------------- */

static inline __attribute__((always_inline)) int on_tag(parse_t *ps, int kind, gw_json_num_t *num, const char *s, size_t n, int b)
{
    gw_str_t val;
    gw_tag_t *t;
    char buf[32];

    switch (kind) {
    case V_STR:
        val = (gw_str_t){s, n};
        break;
    case V_NUM:
        if (num->big) {
            val = (gw_str_t){num->t, num->n}; /* the JSON text, as for any number */
        } else if (num->is_int) {
            /* An integer token is already the text of its value, but "-0". */
            val = num->i == 0 ? GW_STR_LIT("0") : (gw_str_t){num->t, num->n};
        } else {
            if (real_of(&ps->lx, num))
                return 0;
            val = (gw_str_t){buf, gw_json_real_text(num->d, buf, sizeof(buf))};
        }
        break;
    case V_BOOL:
        val = b ? GW_STR_LIT("true") : GW_STR_LIT("false");
        break;
    default:
        return reject(ps, "tags.%.*s: %s is not a tag value (string, number or boolean)",
                      show(ps->key.n), ps->key.p, what(kind));
    }
    if (kind == V_STR && ps->lx.str_nul)
        return reject_nul(ps, "tags.", ps->key, "the value");
    /* Influx has no empty tag values: "" means the tag is absent; after the
     * same key, kept as a mark that drops the earlier value (on_end). */
    if (val.n == 0 && !ps->key_again)
        return 1;
    if ((val.p == buf ? dup_str(&ps->lx, buf, val.n, &val) : keep_str(&ps->lx, &val)) ||
        !(t = run_push(ps, &ps->tags, sizeof(*t))))
        return out_of_memory(ps);
    t->key = ps->key;
    t->val = val;
    if (keep_str(&ps->lx, &t->key))
        return out_of_memory(ps);
    return 1;
}

static inline __attribute__((always_inline)) int on_field(parse_t *ps, int kind, gw_json_num_t *num, const char *s, size_t n, int b)
{
    gw_field_t f = {0}, *fp;

    switch (kind) {
    case V_STR:
        if (ps->lx.str_nul)
            return reject_nul(ps, "fields.", ps->key, "the value");
        f.type = GW_FIELD_STRING;
        f.v.s = (gw_str_t){s, n};
        if (keep_str(&ps->lx, &f.v.s))
            return out_of_memory(ps);
        break;
    case V_NUM:
        if (num->big) {
            if (gw_json_text_u64((gw_str_t){num->t, num->n}, &f.v.u))
                return reject(ps, "fields.%.*s: %.*s is out of range (int64 or uint64)",
                              show(ps->key.n), ps->key.p, show(num->n), num->t);
            f.type = GW_FIELD_UINT;
        } else if (num->is_int) {
            f.type = GW_FIELD_INT;
            f.v.i = num->i;
        } else {
            if (real_of(&ps->lx, num))
                return 0;
            f.type = GW_FIELD_FLOAT;
            f.v.f = num->d;
        }
        break;
    case V_BOOL:
        f.type = GW_FIELD_BOOL;
        f.v.b = b;
        break;
    default:
        return reject(ps, "fields.%.*s: %s is not a field value (number, string or boolean)",
                      show(ps->key.n), ps->key.p, what(kind));
    }
    if (ps->drop_field) { /* time: InfluxDB drops it */
        ps->time_dropped++;
        return 1;
    }
    f.key = ps->key;
    if (keep_str(&ps->lx, &f.key) || !(fp = run_push(ps, &ps->fields, sizeof(*fp))))
        return out_of_memory(ps);
    *fp = f;
    return 1;
}

/* ---- points ------------------------------------------------------------- */

static void begin_point(parse_t *ps)
{
    memset(&ps->pt, 0, sizeof(ps->pt));
    ps->rejected = 0;
    ps->has_series = 0;
    ps->has_time = 0;
    ps->pkey = K_NONE;
    ps->time_dropped = 0;
    ps->lx.str_nul = 0;
}

/* The time field of a point is dropped, as InfluxDB does without a word:
 * here it is counted (luagw_time_fields_dropped_total) and logged. */
static void note_time_dropped(parse_t *ps)
{
    static gw_log_limit_t lim = GW_LOG_LIMIT_INIT;

    GW_COUNT(time_fields_dropped, ps->time_dropped);
    if (gw_log_enabled(GW_LOG_WARN))
        gw_log_limited(&lim, 10, GW_LOG_WARN, "dropped a field named time, as InfluxDB does",
                       "format=json index=%u series=\"%.*s\"", ps->index, show(ps->pt.series.n),
                       ps->pt.series.p);
}

static int end_point(parse_t *ps)
{
    gw_point_t *p;

    if (ps->rejected)
        return 1;
    if (!ps->has_series)
        return reject(ps, "series: missing (a point needs a non-empty string \"series\")");
    if (!ps->has_time)
        ps->pt.time_ns = ps->now_ns;
    if (ps->time_dropped)
        note_time_dropped(ps);
    ps->pt.src = ps->index;
    if (!(p = gw_points_push(ps->out)))
        return out_of_memory(ps);
    *p = ps->pt;
    return 1;
}

static inline __attribute__((always_inline)) int on_point_value(parse_t *ps, int kind, gw_json_num_t *num, const char *s, size_t n,
                          frame_t *push)
{
    switch (ps->pkey) {
    case K_SERIES:
        if (kind != V_STR)
            return reject(ps, "series: %s is not a series name (a non-empty string)",
                          what(kind));
        if (n == 0)
            return reject(ps, "series: must not be empty");
        if (ps->lx.str_nul)
            return reject_nul(ps, "series", GW_STR_LIT(""), "the name");
        ps->pt.series = (gw_str_t){s, n};
        if (keep_str(&ps->lx, &ps->pt.series))
            return out_of_memory(ps);
        ps->has_series = 1;
        return 1;
    case K_TIME:
        return on_time(ps, kind, num, s, n);
    case K_TAGS:
    case K_FIELDS:
        if (kind == V_NULL)
            return 1; /* what Go and others write for an empty map */
        if (kind != V_MAP)
            return ps->pkey == K_TAGS
                       ? reject(ps, "tags: %s is not an object of tags", what(kind))
                       : reject(ps, "fields: %s is not an object of fields", what(kind));
        push->kind = ps->pkey == K_TAGS ? F_TAGS : F_FIELDS;
        ps->run_dups = 0;
        if (ps->pkey == K_TAGS)
            ps->tags.start = ps->tags.cur;
        else
            ps->fields.start = ps->fields.cur;
        return 1;
    }
    return 1; /* K_NONE: cannot happen, a key comes first */
}

/* ---- handlers, one per token --------------------------------------------- */

/* Every value goes through here: kind, and its number, string or boolean.
 * Returns 1 to go on, 0 to stop the parse. */
static inline __attribute__((always_inline)) int on_value(parse_t *ps, int kind, gw_json_num_t *num, const char *s, size_t n, int b)
{
    frame_t *f = FRAME(ps), push = {F_SKIP, kind == V_MAP, 0, 0};

    if (ps->fr.n > MAX_DEPTH)
        return body_bad(ps, "nested deeper than 2048 arrays and objects (maximum parsing depth reached)");
    switch (f->kind) {
    case F_TOP:
        if (kind == V_MAP) {
            begin_point(ps);
            push.kind = F_POINT;
        } else if (kind == V_ARR) {
            push.kind = F_ARRAY;
        } else {
            ps->top = kind; /* judged once the whole body is known to be JSON */
        }
        break;
    case F_ARRAY:
        ps->index = ps->nelem++;
        if (kind == V_MAP) {
            begin_point(ps);
            push.kind = F_POINT;
        } else {
            reject(ps, "a point must be an object, not %s", what(kind));
        }
        break;
    case F_POINT:
        if (!ps->rejected)
            on_point_value(ps, kind, num, s, n, &push);
        break;
    case F_TAGS:
        if (!ps->rejected)
            on_tag(ps, kind, num, s, n, b);
        break;
    case F_FIELDS:
        if (!ps->rejected)
            on_field(ps, kind, num, s, n, b);
        break;
    default:
        break;
    }
    if (ps->lx.err)
        return 0;
    if (kind == V_MAP || kind == V_ARR) {
        frame_t *nf = vec_push(&ps->fr, sizeof(*nf));
        if (!nf)
            return out_of_memory(ps);
        push.kbase = ps->keys.n;
        *nf = push;
        ps->frame = nf;
    }
    return 1;
}

/* ---- duplicate keys ------------------------------------------------------ */

/* An object's keys so far are keys[kbase..keys.n). Up to KSET_FROM of them,
 * a linear scan finds a duplicate; past that (a client can send a million
 * keys in one object) they also go into kset, an open-addressing table of
 * 1 + their index in keys. Entries are never removed: one is valid when its
 * index lies in [kbase, keys.n), that is, in the current object, and its key
 * matches. Stale ones are dropped when the table is rebuilt. */
#define KSET_FROM 16

/* One of 64 bits for a key, from its length and its first and last bytes
 * (length and last byte alone mix up "series" and "fields"). */
static inline uint64_t key_bit(gw_str_t k)
{
    unsigned h = k.n ? (unsigned char)k.p[0] + (unsigned char)k.p[k.n - 1] * 5u : 0;

    return (uint64_t)1 << ((h + (unsigned)k.n * 11u) & 63);
}

static void kset_put(parse_t *ps, uint32_t j)
{
    const gw_str_t *k = &((gw_str_t *)ps->keys.v)[j];
    uint32_t mask = ps->kset_cap - 1, i = (uint32_t)gw_hash(k->p, k->n) & mask;

    while (ps->kset[i])
        i = (i + 1) & mask;
    ps->kset[i] = j + 1;
    ps->kset_used++;
}

/* Make room for one more entry: rebuild with the keys of every open object
 * that is in the table (it has more than KSET_FROM keys), plus the range
 * [from, to) of the current one when it is just joining. 0 or -ENOMEM. */
static int kset_room(parse_t *ps, uint32_t from, uint32_t to)
{
    const frame_t *fr = ps->fr.v;
    uint32_t live = to - from, cap = 64, *t;

    if ((ps->kset_used + live + 1) * 2 <= ps->kset_cap)
        return 0;
    /* An open object's keys end where the next open object's begin. */
    for (uint32_t i = ps->fr.n, end = ps->keys.n; i-- > 0;) {
        if (!fr[i].is_map)
            continue;
        if (end - fr[i].kbase > KSET_FROM)
            live += end - fr[i].kbase;
        end = fr[i].kbase;
    }
    while (cap < (live + 1) * 4)
        cap *= 2;
    if (!(t = calloc(cap, sizeof(*t))))
        return -ENOMEM;
    free(ps->kset);
    ps->kset = t;
    ps->kset_cap = cap;
    ps->kset_used = 0;
    for (uint32_t i = ps->fr.n, end = ps->keys.n; i-- > 0;) {
        if (!fr[i].is_map)
            continue;
        if (end - fr[i].kbase > KSET_FROM)
            for (uint32_t j = fr[i].kbase; j < end; j++)
                kset_put(ps, j);
        end = fr[i].kbase;
    }
    return 0;
}

/* key_seen for an object with KSET_FROM keys or more so far. */
static __attribute__((noinline)) int key_seen_many(parse_t *ps, frame_t *f, gw_str_t k)
{
    const gw_str_t *ks = ps->keys.v;
    uint32_t cnt = ps->keys.n - f->kbase, n = ps->keys.n;
    gw_str_t *kp;

    if (cnt <= KSET_FROM) {
        for (uint32_t i = f->kbase; i < n; i++)
            if (ks[i].n == k.n && memcmp(ks[i].p, k.p, k.n) == 0)
                return 1;
    } else {
        uint32_t mask = ps->kset_cap - 1, i = (uint32_t)gw_hash(k.p, k.n) & mask;
        for (; ps->kset[i]; i = (i + 1) & mask) {
            uint32_t j = ps->kset[i] - 1;
            if (j >= f->kbase && j < n && ks[j].n == k.n && memcmp(ks[j].p, k.p, k.n) == 0)
                return 1;
        }
    }
    /* Joining the table at KSET_FROM + 1 keys: put the first ones in too. */
    if (cnt >= KSET_FROM && kset_room(ps, cnt == KSET_FROM ? f->kbase : 0,
                                      cnt == KSET_FROM ? n : 0))
        return -ENOMEM;
    if (!(kp = vec_push(&ps->keys, sizeof(*kp))))
        return -ENOMEM;
    *kp = k;
    if (cnt == KSET_FROM)
        for (uint32_t j = f->kbase; j < n; j++)
            kset_put(ps, j);
    if (cnt >= KSET_FROM)
        kset_put(ps, n);
    return 0;
}

/* Has the current object f a key k already? Then 1; else records k and
 * returns 0; or -ENOMEM. */
static inline int key_seen(parse_t *ps, frame_t *f, gw_str_t k)
{
    const gw_str_t *ks = ps->keys.v;
    uint32_t n = ps->keys.n;
    uint64_t bit;
    gw_str_t *kp;

    if (n - f->kbase >= KSET_FROM)
        return key_seen_many(ps, f, k);
    /* A one-word filter first: the keys of a point, of its tags and of its
     * fields rarely share a bit, so most keys need no compare. */
    bit = key_bit(k);
    if (f->seen & bit) {
        for (uint32_t i = f->kbase; i < n; i++)
            if (ks[i].n == k.n && memcmp(ks[i].p, k.p, k.n) == 0)
                return 1;
    }
    f->seen |= bit;
    if (!(kp = vec_push(&ps->keys, sizeof(*kp))))
        return -ENOMEM;
    *kp = k;
    return 0;
}

/* A key k of the innermost object (in the body or the arena, so it lasts).
 * Returns 1 to go on, 0 to stop the parse. */
static inline __attribute__((always_inline)) int on_map_key(parse_t *ps, gw_str_t k)
{
    frame_t *f = FRAME(ps);
    size_t n = k.n;
    int again;

    if ((again = key_seen(ps, f, k)) < 0)
        return out_of_memory(ps);
    if (ps->rejected)
        return 1;
    if (ps->lx.str_nul)
        return reject_nul(ps, f->kind == F_TAGS ? "tags" : f->kind == F_FIELDS ? "fields" : "point",
                          GW_STR_LIT(""), "a key");
    switch (f->kind) {
    case F_POINT:
        if (again)
            return reject(ps, "%.*s: the key appears twice in the point", show(n), k.p);
        if (KEY_IS(k, "series"))
            ps->pkey = K_SERIES;
        else if (KEY_IS(k, "time"))
            ps->pkey = K_TIME;
        else if (KEY_IS(k, "tags"))
            ps->pkey = K_TAGS;
        else if (KEY_IS(k, "fields"))
            ps->pkey = K_FIELDS;
        else
            reject(ps, "%.*s: unknown key (a point has series, time, tags and fields)", show(n),
                   k.p);
        break;
    case F_TAGS:
        if (KEY_IS(k, "time"))
            return reject(ps, "tags.time: InfluxDB cannot store a tag named time");
        /* fall through */
    case F_FIELDS:
        ps->key = k;
        ps->key_again = again;
        ps->run_dups |= again;
        ps->drop_field = f->kind == F_FIELDS && KEY_IS(k, "time");
        break;
    }
    return 1;
}

/* Fold the repeated keys of the "tags" or "fields" object that ends (its
 * items in r): a key keeps its last value (gw_keep_last), and a tag whose
 * last value is empty is no tag. 0, or -1 (ENOMEM, noted in ps). */
static __attribute__((noinline)) int keep_last(parse_t *ps, run_t *r, size_t size)
{
    uint32_t n = (uint32_t)((size_t)(r->cur - r->start) / size), bad, k = 0;
    long kept = gw_keep_last(r->start, n, size, ps->lx.a, NULL, &bad);

    if (kept < 0) {
        out_of_memory(ps);
        return -1;
    }
    if (size == sizeof(gw_tag_t)) {
        gw_tag_t *t = (gw_tag_t *)(void *)r->start;
        for (long i = 0; i < kept; i++)
            if (t[i].val.n)
                t[k++] = t[i];
        kept = k;
    }
    r->cur = r->start + (size_t)kept * size;
    return 0;
}

/* The innermost object or array ends. Returns 1 to go on, 0 to stop. */
static int on_end(parse_t *ps)
{
    frame_t f = *FRAME(ps);

    ps->frame = &((frame_t *)ps->fr.v)[--ps->fr.n - 1];
    if (f.is_map)
        ps->keys.n = f.kbase;
    switch (f.kind) {
    case F_POINT:
        end_point(ps);
        break;
    case F_TAGS:
        if (!ps->rejected && !(ps->run_dups && keep_last(ps, &ps->tags, sizeof(gw_tag_t))))
            ps->pt.tags = run_take(&ps->tags, sizeof(gw_tag_t), &ps->pt.ntags);
        break;
    case F_FIELDS:
        if (!ps->rejected && !(ps->run_dups && keep_last(ps, &ps->fields, sizeof(gw_field_t))))
            ps->pt.fields = run_take(&ps->fields, sizeof(gw_field_t), &ps->pt.nfields);
        break;
    }
    return !ps->lx.err;
}

/* ---- the body ----------------------------------------------------------- */

/* JSON's white space, as switch cases. */
#define CASE_WS \
    case ' ':   \
    case '\t':  \
    case '\n':  \
    case '\r'

/* A member's key at p and the ':' after it, white space allowed before
 * each; why says what was expected when no key is there. The key goes to
 * on_map_key. Returns the position past the ':', or NULL when the parse
 * stopped. */
static inline __attribute__((always_inline)) const char *read_key(parse_t *ps, const char *p, const char *e,
                                                                  const char *why)
{
    gw_str_t s;

    if (p == e || *p != '"') {
        p = skip_ws(p, e);
        if (p == e || *p != '"')
            return bad_at(&ps->lx, p, why);
    }
    ps->lx.tok = p;
    if (!(p = lex_string(&ps->lx, p, &s)) || !on_map_key(ps, s))
        return NULL;
    if (p == e || *p != ':') {
        p = skip_ws(p, e);
        if (p == e || *p != ':')
            return bad_at(&ps->lx, p, "expected ':' after a key");
    }
    return p + 1;
}

/* The grammar (RFC 8259) as a loop over the frame stack, calling the
 * handlers above for each token, in three phases: a value, what follows a
 * value (',', the end of its object or array, or of the body), and an
 * object's first member; a member's key is read by read_key. White space
 * is rare in what clients send, so it is a case of each switch rather than
 * a skip before every token. Returns 0, or -1 when the parse stopped (a body
 * error or ENOMEM, in ps->lx.err). */
static int parse_body(parse_t *ps)
{
    const char *p = ps->lx.body, *e = p + ps->lx.len, *why;
    gw_str_t s;
    gw_json_num_t num;

value:
    ps->lx.tok = p;
    if (p == e) {
        why = WANT_VALUE;
        goto syntax;
    }
    switch (*p) {
    CASE_WS:
        p = skip_ws(p + 1, e);
        goto value;
    case '{':
        if (!on_value(ps, V_MAP, NULL, NULL, 0, 0))
            return -1;
        p++;
        goto first_key;
    case '[':
        if (!on_value(ps, V_ARR, NULL, NULL, 0, 0))
            return -1;
        p = skip_ws(p + 1, e);
        if (p < e && *p == ']') {
            p++;
            goto close;
        }
        goto value;
    case '"':
        if (!(p = lex_string(&ps->lx, p, &s)) || !on_value(ps, V_STR, NULL, s.p, s.n, 0))
            return -1;
        break;
    case 't':
    case 'f':
        if (e - p >= 4 && memcmp(p, "true", 4) == 0)
            p += 4;
        else if (e - p >= 5 && memcmp(p, "false", 5) == 0)
            p += 5;
        else
            goto bad_literal;
        if (!on_value(ps, V_BOOL, NULL, NULL, 0, *ps->lx.tok == 't'))
            return -1;
        break;
    case 'n':
        if (e - p < 4 || memcmp(p, "null", 4) != 0)
            goto bad_literal;
        p += 4;
        if (!on_value(ps, V_NULL, NULL, NULL, 0, 0))
            return -1;
        break;
    default:
        if (!(p = lex_number(&ps->lx, p, &num)) || !on_value(ps, V_NUM, &num, NULL, 0, 0))
            return -1;
        break;
    }
next: /* after a value */
    if (ps->fr.n == 1) {
        /* The top-level value: only white space may follow. */
        p = skip_ws(p, e);
        if (p == e)
            return 0;
        why = "expected the end of the body after its value";
        goto syntax;
    }
    /* At the end, NUL stands for "nothing": neither ends anything. */
    switch (p < e ? *p : '\0') {
    CASE_WS:
        p = skip_ws(p + 1, e);
        goto next;
    case ',':
        p++;
        if (FRAME(ps)->is_map && !(p = read_key(ps, p, e, "expected a key (a string) after ','")))
            return -1;
        goto value;
    case '}':
        if (!FRAME(ps)->is_map)
            goto want_more;
        p++;
        goto close;
    case ']':
        if (FRAME(ps)->is_map)
            goto want_more;
        p++;
        goto close;
    default:
        goto want_more;
    }
close:
    if (!on_end(ps))
        return -1;
    goto next;
first_key: /* just after '{': a key or '}' */
    p = skip_ws(p, e);
    if (p < e && *p == '}') {
        p++;
        goto close;
    }
    if (!(p = read_key(ps, p, e, "expected a key (a string) or '}'")))
        return -1;
    goto value;
bad_literal:
    why = "invalid literal (true, false or null expected)";
    goto syntax;
want_more:
    why = FRAME(ps)->is_map ? "expected ',' or '}' after a value in an object"
                            : "expected ',' or ']' after a value in an array";
syntax:
    bad_at(&ps->lx, p, why);
    return -1;
}

/* See json.h: points go to out (strings in a), rejections to res; a body
 * that is not JSON adds no points and one GW_WHERE_BODY error. Returns 0 or
 * -ENOMEM. */
int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,
                  gw_points_t *out, gw_result_t *res)
{
    parse_t ps = {.lx = {.body = body, .len = len, .a = a}, .res = res, .out = out,
                  .now_ns = now_ns, .top = -1};
    gw_result_t res0 = *res; /* to forget per-point errors if the body is bad */
    uint32_t n0 = out->n;     /* to drop this body's points if it is bad */
    frame_t *top;
    int rc = 0;

    if (len == 0) {
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body is empty (expected a point object or an array of them)");
        return 0;
    }
    if (!(top = vec_push(&ps.fr, sizeof(*top)))) {
        rc = -ENOMEM;
        goto done;
    }
    *top = (frame_t){F_TOP, 0, 0, 0};
    ps.frame = top;
    if (parse_body(&ps)) {
        if (ps.lx.err < 0) {
            rc = ps.lx.err;
            goto done;
        }
        out->n = n0;
        *res = res0;
        gw_json_body_error(body, len, res, ps.lx.why, ps.lx.why_at);
        goto done;
    }
    if (ps.top >= 0)
        gw_result_reject(res, GW_WHERE_BODY, 0,
                         "the body must be a point object or an array of them, not %s",
                         what(ps.top));
done:
    free(ps.fr.v);
    free(ps.keys.v);
    free(ps.kset);
    return rc;
}

/* ---- one member of a small document -------------------------------------- */

/* Skip the value at p, up to the ',' or '}' after it at the level where it
 * began, which is returned (NULL at the end or a bad string). Strings are
 * read whole, so their brackets and commas do not count. */
static const char *skip_value(gw_json_lex_t *lx, const char *p)
{
    const char *e = lx->body + lx->len;
    gw_str_t s;
    int depth = 0;

    for (;;) {
        p = skip_ws(p, e);
        if (p == e)
            return NULL;
        if (*p == '"') {
            if (!(p = lex_string(lx, p, &s)))
                return NULL;
            continue;
        }
        if ((*p == ',' || *p == '}' || *p == ']') && depth == 0)
            return p;
        depth += *p == '{' || *p == '[';
        depth -= *p == '}' || *p == ']';
        p++;
    }
}

int gw_json_member_string(const char *doc, size_t len, const char *key, gw_arena_t *a, gw_str_t *out)
{
    gw_json_lex_t lx = {.body = doc, .len = len, .a = a};
    const char *e = doc + len, *p = skip_ws(doc, e);
    gw_str_t want = {key, strlen(key)}, k;

    if (p == e || *p != '{')
        return -1;
    for (p = skip_ws(p + 1, e); p < e && *p == '"'; p = skip_ws(p + 1, e)) {
        if (!(p = lex_string(&lx, p, &k)))
            break;
        p = skip_ws(p, e);
        if (p == e || *p != ':')
            break;
        p = skip_ws(p + 1, e);
        if (p < e && *p == '"' && gw_str_eq(k, want))
            return lex_string(&lx, p, out) ? 0 : lx.err < 0 ? lx.err : -1;
        if (!(p = skip_value(&lx, p)) || *p != ',')
            break;
    }
    return lx.err < 0 ? lx.err : -1;
}
