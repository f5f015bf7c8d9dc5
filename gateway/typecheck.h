/* typecheck.h — the field types of one request, checked point by point.
 *
 * InfluxDB stores one type per field key of a measurement (in a shard): a
 * request that gives a field two types gets `field type conflict` for the
 * points of the later type, and the others are stored (a partial write; on
 * a shard the request itself creates, influxd 1.6.7 refuses all of its
 * points). luagw cannot know the types already stored, but it sees the
 * ones inside a request: a point that gives a field of its series another
 * type than an earlier point of the same request is refused, as influxd
 * refuses it, instead of being acknowledged and dead-lettered later. The
 * first type seen wins, as in influxd. Points are checked as they will be
 * written (after the scripts, unsigned as integer for InfluxDB 1.x), and
 * only the types of accepted points count. The request's time span is not
 * looked at: influxd's shards split a request only when it spans a shard
 * boundary (docs/compatibility.md).
 *
 * One per worker, reset at each request; names are borrowed from the
 * request's points. It holds one entry per distinct series and per
 * distinct (series, field key) of a request, kept for the next request: no
 * allocation per point in the steady state. A point costs a lookup of its
 * series (a cache of the last one, else a hash) and one key comparison per
 * field when its fields come in the order of the series' previous point. */
#ifndef GW_TYPECHECK_H
#define GW_TYPECHECK_H

#include <stddef.h>

#include "point.h"

typedef struct gw_typecheck gw_typecheck_t;

/* An empty checker; NULL on ENOMEM. Free with gw_typecheck_destroy. */
gw_typecheck_t *gw_typecheck_create(void);

/* Forget the previous request's types (its names are gone). */
void gw_typecheck_reset(gw_typecheck_t *tc);

/* Check p's fields against the types this request's earlier points gave
 * them, as written with lp_flags (GW_LP_NO_UINT: unsigned is integer).
 * Returns 0 and remembers p's types; 1 when a field of p had another type
 * (err says which, and where: kind is a gw_where_t for the earlier point's
 * src); or -ENOMEM. p's names must stay valid until the next reset. */
int gw_typecheck_point(gw_typecheck_t *tc, const gw_point_t *p, unsigned lp_flags, int kind, char *err,
                       size_t errlen);

/* NULL is a no-op. */
void gw_typecheck_destroy(gw_typecheck_t *tc);

#endif
