/* arena.c — bump allocator, see arena.h. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    struct chunk *next; /* owned: older chunk */
    size_t size;        /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char mem[];
} chunk_t;

#define RETAIN_MAX ((size_t)8 << 20) /* bytes of chunks kept across resets */

struct gw_arena {
    chunk_t *head;   /* owned: current chunk, then the full ones */
    chunk_t *spare;  /* owned: empty chunks kept by the last reset */
    size_t chunk_size;
    size_t used;     /* bytes handed out since the last reset */
};

static chunk_t *chunk_new(size_t size)
{
    chunk_t *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

gw_arena_t *gw_arena_create(size_t chunk_size)
{
    gw_arena_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->chunk_size = chunk_size < 4096 ? 4096 : chunk_size;
    a->head = chunk_new(a->chunk_size);
    if (!a->head) {
        free(a);
        return NULL;
    }
    return a;
}

void *gw_arena_alloc(gw_arena_t *a, size_t n)
{
    chunk_t *c = a->head;
    size_t off = (c->used + 15) & ~(size_t)15;
    void *p;

    if (n > c->size || off > c->size - n) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        if (a->spare && n <= a->spare->size) {
            c = a->spare; /* warm: no malloc */
            a->spare = c->next;
        } else {
            if (n > SIZE_MAX - sizeof(chunk_t))
                return NULL;
            c = chunk_new(size);
            if (!c)
                return NULL;
        }
        c->next = a->head;
        a->head = c;
        off = 0;
    }
    p = c->mem + off;
    c->used = off + n;
    a->used += n;
    return p;
}

void *gw_arena_dup(gw_arena_t *a, const void *p, size_t n)
{
    void *d = gw_arena_alloc(a, n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

void gw_arena_reset(gw_arena_t *a)
{
    chunk_t *c = a->head, *oldest = NULL;
    size_t kept = 0;

    /* Keep standard-size chunks up to RETAIN_MAX bytes, so that a worker's
     * usual request size allocates nothing once warm; give back oversized
     * chunks and the excess, so one huge request does not pin its memory.
     * The oldest chunk (made by create) becomes the head again. */
    while (c) {
        chunk_t *next = c->next;
        c->used = 0;
        if (!next) {
            oldest = c;
        } else if (c->size == a->chunk_size && kept + c->size <= RETAIN_MAX) {
            c->next = a->spare;
            a->spare = c;
            kept += c->size;
        } else {
            free(c);
        }
        c = next;
    }
    oldest->next = NULL;
    a->head = oldest;
    a->used = 0;
}

size_t gw_arena_used(const gw_arena_t *a)
{
    return a->used;
}

void gw_arena_destroy(gw_arena_t *a)
{
    chunk_t *c;
    if (!a)
        return;
    for (int i = 0; i < 2; i++) {
        c = i ? a->spare : a->head;
        while (c) {
            chunk_t *next = c->next;
            free(c);
            c = next;
        }
    }
    free(a);
}
