/* bodies.h — request bodies of the five seed series, for the load generator
 * (bench/load.c) and the replay (bench/replay.c), so that both measure the
 * same bytes.
 *
 * A body holds npoints points cycling through requests, errors,
 * subscription_error, ws_requests and redis_message (the shapes of
 * spec/e2e_spec.lua's SEED), with varying routes, status codes, ids and
 * durations, tags in client order (not sorted), nanosecond timestamps. Bodies
 * built with different seeds differ in every id and timestamp. */
#ifndef BENCH_BODIES_H
#define BENCH_BODIES_H

#include <stddef.h>

enum { BODY_LP = 0, BODY_JSON = 1 };

/* Build one body: line protocol (one point per line, each ending in '\n')
 * or a JSON array of point objects. Returns malloc'd text (the caller frees
 * it) and its length in *len; NULL on ENOMEM. */
char *bench_body(int format, unsigned npoints, unsigned seed, size_t *len);

/* The same, with one more tag on every point, shape=K, K cycling through
 * 0..shapes-1 across bodies (point i of the body of seed s has K =
 * ((s - 1) * npoints + i) % shapes): that many distinct tag sets per
 * series, for the memo cache's worst case. shapes 0: bench_body. */
char *bench_body_shapes(int format, unsigned npoints, unsigned seed, unsigned shapes, size_t *len);

#endif
