/* typecheck.c — the field types of one request, see typecheck.h.
 *
 * Two arrays, of the request's series and of its (series, field key)
 * entries, each indexed by an open-addressing table. A table's slot holds
 * the request's generation beside the index, so that a reset is a new
 * generation, not a clearing of the tables; the hashes start from a random
 * basis, so that a client cannot choose names that pile up in one run of a
 * table. A small cache finds the series of most points without a hash.
 * Each series remembers the key entries of its previous point's fields (up
 * to SHAPE): a point with the same fields in the same order, the common
 * case, costs one type and one key comparison per field (with the series'
 * lookup and the call, about 120 instructions a point of bench-replay, 7%
 * of a line-protocol point without scripts: docs/performance.md); only a
 * point with a field its series has not had yet adds anything.
 *
 * Memory: 56 bytes a distinct series and 32 a distinct (series, key) of
 * the request, and 8 to 16 of table for each. The worst body for it, one
 * one-field line per series (`s0000001 v=1`), grew luagw's peak RSS by 357
 * bytes a line, 138 of them here (170,000 lines): inflight.c's estimate
 * for such a line, 482 bytes, still covers the whole. */
#include "typecheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lineproto.h"

/* Fields of a series' previous point remembered in order; more are looked
 * up by hash. */
#define SHAPE 8

/* No entry. */
#define NONE UINT32_MAX

/* Entries a table takes at most (its slots stay below 2^31). */
#define MAX_ENTRIES (1u << 29)

/* Series cache slots (a power of two). */
#define CACHE 16

typedef struct {
    gw_str_t name; /* borrowed: a point's series */
    uint32_t hash;
    uint32_t nshape;       /* the previous point's fields, or NONE when more than SHAPE */
    uint32_t shape[SHAPE]; /* their key entries, in order */
} series_t;

typedef struct {
    gw_str_t key;    /* borrowed: a point's field key */
    uint32_t series; /* index into series */
    uint32_t hash;
    uint32_t src;    /* the point whose type this is (gw_point_t.src) */
    int type;        /* gw_field_type_t, as written */
} fkey_t;

/* Open addressing with linear probing: a slot is taken in the current
 * request when its high half is the current generation; its low half is
 * an index into the entries. At most half full. */
typedef struct {
    uint64_t *slot; /* owned */
    uint32_t mask;  /* slots - 1; 0 before the first use */
} table_t;

struct gw_typecheck {
    series_t *series; /* owned */
    fkey_t *keys;     /* owned */
    uint32_t nseries, series_cap;
    uint32_t nkeys, keys_cap;
    table_t by_name; /* series by name */
    table_t by_key;  /* keys by series and key */
    uint32_t gen;    /* the current request's generation, never 0 */
    uint32_t seed;   /* the hashes' basis */
    uint32_t cache[CACHE]; /* series indexes by cache_of(name); any may be stale */
};

gw_typecheck_t *gw_typecheck_create(void)
{
    gw_typecheck_t *tc = calloc(1, sizeof(*tc));

    if (!tc)
        return NULL;
    tc->gen = 1;
    if (getrandom(&tc->seed, sizeof(tc->seed), GRND_NONBLOCK) != sizeof(tc->seed))
        tc->seed = (uint32_t)time(NULL) * 2654435761u;
    return tc;
}

void gw_typecheck_reset(gw_typecheck_t *tc)
{
    tc->nseries = tc->nkeys = 0;
    if (++tc->gen == 0) { /* every 2^32 requests: clear the old generations */
        if (tc->by_name.slot)
            memset(tc->by_name.slot, 0, ((size_t)tc->by_name.mask + 1) * sizeof(uint64_t));
        if (tc->by_key.slot)
            memset(tc->by_key.slot, 0, ((size_t)tc->by_key.mask + 1) * sizeof(uint64_t));
        tc->gen = 1;
    }
}

void gw_typecheck_destroy(gw_typecheck_t *tc)
{
    if (!tc)
        return;
    free(tc->series);
    free(tc->keys);
    free(tc->by_name.slot);
    free(tc->by_key.slot);
    free(tc);
}

/* FNV-1a of s, from basis, its bits mixed. */
static uint32_t hash_str(gw_str_t s, uint32_t basis)
{
    uint32_t h = basis;

    for (size_t i = 0; i < s.n; i++)
        h = (h ^ (unsigned char)s.p[i]) * 16777619u;
    return h * 2654435761u;
}

