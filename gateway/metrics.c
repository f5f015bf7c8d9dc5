/* metrics.c — the process-wide counters. */
#include "metrics.h"

#include <string.h>

gw_metrics_t gw_metrics = {.healthy = 1};

/* ------------------------------------------------------------------------ */
/* Per-series counters                                                       */

static gw_series_slot_t series_slots[GW_SERIES_SLOTS + 1]; /* [GW_SERIES_SLOTS] = "(other)" */

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static gw_series_slot_t *other_slot(void)
{
    gw_series_slot_t *s = &series_slots[GW_SERIES_SLOTS];
    unsigned expect = 0;

    if (atomic_load_explicit(&s->state, memory_order_acquire) == 2)
        return s;
    if (atomic_compare_exchange_strong(&s->state, &expect, 1)) {
        memcpy(s->name, "(other)", 8);
        s->len = 7;
        atomic_store_explicit(&s->state, 2, memory_order_release);
    }
    return s;
}

gw_series_slot_t *gw_series_slot(const char *name, size_t n)
{
    uint32_t h = fnv1a(name, n);

    if (n > GW_SERIES_NAME_MAX)
        return other_slot();
    for (uint32_t k = 0; k < GW_SERIES_SLOTS; k++) {
        gw_series_slot_t *s = &series_slots[(h + k) & (GW_SERIES_SLOTS - 1)];
        unsigned st = atomic_load_explicit(&s->state, memory_order_acquire);

        if (st == 0) {
            unsigned expect = 0;
            if (atomic_compare_exchange_strong(&s->state, &expect, 1)) {
                s->hash = h;
                s->len = (uint32_t)n;
                memcpy(s->name, name, n);
                s->name[n] = '\0';
                atomic_store_explicit(&s->state, 2, memory_order_release);
                return s;
            }
            st = expect;
        }
        /* Another thread is writing this slot's name: it takes nanoseconds. */
        while (st == 1)
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (s->hash == h && s->len == n && memcmp(s->name, name, n) == 0)
            return s;
    }
    return other_slot();
}

void gw_series_each(void (*fn)(const gw_series_slot_t *slot, void *ud), void *ud)
{
    for (int i = 0; i <= GW_SERIES_SLOTS; i++)
        if (atomic_load_explicit(&series_slots[i].state, memory_order_acquire) == 2)
            fn(&series_slots[i], ud);
}

/* ------------------------------------------------------------------------ */
/* Histograms and answers                                                    */

static const double batch_bounds[] = {1, 10, 100, 500, 1000, 5000, 10000, 50000, 100000};
static const double write_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

gw_hist_t gw_hist_batch_points = {.bounds = batch_bounds, .nbounds = sizeof(batch_bounds) / sizeof(double)};
gw_hist_t gw_hist_write_seconds = {.bounds = write_bounds, .nbounds = sizeof(write_bounds) / sizeof(double)};

void gw_hist_observe(gw_hist_t *h, double v)
{
    int i = 0;

    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint_fast64_t)(v > 0 ? v * 1e6 + 0.5 : 0), memory_order_relaxed);
}

atomic_uint_fast64_t gw_influx_status[600];

void gw_influx_status_count(long status)
{
    atomic_fetch_add_explicit(&gw_influx_status[status > 0 && status < 600 ? status : 0], 1, memory_order_relaxed);
}
