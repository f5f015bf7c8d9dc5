/* script_guard.h — what keeps a script from hurting luagw: the per-state
 * memory allocator (with its cap) and the watchdog that stops a script call
 * that runs too long. Internal to the scripting engine (script.c).
 *
 * The budget holds for JIT-compiled code, where LuaJIT runs no hooks
 * (LuaJIT issues #723, #1488). One watchdog thread per process reads each
 * armed worker's CPU clock every tick; when the call in progress (the
 * heartbeat `seq`, bumped by the driver before every script call) has used
 * its budget, it sends the worker thread GW_GUARD_SIGNAL. The handler, on
 * the worker thread, looks at where the thread was interrupted:
 *   - inside a critical section (the allocator, logging, localtime: code
 *     that takes locks): it only sets `pending`; the allocator then fails
 *     the next allocation, which LuaJIT turns into a clean error;
 *   - in LuaJIT's interpreter or runtime: it sets a count hook, which raises
 *     a clean Lua error at the next bytecode (the state survives);
 *   - in JIT-compiled machine code (no loaded object's text): the heap is
 *     consistent there, so it siglongjmp()s out of the call; the state is
 *     then closed (lua_close) and a fresh one takes its place;
 *   - still inside LuaJIT's C runtime long after the budget (a pathological
 *     pattern match): it siglongjmp()s too, and the state is abandoned: its
 *     memory is freed chunk by chunk without lua_close (its machine code,
 *     a few dozen KB, is leaked and logged).
 * The watchdog keeps ticking until the call ends, so a call that escaped one
 * signal (it was in libc, say) is caught at a following tick. */
#ifndef GW_SCRIPT_GUARD_H
#define GW_SCRIPT_GUARD_H

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <lua.h>

#define GW_GUARD_SIGNAL SIGXCPU

/* How a guarded call ended, as sigsetjmp returns it. */
enum { GW_GUARD_CLOSE = 1, GW_GUARD_ABANDON = 2 };

/* ------------------------------------------------------------ allocator */

/* One Lua state's memory: small blocks from size classes carved out of
 * 64 KB chunks, large blocks from malloc, all of it freed at once by
 * gw_lalloc_free_all. Used by one thread at a time. */
typedef struct gw_lalloc gw_lalloc_t;
typedef struct gw_guard gw_guard_t;

/* Create an allocator with a cap in bytes (0 = none). NULL on ENOMEM. */
gw_lalloc_t *gw_lalloc_create(size_t cap);

/* The lua_Alloc function; its ud is the gw_lalloc_t. */
void *gw_lalloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Bytes the Lua state holds now. */
size_t gw_lalloc_used(const gw_lalloc_t *a);
size_t gw_lalloc_cap(const gw_lalloc_t *a);

/* While off, growth is allowed past the cap (state creation, reset). */
void gw_lalloc_enforce(gw_lalloc_t *a, int on);

/* Fail allocations while guard->pending is set (a stop was requested
 * while the thread was in a critical section). NULL detaches. */
void gw_lalloc_attach(gw_lalloc_t *a, gw_guard_t *g);

/* Free every block and chunk, whatever state the Lua heap is in, and the
 * allocator itself. NULL is a no-op. */
void gw_lalloc_free_all(gw_lalloc_t *a);

/* ------------------------------------------------------------ watchdog */

/* Threads: the worker (and its signal handler, on the same thread) and
 * the watchdog. Every field one of them writes while the other may read it
 * is atomic, except seq, which the driver bumps from Lua through the FFI
 * (an aligned 32-bit store; the watchdog loads it atomically). */
struct gw_guard {
    /* Shared with the driver and the watchdog. */
    volatile uint32_t seq;       /* bumped before every script call */
    atomic_int active;           /* a guarded call is in progress */
    /* Set by the worker before arming, read by the watchdog. */
    _Atomic int64_t budget_ns;   /* CPU time one call may use */
    _Atomic int64_t abandon_ns;  /* after this much, leave LuaJIT's C code too */
    lua_State *L;                /* borrowed: the state in the call */
    /* Set by the watchdog, read by the signal handler. */
    atomic_uint kill_seq;
    atomic_int kill_level;       /* 1 = stop, 2 = stop even inside LuaJIT's C code */
    /* Set by the signal handler. */
    volatile sig_atomic_t timed_out;
    volatile sig_atomic_t pending;  /* a stop waits for the critical section to end */
    volatile sig_atomic_t crit;     /* > 0: in code that must not be jumped out of */
    volatile sig_atomic_t jb_ok;    /* jb is valid */
    sigjmp_buf jb;
    char where[128];             /* "file:line" of a soft stop, "" when unknown */
    /* Owned by the watchdog (under its lock). */
    pid_t tid;
    clockid_t clock;             /* the worker thread's CPU clock */
    uint32_t wd_seq;
    int wd_seen;
    int64_t wd_start;
    gw_guard_t *next;            /* borrowed: the watchdog's list */
    int registered;
};

/* Register the calling thread's guard with the watchdog (started on first
 * use) and install the signal handler. Call on the thread that will run the
 * guarded calls. 0, or -1 when the watchdog thread cannot start. */
int gw_guard_register(gw_guard_t *g);

/* Remove a guard; the watchdog never touches it again. Idempotent. */
void gw_guard_unregister(gw_guard_t *g);

/* Make g the guard of the calling thread and start counting. Between arm and
 * disarm the call must be below a sigsetjmp(g->jb, 0) with jb_ok set. */
void gw_guard_arm(gw_guard_t *g);
void gw_guard_disarm(gw_guard_t *g);

/* Critical sections: no jump may leave them (locks, malloc). */
void gw_guard_crit_enter(void);
void gw_guard_crit_leave(void);

/* Is a stop pending for the calling thread's armed guard? */
int gw_guard_stop_pending(void);

/* CPU time of the calling thread, ns. */
int64_t gw_guard_thread_cpu_ns(void);

/* Count of states abandoned (mcode leaked) in this process, for logs. */
uint64_t gw_guard_abandoned(void);
void gw_guard_note_abandoned(void);

#endif