/* The cache slot of a series name (never empty: an encoded point's). */
static inline unsigned cache_of(gw_str_t name)
{
    return ((unsigned)name.n + (unsigned char)name.p[0] * 3u + (unsigned char)name.p[name.n - 1] * 5u) &
           (CACHE - 1);
}

static inline int slot_taken(const gw_typecheck_t *tc, uint64_t v)
{
    return (uint32_t)(v >> 32) == tc->gen;
}

/* Put index i, of hash h, in the first free slot of t. */
static void table_put(gw_typecheck_t *tc, table_t *t, uint32_t h, uint32_t i)
{
    uint32_t k = h & t->mask;

    while (slot_taken(tc, t->slot[k]))
        k = (k + 1) & t->mask;
    t->slot[k] = (uint64_t)tc->gen << 32 | i;
}

/* Room in t for one entry more than n: 0, or 1 when t had to be made
 * twice as large (it is then empty: the caller puts its n entries back),
 * or -ENOMEM. At most half full. */
static int table_room(table_t *t, uint32_t n)
{
    uint32_t slots = t->mask + 1;
    uint64_t *s;

    if (t->slot && (n + 1) * 2 <= slots)
        return 0;
    if (n >= MAX_ENTRIES)
        return -ENOMEM;
    slots = t->slot ? slots * 2 : 64;
    s = calloc(slots, sizeof(*s));
    if (!s)
        return -ENOMEM;
    free(t->slot);
    t->slot = s;
    t->mask = slots - 1;
    return 1;
}

/* Room in an array of *cap items of size bytes for one more than n. */
static int array_room(void **v, uint32_t *cap, uint32_t n, size_t size)
{
    uint32_t c = *cap ? *cap * 2 : 16;
    void *nv;

    if (n < *cap)
        return 0;
    if (n >= MAX_ENTRIES)
        return -ENOMEM;
    nv = realloc(*v, (size_t)c * size);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = c;
    return 0;
}

/* find_series when the cache does not have name. */
static __attribute__((noinline)) int find_series_slow(gw_typecheck_t *tc, gw_str_t name, unsigned c,
                                                      uint32_t *out)
{
    uint32_t h = hash_str(name, tc->seed), k;
    series_t *s;
    int rc;

    for (k = h & tc->by_name.mask; tc->by_name.slot && slot_taken(tc, tc->by_name.slot[k]);
         k = (k + 1) & tc->by_name.mask) {
        uint32_t i = (uint32_t)tc->by_name.slot[k];
        if (tc->series[i].hash == h && gw_str_eq(tc->series[i].name, name)) {
            *out = tc->cache[c] = i;
            return 0;
        }
    }
    if (array_room((void **)&tc->series, &tc->series_cap, tc->nseries, sizeof(series_t)) ||
        (rc = table_room(&tc->by_name, tc->nseries)) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; rc && i < tc->nseries; i++)
        table_put(tc, &tc->by_name, tc->series[i].hash, i);
    s = &tc->series[tc->nseries];
    s->name = name;
    s->hash = h;
    s->nshape = 0;
    table_put(tc, &tc->by_name, h, tc->nseries);
    *out = tc->cache[c] = tc->nseries++;
    return 0;
}

/* The index of series name, added when new. 0 or -ENOMEM. */
static inline int find_series(gw_typecheck_t *tc, gw_str_t name, uint32_t *out)
{
    unsigned c = cache_of(name);
    uint32_t i = tc->cache[c];

    if (i < tc->nseries && gw_str_eq(tc->series[i].name, name)) {
        *out = i;
        return 0;
    }
    return find_series_slow(tc, name, c, out);
}

static uint32_t key_hash(const gw_typecheck_t *tc, uint32_t series, gw_str_t key)
{
    return hash_str(key, (tc->seed ^ series) * 16777619u);
}

/* The entry of key in series si, or NONE. */
static uint32_t find_key(const gw_typecheck_t *tc, uint32_t si, gw_str_t key, uint32_t h)
{
    if (!tc->by_key.slot)
        return NONE;
    for (uint32_t k = h & tc->by_key.mask; slot_taken(tc, tc->by_key.slot[k]);
         k = (k + 1) & tc->by_key.mask) {
        uint32_t i = (uint32_t)tc->by_key.slot[k];
        const fkey_t *e = &tc->keys[i];
        if (e->hash == h && e->series == si && gw_str_eq(e->key, key))
            return i;
    }
    return NONE;
}

