/* memo.h — a worker's memo cache: what a memoized script chain did to a
 * point of a given shape, applied again in C to every later point of that
 * shape without entering Lua (docs/scripts.md, "memo").
 *
 * The key of a point is its shape: the chain, the series, the tags (keys
 * and values, in order), the field keys (in order). Encoded with a length
 * before every name it cannot collide: two shapes give the same bytes
 * only when they are the same shape, and a lookup compares the whole key,
 * not only its hash. A clean line-protocol point (point.h) gives its series
 * and tags as the line's own text instead, one slice (memo.c build_key).
 * The request's token name and database (req.token, req.db: docs/outputs.md)
 * close every key, so a memoized script may read them; req.client, req.rp
 * and req.path are not in the key (a script reading them is not pure in
 * this sense: memo_verify finds it). params are not in the key: the cache
 * is cleared whenever the worker takes a new script set.
 *
 * The effect recorded for a key is the output point: each tag either one
 * of the input's (by index) or a constant, each field likewise (an input
 * field the script changed makes the key uncacheable), or "dropped". Its
 * tags are kept sorted by key, the order the encoder writes them in. The
 * entry of a clean line's key also holds, from its first hit on, its
 * output's line text made in advance (the series and tags, the added
 * fields: point.h, GW_LP_CLEAN_PRE), which the encoder copies for a hit.
 * A key whose run changed the series or the time, fanned out, or changed a
 * field's value is recorded as uncacheable: its points always run the
 * script. A run that failed is not recorded.
 *
 * Bounded: at most max_entries keys (clock eviction: an entry hit since the
 * hand last passed survives one more round). An entry's strings belong to
 * the cache; an output point may point into an entry evicted during the
 * same run, so evicted entries are freed only at the next gw_memo_reap
 * (the start of the worker's next run). Not thread-safe: one per worker.
 * Counters are per worker and added to the process-wide ones (/metrics)
 * by gw_memo_flush. */
#ifndef GW_MEMO_H
#define GW_MEMO_H

#include <stdint.h>

#include "point.h"

typedef struct gw_memo gw_memo_t;

/* What gw_memo_lookup found for a point. */
enum {
    GW_MEMO_HIT = 0,     /* answer it with gw_memo_apply */
    GW_MEMO_MISS,        /* run the script, then gw_memo_learn */
    GW_MEMO_UNCACHEABLE, /* run the script; nothing to learn */
    GW_MEMO_VERIFY,      /* a hit chosen for checking: run the script, then gw_memo_verify */
};

typedef struct {
    uint64_t hits;        /* points answered from the cache (verified ones not included) */
    uint64_t misses;      /* points whose key was not cached (the script ran) */
    uint64_t uncacheable; /* points whose key is uncacheable (the script ran) */
    uint64_t evictions;   /* entries evicted to make room */
    uint64_t verified;    /* cached points run anyway to check them (scripts.memo_verify) */
    uint64_t mismatches;  /* of those, the ones whose run disagreed */
} gw_memo_stats_t;

/* A cache of at most max_entries keys (>= 1); verify: check a sample of
 * hits (gw_memo_lookup). NULL on ENOMEM. */
gw_memo_t *gw_memo_create(uint32_t max_entries, int verify);
void gw_memo_destroy(gw_memo_t *m); /* NULL is a no-op */

/* Its capacity and verify flag, as created. */
uint32_t gw_memo_capacity(const gw_memo_t *m);
int gw_memo_verifying(const gw_memo_t *m);

/* Forget every entry (a new script set). Between runs only. */
void gw_memo_clear(gw_memo_t *m);

/* Free the entries evicted during the last run. Between runs only. */
void gw_memo_reap(gw_memo_t *m);

/* Look up point p of chain cid (GW_MEMO_*). A hit's entry is what
 * gw_memo_apply needs; it stays valid until the next gw_memo_reap.
 * Returns -ENOMEM when the key cannot be built. */
typedef struct gw_memo_entry gw_memo_entry_t;
int gw_memo_lookup(gw_memo_t *m, uint16_t cid, const gw_point_t *p, const gw_memo_entry_t **e);

/* The request the next lookups and learns are for: its token name and
 * database (n 0: none), copied into the end of every key. 0 or -ENOMEM. */
int gw_memo_set_req(gw_memo_t *m, gw_str_t token, gw_str_t db);

/* The tags and fields of the point entry e makes (0, 0 for a drop). */
void gw_memo_size(const gw_memo_entry_t *e, uint32_t *ntags, uint32_t *nfields);

/* Point p as entry e says, into *out, its tags and fields written to the
 * arrays given (sized by gw_memo_size; strings borrowed from p and e).
 * Returns the points made: 0 (dropped) or 1. */
uint32_t gw_memo_apply(const gw_memo_entry_t *e, const gw_point_t *p, gw_point_t *out, gw_tag_t *tags,
                       gw_field_t *fields);

/* Record what the chain cid made of point in: outs[0..n). 0, or -ENOMEM
 * (nothing recorded). A key already cached is left as it is. */
int gw_memo_learn(gw_memo_t *m, uint16_t cid, const gw_point_t *in, const gw_point_t *outs, uint32_t n);

/* Compare what the chain made of in (outs[0..n)) with the cached entry of
 * its key. Returns 1 when they agree (or the key is no longer cached); 0
 * when they do not: counted, and the key becomes uncacheable (the caller
 * logs); -ENOMEM. */
int gw_memo_verify(gw_memo_t *m, uint16_t cid, const gw_point_t *in, const gw_point_t *outs, uint32_t n);

/* Add this worker's counts to the process-wide ones and zero them. */
void gw_memo_flush(gw_memo_t *m);

/* The process-wide counts since start. */
void gw_memo_stats(gw_memo_stats_t *out);

#endif
