/* metrics.c — the process-wide counters. */
#include "metrics.h"

#include <pthread.h>
#include <string.h>

#include "clock.h"
#include "hash.h"

gw_metrics_t gw_metrics = {.healthy = 1};

/* ------------------------------------------------------------------------ */
/* Per-series counters                                                       */
/*
 * Two arrays. The slots hold names and counters and never move: whoever
 * looked one up may keep using it. The index maps names to slots: open
 * addressing with linear probing, entries `tag << 12 | (slot + 1)`, where
 * the tag is 20 bits of the name's hash whose low 12 give its home entry.
 * It is never more than half full (GW_SERIES_DYNAMIC + GW_SERIES_PINNED
 * names in 4096 entries), so a lookup reads a few entries, most often one,
 * and one slot's name.
 *
 * Lookups take no lock. Everything else does: placing a name (claiming or
 * renaming a slot, adding its entry), and removing an entry, which shifts
 * the entries behind it back into place (no tombstones). A lookup that
 * runs into such a move may miss a name that is there; a miss takes the
 * lock and looks again, so it only costs time. A slot's state is a
 * sequence count (0 never used, odd while its name is written, even once
 * done), so a lookup that compared a name can tell that it was renamed
 * meanwhile; the name is compared word by word with atomic loads.
 *
 * Idle slots are found without a clock on the lookup path: a lookup sets
 * `used`; a clock hand over the slots, moved while placing a name when all
 * GW_SERIES_DYNAMIC are in use, clears it and notes the time; a slot still
 * unused GW_SERIES_IDLE seconds later is renamed. Whoever looked a slot up
 * uses it for one request or one batch, far less than that. */

#define NSLOTS (GW_SERIES_DYNAMIC + GW_SERIES_PINNED)
#define NINDEX 4096 /* a power of two, at least 2 * NSLOTS */
#define IMASK (NINDEX - 1)
#define HAND_LOOK 4 /* slots the clock hand looks at per name placed */

static gw_series_slot_t slots[NSLOTS];
static gw_series_slot_t other;         /* "(other)" */
static _Atomic uint32_t series_index[NINDEX];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int nslots, ndynamic, npinned, hand; /* under table_lock */

static double (*clock_now)(void) = gw_clock_mono; /* under table_lock */

void gw_series_set_clock(double (*now)(void))
{
    pthread_mutex_lock(&table_lock);
    clock_now = now ? now : gw_clock_mono;
    pthread_mutex_unlock(&table_lock);
}

/* What a slot keeps of its name's hash: the high 32 bits, of which the
 * top 20 are the index tag and the next 12 the home entry. */
static uint32_t hash32(uint64_t h)
{
    return (uint32_t)(h >> 32);
}

static uint32_t tag_of(uint64_t h)
{
    return hash32(h) >> 12;
}

#define ENTRY(tag, slot) ((tag) << 12 | (uint32_t)((slot) + 1))
#define ENTRY_TAG(e) ((e) >> 12)
#define ENTRY_SLOT(e) (&slots[((e) & 0xfff) - 1])

/* Does s hold name (n bytes) of hash h? */
static int holds(const gw_series_slot_t *s, uint32_t h, const char *name, size_t n)
{
    if (atomic_load_explicit(&s->hash, memory_order_relaxed) != h ||
        atomic_load_explicit(&s->len, memory_order_relaxed) != n)
        return 0;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t a = __atomic_load_n(&s->name_words[i / 8], __ATOMIC_RELAXED), b = 0;
        memcpy(&b, name + i, n - i < 8 ? n - i : 8);
        if (a != b)
            return 0;
    }
    return 1;
}

/* The slot of name (hash h), or NULL. Without the lock it may miss a name
 * whose entry is being moved; under it, it does not. */
static gw_series_slot_t *find(uint64_t h, const char *name, size_t n)
{
    uint32_t tag = tag_of(h), i = tag & IMASK;

    for (uint32_t k = 0; k < NINDEX; k++, i = (i + 1) & IMASK) {
        uint32_t e = atomic_load_explicit(&series_index[i], memory_order_acquire);
        gw_series_slot_t *s;
        unsigned st;

        if (e == 0)
            return NULL;
        if (ENTRY_TAG(e) != tag)
            continue;
        s = ENTRY_SLOT(e);
        st = atomic_load_explicit(&s->state, memory_order_acquire);
        if ((st & 1) || !holds(s, hash32(h), name, n))
            continue;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->state, memory_order_relaxed) == st)
            return s;
    }
    return NULL;
}

/* Add the entry of slot s, of hash h, at the end of its run. Under the lock. */
static void index_add(uint64_t h, const gw_series_slot_t *s)
{
    uint32_t i = tag_of(h) & IMASK;

    while (atomic_load_explicit(&series_index[i], memory_order_relaxed))
        i = (i + 1) & IMASK;
    atomic_store_explicit(&series_index[i], ENTRY(tag_of(h), s - slots), memory_order_release);
}

/* Remove entry i, moving the entries behind it in its run back where a
 * lookup finds them. Under the lock. */
