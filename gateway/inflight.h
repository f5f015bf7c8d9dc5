/* inflight.h — the memory requests in progress may hold, bounded in bytes
 * (listen.max_inflight_bytes).
 *
 * Each connection may bring a body of up to listen.max_body_bytes, and a
 * thousand connections may do so at once; processing a body takes many
 * times its size (parse, scripts, encode). So whatever a request in progress
 * holds because of what its client sent is taken from one account first:
 *
 *   - its body, as it arrives: the hold grows in steps of GW_INFLIGHT_STEP
 *     (never beyond its Content-Length), so a client that trickles a large
 *     body holds what it has sent, not what it announced;
 *   - its inflation (Content-Encoding: gzip), as it grows;
 *   - while it is processed, its working memory: gw_inflight_cost, an upper
 *     bound measured for the worst bodies known (docs/hardening.md, "Memory
 *     budget"), which stands for what the parsers, scripts and encoder
 *     allocate for it.
 *
 * Room that is not there is refused, never waited for: the caller answers
 * 503 with Retry-After (GW_INFLIGHT_FULL: others hold it), or 413 when the
 * request alone would need more than the whole limit (GW_INFLIGHT_TOO_BIG).
 * A request gives back all it holds when it ends, however it ends (http.c:
 * libmicrohttpd's completion notification, also for clients gone mid-way).
 *
 * One account for the whole server, lock-free (one atomic word): it is
 * touched once per GW_INFLIGHT_STEP of body and twice per request. */
#ifndef GW_INFLIGHT_H
#define GW_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

/* The least a hold grows by, as a body arrives. */
#define GW_INFLIGHT_STEP ((size_t)64 << 10)

typedef struct gw_inflight gw_inflight_t;

/* What gw_inflight_take decided. */
enum {
    GW_INFLIGHT_OK = 0,
    GW_INFLIGHT_FULL,    /* others hold the room: retry later (503) */
    GW_INFLIGHT_TOO_BIG, /* more than the whole limit: never fits (413) */
};

typedef struct {
    uint64_t held;    /* bytes held now */
    uint64_t limit;   /* listen.max_inflight_bytes */
    uint64_t peak;    /* most held at once since start */
    uint64_t full;    /* takes refused for want of room (GW_INFLIGHT_FULL) */
    uint64_t too_big; /* takes refused as larger than the limit */
} gw_inflight_stats_t;

/* An account of limit bytes. NULL on ENOMEM. */
gw_inflight_t *gw_inflight_create(size_t limit);

/* Free it. NULL is a no-op. */
void gw_inflight_destroy(gw_inflight_t *a);

/* Raise a request's hold *held to at least want bytes. What is taken is
 * rounded up to a multiple of GW_INFLIGHT_STEP, but not beyond cap when
 * want <= cap (the most it will want: a Content-Length), nor beyond what is
 * free. Returns GW_INFLIGHT_OK with *held >= want, or GW_INFLIGHT_FULL or
 * GW_INFLIGHT_TOO_BIG with nothing taken. */
int gw_inflight_take(gw_inflight_t *a, size_t *held, size_t want, size_t cap);

/* Would n more bytes fit now? GW_INFLIGHT_OK, or what gw_inflight_take
 * would answer (counted as a refusal). Nothing is taken: a request asks
 * this of what it announces before it takes room as its body arrives. */
int gw_inflight_fits(gw_inflight_t *a, size_t n);

/* Lower a hold *held to keep bytes, giving the rest back (nothing when
 * *held <= keep). keep 0 gives back everything. */
void gw_inflight_keep(gw_inflight_t *a, size_t *held, size_t keep);

/* Has the account ebbed after a surge: below a quarter of the limit, and
 * above half of it since this last answered 1? Then is the time to hand
 * back to the system what malloc keeps of what requests freed (a surge of
 * many requests leaves its small blocks in the arenas of the threads that
 * took them). Says 1 once per surge. */
int gw_inflight_ebbed(gw_inflight_t *a);

/* Counts so far. */
void gw_inflight_stats(gw_inflight_t *a, gw_inflight_stats_t *out);

/* The memory that processing body (len bytes; JSON when json, else line
 * protocol) may take at most: parse, scripts, checks and encode, the body
 * itself included. *most is the most points it can hold: its lines, or its
 * JSON objects. Reads the body once (several bytes a cycle). */
size_t gw_inflight_cost(int json, const char *body, size_t len, size_t *most);

#endif
