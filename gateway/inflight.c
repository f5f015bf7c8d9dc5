/* inflight.c — the memory requests in progress may hold, see inflight.h. */
#include "inflight.h"

#include <stdatomic.h>
#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct gw_inflight {
    size_t limit;
    atomic_size_t held;
    atomic_size_t peak;
    atomic_int surge; /* held has passed half the limit since gw_inflight_ebbed last said so */
    atomic_uint_fast64_t full, too_big;
};

gw_inflight_t *gw_inflight_create(size_t limit)
{
    gw_inflight_t *a = calloc(1, sizeof(*a));

    if (a)
        a->limit = limit;
    return a;
}

void gw_inflight_destroy(gw_inflight_t *a)
{
    free(a);
}

/* Add n to the account if it stays within the limit. 1 if taken. */
static int add(gw_inflight_t *a, size_t n)
{
    size_t cur = atomic_load_explicit(&a->held, memory_order_relaxed), peak;

    do {
        if (n > a->limit - cur)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&a->held, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (cur + n > a->limit / 2)
        atomic_store_explicit(&a->surge, 1, memory_order_relaxed);
    peak = atomic_load_explicit(&a->peak, memory_order_relaxed);
    while (cur + n > peak &&
           !atomic_compare_exchange_weak_explicit(&a->peak, &peak, cur + n, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return 1;
}

int gw_inflight_take(gw_inflight_t *a, size_t *held, size_t want, size_t cap)
{
    size_t target;

    if (want <= *held)
        return GW_INFLIGHT_OK;
    if (want > a->limit) {
        atomic_fetch_add_explicit(&a->too_big, 1, memory_order_relaxed);
        return GW_INFLIGHT_TOO_BIG;
    }
    target = want + (GW_INFLIGHT_STEP - want % GW_INFLIGHT_STEP) % GW_INFLIGHT_STEP;
    if (want <= cap && target > cap)
        target = cap;
    if (target > a->limit)
        target = want;
    /* The rounded step when there is room for it, else just what is wanted. */
    if (!add(a, target - *held)) {
        target = want;
        if (!add(a, target - *held)) {
            atomic_fetch_add_explicit(&a->full, 1, memory_order_relaxed);
            return GW_INFLIGHT_FULL;
        }
    }
    *held = target;
    return GW_INFLIGHT_OK;
}

int gw_inflight_fits(gw_inflight_t *a, size_t n)
{
    if (n > a->limit) {
        atomic_fetch_add_explicit(&a->too_big, 1, memory_order_relaxed);
        return GW_INFLIGHT_TOO_BIG;
    }
    if (n > a->limit - atomic_load_explicit(&a->held, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&a->full, 1, memory_order_relaxed);
        return GW_INFLIGHT_FULL;
    }
    return GW_INFLIGHT_OK;
}

void gw_inflight_keep(gw_inflight_t *a, size_t *held, size_t keep)
{
    if (*held <= keep)
        return;
    atomic_fetch_sub_explicit(&a->held, *held - keep, memory_order_relaxed);
    *held = keep;
}

int gw_inflight_ebbed(gw_inflight_t *a)
{
    int one = 1;

    return atomic_load_explicit(&a->held, memory_order_relaxed) < a->limit / 4 &&
           atomic_compare_exchange_strong_explicit(&a->surge, &one, 0, memory_order_relaxed, memory_order_relaxed);
}

void gw_inflight_stats(gw_inflight_t *a, gw_inflight_stats_t *out)
{
    out->held = atomic_load_explicit(&a->held, memory_order_relaxed);
    out->limit = a->limit;
    out->peak = atomic_load_explicit(&a->peak, memory_order_relaxed);
    out->full = atomic_load_explicit(&a->full, memory_order_relaxed);
    out->too_big = atomic_load_explicit(&a->too_big, memory_order_relaxed);
}

/* ------------------------------------------------------------------ cost */

/* How many bytes of p[0..n) are c1, and how many c2. SSE2, 64 bytes a
 * round: each byte position counts in an 8-bit lane (4 a round, so 63
 * rounds at most), then the lanes are summed (psadbw). */
static void count2(const char *p, size_t n, char c1, char c2, size_t *n1, size_t *n2)
{
    size_t a = 0, b = 0, i = 0;

#ifdef __SSE2__
    const __m128i v1 = _mm_set1_epi8(c1), v2 = _mm_set1_epi8(c2), zero = _mm_setzero_si128();

    while (n - i >= 64) {
        __m128i s1 = zero, s2 = zero;
        size_t rounds = (n - i) / 64 > 63 ? 63 : (n - i) / 64;
        for (size_t k = 0; k < rounds; k++, i += 64) {
            const __m128i *q = (const __m128i *)(const void *)(p + i);
            __m128i x0 = _mm_loadu_si128(q), x1 = _mm_loadu_si128(q + 1), x2 = _mm_loadu_si128(q + 2),
                    x3 = _mm_loadu_si128(q + 3);
            s1 = _mm_sub_epi8(s1, _mm_add_epi8(_mm_add_epi8(_mm_cmpeq_epi8(x0, v1), _mm_cmpeq_epi8(x1, v1)),
                                               _mm_add_epi8(_mm_cmpeq_epi8(x2, v1), _mm_cmpeq_epi8(x3, v1))));
            s2 = _mm_sub_epi8(s2, _mm_add_epi8(_mm_add_epi8(_mm_cmpeq_epi8(x0, v2), _mm_cmpeq_epi8(x1, v2)),
                                               _mm_add_epi8(_mm_cmpeq_epi8(x2, v2), _mm_cmpeq_epi8(x3, v2))));
        }
        s1 = _mm_sad_epu8(s1, zero);
        s2 = _mm_sad_epu8(s2, zero);
        a += (size_t)_mm_cvtsi128_si32(s1) + (size_t)_mm_extract_epi16(s1, 4);
        b += (size_t)_mm_cvtsi128_si32(s2) + (size_t)_mm_extract_epi16(s2, 4);
    }
#endif
    for (; i < n; i++) {
        a += p[i] == c1;
        b += p[i] == c2;
    }
    *n1 = a;
    *n2 = b;
}

/* What processing costs, in bytes. Measured as the growth of the peak RSS of
 * luagw processing one body of each of the worst shapes known (dense tags
 * or fields, one-field lines, scripted series, escapes, invalid JSON), with
 * a margin of at least 1.2 over the worst (docs/hardening.md, "Memory
 * budget", has the table):
 *   COST_BYTE          per body byte: the body, its unescaped copies, the
 *                      encoded lines, buffer slack
 *   COST_LP_PAIR       per '=' of line protocol, each tag or field at most:
 *                      its 32 or 40 bytes, and what a script makes of it
 *   COST_LP_LINE       per line, each point at most: its 72 bytes, its end
 *                      and series slot, its time written out, a script call
 *   COST_JSON_MEMBER   per ':' of JSON: as COST_LP_PAIR; measured when
 *                      json.c still built jansson's document of a body that
 *                      is not JSON to describe the error (it no longer
 *                      does: for such bodies the bound is now generous)
 *   COST_JSON_OBJECT   per '{': a point (and, then, the document's objects) */
#define COST_BYTE 6
#define COST_LP_PAIR 100
#define COST_LP_LINE 310
#define COST_JSON_MEMBER 220
#define COST_JSON_OBJECT 128

size_t gw_inflight_cost(int json, const char *body, size_t len, size_t *most)
{
    size_t pairs, units;

    count2(body, len, json ? ':' : '=', json ? '{' : '\n', &pairs, &units);
    if (json) {
        *most = units;
        return COST_BYTE * len + COST_JSON_MEMBER * pairs + COST_JSON_OBJECT * units;
    }
    *most = units + 1;
    return COST_BYTE * len + COST_LP_PAIR * pairs + COST_LP_LINE * (units + 1);
}
