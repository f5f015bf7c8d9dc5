/* script_guard.c — per-state allocator and the script watchdog, see
 * script_guard.h for the design. */
#include "script_guard.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include <lauxlib.h>

#include "clock.h"

/* ==================================================================== */
/* Allocator                                                             */
/* ==================================================================== */

#define CHUNK_BYTES (64 * 1024)
#define SMALL_MAX 512                 /* larger blocks come from malloc */
#define NCLASS (SMALL_MAX / 16 + 1)   /* class c holds blocks of c*16 bytes */

typedef struct chunk {
    struct chunk *next; /* owned: older chunk */
    size_t pad;         /* keeps the blocks 16-byte aligned */
} chunk_t;

typedef struct big {
    struct big *prev, *next; /* the allocator's circular list */
    size_t size;
    size_t pad;
} big_t;

struct gw_lalloc {
    size_t used;          /* bytes the state holds, as LuaJIT counts them */
    size_t cap;           /* 0 = no cap */
    int enforce;
    gw_guard_t *guard;    /* borrowed: its pending flag fails allocations */
    void *free[NCLASS];   /* free lists of small blocks, by class */
    char *bump, *end;     /* the unused tail of the newest chunk */
    chunk_t *chunks;      /* owned */
    big_t big;            /* sentinel of the large blocks (owned) */
};

gw_lalloc_t *gw_lalloc_create(size_t cap)
{
    gw_lalloc_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->cap = cap;
    a->big.prev = a->big.next = &a->big;
    return a;
}

static void *small_alloc(gw_lalloc_t *a, size_t n)
{
    size_t c = (n + 15) >> 4;
    void *p = a->free[c];

    if (p) {
        a->free[c] = *(void **)p;
        return p;
    }
    if ((size_t)(a->end - a->bump) < c * 16) {
        chunk_t *ch;
        gw_guard_crit_enter();
        ch = malloc(CHUNK_BYTES);
        gw_guard_crit_leave();
        if (!ch)
            return NULL;
        /* The old tail goes to the free lists rather than to waste. */
        while (a->end - a->bump >= 16) {
            size_t rc = (size_t)(a->end - a->bump) >> 4;
            if (rc >= NCLASS)
                rc = NCLASS - 1;
            *(void **)a->bump = a->free[rc];
            a->free[rc] = a->bump;
            a->bump += rc * 16;
        }
        ch->next = a->chunks;
        a->chunks = ch;
        a->bump = (char *)(ch + 1);
        a->end = (char *)ch + CHUNK_BYTES;
    }
    p = a->bump;
    a->bump += c * 16;
    return p;
}

static void small_free(gw_lalloc_t *a, void *p, size_t n)
{
    size_t c = (n + 15) >> 4;
    *(void **)p = a->free[c];
    a->free[c] = p;
}

static void big_link(gw_lalloc_t *a, big_t *b)
{
    b->prev = &a->big;
    b->next = a->big.next;
    a->big.next->prev = b;
    a->big.next = b;
}

static void big_unlink(big_t *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
}

static void *big_alloc(gw_lalloc_t *a, size_t n)
{
    big_t *b;
    if (n > SIZE_MAX - sizeof(big_t))
        return NULL;
    gw_guard_crit_enter();
    b = malloc(sizeof(*b) + n);
    gw_guard_crit_leave();
    if (!b)
        return NULL;
    b->size = n;
    big_link(a, b);
    return b + 1;
}

static void big_free(void *p)
{
    big_t *b = (big_t *)p - 1;
    big_unlink(b);
    gw_guard_crit_enter();
    free(b);
    gw_guard_crit_leave();
}

static void *block_alloc(gw_lalloc_t *a, size_t n)
{
    return n <= SMALL_MAX ? small_alloc(a, n) : big_alloc(a, n);
}

static void block_free(gw_lalloc_t *a, void *p, size_t n)
{
    if (n <= SMALL_MAX)
        small_free(a, p, n);
    else
        big_free(p);
}

