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
 * little where it is used (and gw_hash_wide, gw_hash_piece serve the long
 * keys of memo.c). Tables keep the whole 64 bits, or the low 32,
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

/* A key hashed in pieces where they lie, not copied into one buffer
 * first (memo.c: a clean line's series and tags, then each field key):
 * h = gw_hash_piece(seed, ...), h = gw_hash_piece(h, ...)..., then
 * gw_hash_pieces_end(h). Sixteen bytes to a multiply, as wyhash mixes: the
 * 128-bit product of two words folded to 64 bits, one word keyed with the
 * random basis, so that a client cannot choose bytes that cancel what came
 * before (a product with zero). A piece's length is mixed in with its last
 * sixteen bytes (or a short piece's every byte), read whole, overlapping:
 * no byte outside the piece is read. */
static inline uint64_t gw_hash_mum_(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t gw_hash_load_(const char *p, size_t n) /* n: 4 or 8 */
{
    uint64_t w = 0;
    memcpy(&w, p, n);
    return w;
}

static inline uint64_t gw_hash_piece(uint64_t h, const char *p, size_t n)
{
    uint64_t a = 0, b = 0;

    if (n > 16) {
        for (size_t i = 0; i + 16 < n; i += 16)
            h = gw_hash_mum_(gw_hash_load_(p + i, 8) ^ gw_hash_basis, gw_hash_load_(p + i + 8, 8) ^ h);
        a = gw_hash_load_(p + n - 16, 8);
        b = gw_hash_load_(p + n - 8, 8);
    } else if (n >= 8) {
        a = gw_hash_load_(p, 8);
        b = gw_hash_load_(p + n - 8, 8);
    } else if (n >= 4) {
        a = gw_hash_load_(p, 4);
        b = gw_hash_load_(p + n - 4, 4);
    } else if (n) { /* p[0], p[n / 2] and p[n - 1] are every byte of 1 to 3 */
        a = (unsigned char)p[0] | (unsigned)(unsigned char)p[n / 2] << 8 | (unsigned)(unsigned char)p[n - 1] << 16;
    }
    return gw_hash_mum_(a ^ gw_hash_basis ^ n, b ^ h);
}

static inline uint64_t gw_hash_pieces_end(uint64_t h)
{
    return gw_hash_mum_(h ^ 0x9e3779b97f4a7c15u, gw_hash_basis ^ 0xc2b2ae3d27d4eb4fu);
}

#endif
