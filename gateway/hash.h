/* hash.h — the one hash of names, for every table keyed by them (series
 * counters, series declarations, script chains, the keys of a large JSON
 * object).
 *
 * 64-bit FNV-1a from a basis drawn at random once per process, its bits
 * then mixed by one multiply (so the low bits, which index a table, depend
 * on every byte). Names come from clients: without the random basis a
 * client could choose names that all land in one run of a table and make
 * each lookup a scan. FNV-1a reads a byte at a time (about four
 * instructions a byte); the names hashed are short (a series name, a key)
 * and most lookups are answered before hashing by a small cache of recent
 * names (schema.c, script_run.c, pipeline.c), so a wider hash would save
 * little where it is used. Tables keep the whole 64 bits, or the low 32,
 * as they see fit; the value is the same in every thread for the life of
 * the process, never the same from one process to the next. */
#ifndef GW_HASH_H
#define GW_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The process's random basis (set before main, by hash.c). */
extern uint64_t gw_hash_basis;

/* The hash of the n bytes at p. */
static inline uint64_t gw_hash(const char *p, size_t n)
{
    uint64_t h = gw_hash_basis;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h * 0x9e3779b97f4a7c15u;
}

/* The hash of the n bytes at p, eight at a time: for longer keys (a
 * point's whole shape, memo.c) where a byte at a time would cost more
 * than the lookup it serves. Same basis, same properties. */
static inline uint64_t gw_hash_wide(const char *p, size_t n)
{
    uint64_t h = gw_hash_basis ^ (n * 0x9e3779b97f4a7c15u), w;

    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w * 0xc2b2ae3d27d4eb4fu) * 0x100000001b3u;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w * 0xc2b2ae3d27d4eb4fu) * 0x9e3779b97f4a7c15u;
    return h ^ (h >> 32);
}

#endif