/* Add f (written as type) to series si. 0 with its entry in *out, or -ENOMEM. */
static int add_key(gw_typecheck_t *tc, uint32_t si, const gw_field_t *f, int type, uint32_t src,
                   uint32_t *out)
{
    uint32_t h = key_hash(tc, si, f->key);
    fkey_t *e;
    int rc;

    if (array_room((void **)&tc->keys, &tc->keys_cap, tc->nkeys, sizeof(fkey_t)) ||
        (rc = table_room(&tc->by_key, tc->nkeys)) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; rc && i < tc->nkeys; i++)
        table_put(tc, &tc->by_key, tc->keys[i].hash, i);
    e = &tc->keys[tc->nkeys];
    *e = (fkey_t){.key = f->key, .series = si, .hash = h, .src = src, .type = type};
    table_put(tc, &tc->by_key, h, tc->nkeys);
    *out = tc->nkeys++;
    return 0;
}

/* The type f is written with. */
static inline int written_type(const gw_field_t *f, unsigned lp_flags)
{
    return f->type == GW_FIELD_UINT && (lp_flags & GW_LP_NO_UINT) ? GW_FIELD_INT : f->type;
}

static const char *type_name(int type)
{
    static const char *const names[] = {"a float", "an integer", "an unsigned integer", "a string", "a boolean"};
    return type >= 0 && type <= GW_FIELD_BOOL ? names[type] : "of an unknown type";
}

/* f of p, of type, conflicts with e: the message into err; returns 1. */
static __attribute__((cold)) int conflict(const gw_point_t *p, const gw_field_t *f, int type, const fkey_t *e,
                                          int kind, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "field \"%.*s\" of series \"%.*s\" is %s, but %s at %s %u of this request (InfluxDB "
             "refuses the point: field type conflict)",
             (int)(f->key.n > 64 ? 64 : f->key.n), f->key.p, (int)(p->series.n > 64 ? 64 : p->series.n),
             p->series.p, type_name(type), type_name(e->type), kind == GW_WHERE_INDEX ? "index" : "line",
             e->src);
    return 1;
}

/* gw_typecheck_point for a point whose fields are not those of its
 * series' previous point, in that order: each found by hash. */
static __attribute__((noinline)) int check_slow(gw_typecheck_t *tc, uint32_t si, const gw_point_t *p,
                                                unsigned lp_flags, int kind, char *err, size_t errlen)
{
    uint32_t shape[SHAPE], n = p->nfields;
    int fresh = 0, rc;
    series_t *s;

    for (uint32_t i = 0; i < n; i++) {
        const gw_field_t *f = &p->fields[i];
        uint32_t e = find_key(tc, si, f->key, key_hash(tc, si, f->key));

        if (e == NONE)
            fresh = 1;
        else if (tc->keys[e].type != written_type(f, lp_flags))
            return conflict(p, f, written_type(f, lp_flags), &tc->keys[e], kind, err, errlen);
        if (i < SHAPE)
            shape[i] = e;
    }
    /* No conflict: remember the new keys, and this point's order. */
    for (uint32_t i = 0; fresh && i < n; i++) {
        const gw_field_t *f = &p->fields[i];
        uint32_t e = i < SHAPE ? shape[i] : find_key(tc, si, f->key, key_hash(tc, si, f->key));

        if (e == NONE && (rc = add_key(tc, si, f, written_type(f, lp_flags), p->src, &e)))
            return rc;
        if (i < SHAPE)
            shape[i] = e;
    }
    s = &tc->series[si];
    s->nshape = n <= SHAPE ? n : NONE;
    memcpy(s->shape, shape, (n <= SHAPE ? n : SHAPE) * sizeof(shape[0]));
    return 0;
}

int gw_typecheck_point(gw_typecheck_t *tc, const gw_point_t *p, unsigned lp_flags, int kind, char *err,
                       size_t errlen)
{
    const series_t *s;
    uint32_t si, i;
    int rc;

    if ((rc = find_series(tc, p->series, &si)))
        return rc;
    s = &tc->series[si];
    if (s->nshape != p->nfields)
        return check_slow(tc, si, p, lp_flags, kind, err, errlen);
    for (i = 0; i < p->nfields; i++) {
        const gw_field_t *f = &p->fields[i];
        const fkey_t *e = &tc->keys[s->shape[i]];
        if (e->type != written_type(f, lp_flags) || !gw_str_eq(e->key, f->key))
            return check_slow(tc, si, p, lp_flags, kind, err, errlen);
    }
    return 0;
}
