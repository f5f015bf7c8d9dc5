/* arena.h — bump allocator for per-request data.
 *
 * A worker owns one arena; everything a request parses (points, tag and field
 * arrays, unescaped strings) lives in it and is released at once by
 * gw_arena_reset() when the request ends. Chunks are kept for the next request,
 * so the steady state does no malloc at all. */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <stddef.h>

typedef struct gw_arena gw_arena_t;

/* Create an arena whose chunks are at least chunk_size bytes. NULL on ENOMEM.
 * Free with gw_arena_destroy(). */
gw_arena_t *gw_arena_create(size_t chunk_size);

/* Allocate n bytes, 16-byte aligned. NULL on ENOMEM. Owned by the arena. */
void *gw_arena_alloc(gw_arena_t *a, size_t n);

/* Copy n bytes into the arena. NULL on ENOMEM. */
void *gw_arena_dup(gw_arena_t *a, const void *p, size_t n);

/* Release everything allocated; keep the first chunk for reuse and free the
 * rest, so a single huge request does not pin its memory forever. */
void gw_arena_reset(gw_arena_t *a);

/* Bytes currently handed out (for limits and metrics). */
size_t gw_arena_used(const gw_arena_t *a);

/* Free the arena and all its chunks. NULL is a no-op. */
void gw_arena_destroy(gw_arena_t *a);

#endif