static void *block_realloc(gw_lalloc_t *a, void *p, size_t osize, size_t nsize)
{
    void *q;

    if (osize <= SMALL_MAX && nsize <= SMALL_MAX && ((osize + 15) >> 4) == ((nsize + 15) >> 4))
        return p;
    if (osize > SMALL_MAX && nsize > SMALL_MAX) {
        big_t *b = (big_t *)p - 1, *nb;
        if (nsize > SIZE_MAX - sizeof(big_t))
            return NULL;
        big_unlink(b);
        gw_guard_crit_enter();
        nb = realloc(b, sizeof(*b) + nsize);
        gw_guard_crit_leave();
        if (!nb) {
            big_link(a, b);
            return NULL;
        }
        nb->size = nsize;
        big_link(a, nb);
        return nb + 1;
    }
    q = block_alloc(a, nsize);
    if (!q)
        return NULL;
    memcpy(q, p, osize < nsize ? osize : nsize);
    block_free(a, p, osize);
    return q;
}

/* Only the calls into libc's malloc are critical sections (they take
 * locks). A stop never jumps out of the rest of this function: the watchdog
 * jumps only out of JIT-compiled code, or out of LuaJIT's runtime when the
 * state is abandoned (and then these free lists are thrown away whole). */
void *gw_lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    gw_lalloc_t *a = ud;
    void *r;

    if (!ptr) {
        if (a->enforce && ((a->cap && a->used + nsize > a->cap) || (a->guard && a->guard->pending)))
            return NULL; /* LuaJIT raises "not enough memory" */
        if (nsize <= SMALL_MAX) {
            size_t c = (nsize + 15) >> 4;
            r = a->free[c];
            if (r)
                a->free[c] = *(void **)r;
            else if (!(r = small_alloc(a, nsize)))
                return NULL;
        } else if (!(r = big_alloc(a, nsize))) {
            return NULL;
        }
        a->used += nsize;
        return r;
    }
    if (nsize == 0) {
        block_free(a, ptr, osize);
        a->used -= osize;
        return NULL;
    }
    if (nsize > osize && a->enforce &&
        ((a->cap && a->used - osize + nsize > a->cap) || (a->guard && a->guard->pending)))
        return NULL; /* a shrink never fails */
    r = block_realloc(a, ptr, osize, nsize);
    if (r)
        a->used = a->used - osize + nsize;
    return r;
}

size_t gw_lalloc_used(const gw_lalloc_t *a)
{
    return a->used;
}

size_t gw_lalloc_cap(const gw_lalloc_t *a)
{
    return a->cap;
}

void gw_lalloc_enforce(gw_lalloc_t *a, int on)
{
    a->enforce = on;
}

void gw_lalloc_attach(gw_lalloc_t *a, gw_guard_t *g)
{
    a->guard = g;
}

void gw_lalloc_free_all(gw_lalloc_t *a)
{
    big_t *b;
    chunk_t *c;

    if (!a)
        return;
    b = a->big.next;
    while (b != &a->big) {
        big_t *next = b->next;
        free(b);
        b = next;
    }
    c = a->chunks;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* ==================================================================== */
/* Where the interrupted thread was                                      */
/* ==================================================================== */

#define MAX_RANGES 256

typedef struct {
    uintptr_t lo, hi;
    int luajit; /* LuaJIT's own text (interpreter and runtime) */
} range_t;

/* Written once (under pthread_once) before any signal can arrive. */
static range_t ranges[MAX_RANGES];
static int nranges;

static int on_phdr(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t luajit_pc = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        ranges[nranges].lo = info->dlpi_addr + ph->p_vaddr;
        ranges[nranges].hi = ranges[nranges].lo + ph->p_memsz;
        ranges[nranges].luajit = luajit_pc >= ranges[nranges].lo && luajit_pc < ranges[nranges].hi;
        nranges++;
    }
    return 0;
}