static void index_remove(uint32_t i)
{
    uint32_t j = i;

    for (;;) {
        uint32_t e, home;
        j = (j + 1) & IMASK;
        e = atomic_load_explicit(&series_index[j], memory_order_relaxed);
        if (!e)
            break;
        home = ENTRY_TAG(e) & IMASK;
        /* Entry j may move back to i unless its home lies in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            atomic_store_explicit(&series_index[i], e, memory_order_release);
            i = j;
        }
    }
    atomic_store_explicit(&series_index[i], 0, memory_order_release);
}

/* Give s the name (n bytes, hash h), counters from zero. Under the lock. */
static void write_name(gw_series_slot_t *s, uint32_t h, const char *name, size_t n, double now)
{
    uint64_t w[(GW_SERIES_NAME_MAX + 1) / 8] = {0};
    unsigned st = atomic_load_explicit(&s->state, memory_order_relaxed) | 1;

    memcpy(w, name, n);
    atomic_store_explicit(&s->state, st, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->hash, h, memory_order_relaxed);
    atomic_store_explicit(&s->len, (uint32_t)n, memory_order_relaxed);
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        __atomic_store_n(&s->name_words[i], w[i], __ATOMIC_RELAXED);
    for (int k = 0; k < GW_S_NCOUNTERS; k++)
        atomic_store_explicit(&s->v[k], 0, memory_order_relaxed);
    atomic_store_explicit(&s->used, 1, memory_order_relaxed);
    s->idle_since = now;
    atomic_store_explicit(&s->state, st + 1 ? st + 1 : 2, memory_order_release);
}

/* May s be renamed? Looking at it counts: a lookup since the last look
 * starts its idle time again. Under the lock. */
static int idle(gw_series_slot_t *s, double now)
{
    if (s->pinned)
        return 0;
    if (atomic_exchange_explicit(&s->used, 0, memory_order_relaxed)) {
        s->idle_since = now;
        return 0;
    }
    return now - s->idle_since >= GW_SERIES_IDLE;
}

/* A slot idle long enough, its entry removed, from the next HAND_LOOK the
 * clock hand passes; NULL if none. Under the lock. */
static gw_series_slot_t *evict(double now)
{
    for (int k = 0; k < HAND_LOOK; k++) {
        gw_series_slot_t *s = &slots[hand];
        uint32_t at;

        hand = (hand + 1) % nslots;
        if (!idle(s, now))
            continue;
        /* its entry: in the run from its home */
        at = (atomic_load_explicit(&s->hash, memory_order_relaxed) >> 12) & IMASK;
        while ((atomic_load_explicit(&series_index[at], memory_order_relaxed) & 0xfff) != (uint32_t)(s - slots) + 1)
            at = (at + 1) & IMASK;
        index_remove(at);
        return s;
    }
    return NULL;
}

/* Place a name not found without the lock: look again, then take a new
 * slot, or rename an idle one, pinned or not as asked. NULL when there is
 * no room. Under the lock. */
static gw_series_slot_t *place(uint64_t h, const char *name, size_t n, int pin)
{
    gw_series_slot_t *s;
    double now;

    if ((s = find(h, name, n))) {
        if (pin && !s->pinned && npinned < GW_SERIES_PINNED) {
            s->pinned = 1;
            npinned++;
            ndynamic--;
        }
        atomic_store_explicit(&s->used, 1, memory_order_relaxed);
        return pin && !s->pinned ? NULL : s;
    }
    now = clock_now();
    if (pin && npinned < GW_SERIES_PINNED)
        npinned++;
    else if (!pin && ndynamic < GW_SERIES_DYNAMIC)
        ndynamic++;
    else if (pin || !(s = evict(now)))
        return NULL; /* a renamed slot stays a dynamic one: no count changes */
    if (!s)
        s = &slots[nslots++]; /* nslots = ndynamic + npinned <= NSLOTS */
    write_name(s, hash32(h), name, n, now);
    s->pinned = (uint32_t)pin;
    index_add(h, s);
    return s;
}

static gw_series_slot_t *other_slot(void)
{
    if (atomic_load_explicit(&other.state, memory_order_acquire) == 0) {
        pthread_mutex_lock(&table_lock);
        if (atomic_load_explicit(&other.state, memory_order_relaxed) == 0)
            write_name(&other, 0, "(other)", 7, 0);
        pthread_mutex_unlock(&table_lock);
    }
    return &other;
}

gw_series_slot_t *gw_series_slot(const char *name, size_t n)
{
    gw_series_slot_t *s;
    uint64_t h;

    if (n > GW_SERIES_NAME_MAX)
        return other_slot();
    h = gw_hash(name, n);
    if ((s = find(h, name, n))) {
        if (!atomic_load_explicit(&s->used, memory_order_relaxed))
            atomic_store_explicit(&s->used, 1, memory_order_relaxed);
        return s;
    }
    pthread_mutex_lock(&table_lock);
    s = place(h, name, n, 0);
    pthread_mutex_unlock(&table_lock);
    return s ? s : other_slot();
}

int gw_series_pin(const char *name, size_t n)
{
    gw_series_slot_t *s = NULL;

    if (n <= GW_SERIES_NAME_MAX) {
        pthread_mutex_lock(&table_lock);
        s = place(gw_hash(name, n), name, n, 1);
        pthread_mutex_unlock(&table_lock);
    }
    return s ? 0 : -1;
}

void gw_series_each(void (*fn)(const gw_series_slot_t *slot, void *ud), void *ud)
{
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < nslots; i++)
        fn(&slots[i], ud);
    if (atomic_load_explicit(&other.state, memory_order_relaxed) != 0)
        fn(&other, ud);
    pthread_mutex_unlock(&table_lock);
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