/* 0: JIT-compiled code (in no loaded object), 1: LuaJIT's text, 2: other. */
static int classify(uintptr_t pc)
{
    for (int i = 0; i < nranges; i++)
        if (pc >= ranges[i].lo && pc < ranges[i].hi)
            return ranges[i].luajit ? 1 : 2;
    return 0;
}

static uintptr_t context_pc(void *ctx)
{
    ucontext_t *uc = ctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "script_guard.c: add this architecture's program counter"
#endif
}

/* ==================================================================== */
/* The signal handler and the soft stop                                  */
/* ==================================================================== */

static __thread gw_guard_t *tls_guard;
static atomic_uint_fast64_t abandoned;

/* Count hook set by the handler: runs at the next interpreted bytecode and
 * raises an ordinary error, which leaves the state intact. It stays set
 * until the call ends, so a script's own pcall cannot swallow the stop. */
static void on_hook(lua_State *L, lua_Debug *ar)
{
    gw_guard_t *g = tls_guard;

    if (!g || !atomic_load_explicit(&g->active, memory_order_relaxed) || !g->timed_out) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    if (!g->where[0] && lua_getinfo(L, "Sl", ar) && ar->currentline > 0 && ar->source[0] == '@')
        snprintf(g->where, sizeof(g->where), "%s:%d", ar->source + 1, ar->currentline);
    lua_pushliteral(L, "timeout");
    lua_error(L);
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
    int saved = errno;
    gw_guard_t *g = tls_guard;
    int where;

    (void)sig;
    (void)si;
    if (!g || !atomic_load_explicit(&g->active, memory_order_relaxed) || !g->jb_ok ||
        g->seq != atomic_load_explicit(&g->kill_seq, memory_order_acquire))
        goto out;
    g->timed_out = 1;
    if (g->crit > 0) {
        g->pending = 1;
        goto out;
    }
    where = classify(context_pc(ctx));
    if (where == 0)
        siglongjmp(g->jb, GW_GUARD_CLOSE);
    if (where == 1 && atomic_load_explicit(&g->kill_level, memory_order_relaxed) >= 2)
        siglongjmp(g->jb, GW_GUARD_ABANDON);
    /* Interpreter, runtime or libc: stop at the next bytecode; if the code
     * is compiled, a following tick finds it in machine code. */
    lua_sethook(g->L, on_hook, LUA_MASKCOUNT, 1);
out:
    errno = saved;
}

/* ==================================================================== */
/* The watchdog thread                                                   */
/* ==================================================================== */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_failed;
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static gw_guard_t *wd_list;       /* borrowed guards */
static int *wd_stop;              /* the running watchdog's stop flag, NULL if none */
static pthread_t wd_thread;

static void init_once(void)
{
    struct sigaction sa;
    pthread_condattr_t ca;

    dl_iterate_phdr(on_phdr, (void *)(uintptr_t)lua_pcall);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&wd_cond, &ca))
        once_failed = 1;
    pthread_condattr_destroy(&ca);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(GW_GUARD_SIGNAL, &sa, NULL))
        once_failed = 1;
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void *wd_main(void *arg)
{
    int *stop = arg;
    pid_t pid = getpid();

    pthread_mutex_lock(&wd_lock);
    while (!*stop) {
        int64_t tick = 100 * 1000000LL;
        struct timespec ts;

        for (gw_guard_t *g = wd_list; g; g = g->next) {
            /* Read while its worker may be setting it (unarmed). */
            int64_t budget = atomic_load_explicit(&g->budget_ns, memory_order_relaxed);
            if (budget / 4 < tick)
                tick = budget / 4;
        }
        if (tick < 1000000)
            tick = 1000000;
        tick += gw_clock_mono_ns();
        ts.tv_sec = tick / 1000000000;
        ts.tv_nsec = tick % 1000000000;
        pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
        if (*stop)
            break;
        for (gw_guard_t *g = wd_list; g; g = g->next) {
            uint32_t seq;
            int64_t now, used;

            if (!atomic_load_explicit(&g->active, memory_order_acquire)) {
                g->wd_seen = 0;
                continue;
            }
            seq = __atomic_load_n(&g->seq, __ATOMIC_RELAXED);
            if (clock_gettime(g->clock, &ts))
                continue;
            now = ts_ns(&ts);
            if (!g->wd_seen || seq != g->wd_seq) {
                g->wd_seen = 1;
                g->wd_seq = seq;
                g->wd_start = now;
                continue;
            }
            used = now - g->wd_start;
            if (used < atomic_load_explicit(&g->budget_ns, memory_order_relaxed))
                continue;
            /* The level first: the handler reads it once it sees kill_seq. */
            atomic_store_explicit(&g->kill_level,
                                  used >= atomic_load_explicit(&g->abandon_ns, memory_order_relaxed) ? 2 : 1,
                                  memory_order_relaxed);
            atomic_store_explicit(&g->kill_seq, seq, memory_order_release);
            tgkill(pid, g->tid, GW_GUARD_SIGNAL);
        }
    }
    pthread_mutex_unlock(&wd_lock);
    free(stop);
    return NULL;
}

int gw_guard_register(gw_guard_t *g)
{
    clockid_t clock;
    int rc = 0;

    pthread_once(&once, init_once);
    if (once_failed)
        return -1;
    if (pthread_getcpuclockid(pthread_self(), &clock))
        return -1;
    pthread_mutex_lock(&wd_lock);
    /* The watchdog reads these under wd_lock. */
    g->tid = gettid();
    g->clock = clock;
    g->wd_seen = 0;
    if (!g->registered) {
        g->next = wd_list;
        wd_list = g;
        g->registered = 1;
    }
    if (!wd_stop) {
        sigset_t all, old;
        int *stop = calloc(1, sizeof(*stop));

        /* The watchdog takes no signals: block them all while creating it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (stop && pthread_create(&wd_thread, NULL, wd_main, stop) == 0) {
            wd_stop = stop;
        } else {
            free(stop);
            rc = -1;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&wd_lock);
    if (rc)
        gw_guard_unregister(g);
    return rc;
}

void gw_guard_unregister(gw_guard_t *g)
{
    int join = 0;
    pthread_t t;

    pthread_mutex_lock(&wd_lock);
    if (g->registered) {
        for (gw_guard_t **pp = &wd_list; *pp; pp = &(*pp)->next)
            if (*pp == g) {
                *pp = g->next;
                break;
            }
        g->registered = 0;
    }
    if (!wd_list && wd_stop) {
        /* Last one out stops the watchdog (its own flag: a new watchdog may
         * start before this one has noticed). */
        *wd_stop = 1;
        wd_stop = NULL;
        t = wd_thread;
        join = 1;
        pthread_cond_broadcast(&wd_cond);
    }
    pthread_mutex_unlock(&wd_lock);
    if (join)
        pthread_join(t, NULL);
    if (tls_guard == g)
        tls_guard = NULL;
}

void gw_guard_arm(gw_guard_t *g)
{
    tls_guard = g;
    g->timed_out = 0;
    g->pending = 0;
    g->where[0] = 0;
    atomic_store_explicit(&g->active, 1, memory_order_release);
}

void gw_guard_disarm(gw_guard_t *g)
{
    atomic_store_explicit(&g->active, 0, memory_order_release);
    g->jb_ok = 0;
}

void gw_guard_crit_enter(void)
{
    gw_guard_t *g = tls_guard;
    if (g)
        g->crit++;
}

void gw_guard_crit_leave(void)
{
    gw_guard_t *g = tls_guard;
    if (g)
        g->crit--;
}

int gw_guard_stop_pending(void)
{
    gw_guard_t *g = tls_guard;
    return g && atomic_load_explicit(&g->active, memory_order_relaxed) && g->timed_out;
}

int64_t gw_guard_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts_ns(&ts);
}

uint64_t gw_guard_abandoned(void)
{
    return atomic_load(&abandoned);
}

void gw_guard_note_abandoned(void)
{
    atomic_fetch_add(&abandoned, 1);
}
