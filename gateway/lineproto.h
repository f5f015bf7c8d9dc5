/* lineproto.h — InfluxDB line protocol: parser and encoder.
 *
 * The API of three files: lp_parse.c (reading, the ingest hot path),
 * lp_encode.c (writing every delivered point) and lp_names.c (the names
 * InfluxDB 1.x reads back, shared by both); lp_internal.h is what they
 * share and no one else sees. Numbers are read and written by numconv.c.
 *
 * Grammar (InfluxDB 1.x/2.x):
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 * Escapes, as InfluxDB 1.x reads them: measurement `\,` `\ ` `\=` `\"`; tag
 * keys and values `\,` `\=` `\ `; field keys `\,` `\=` `\ ` `\"` (a backslash
 * there pairs with any byte); string field values `\"` `\\`. A backslash
 * before any other character is literal. Names influxd would not read back
 * as written are refused (lp_names.c, gw_lp_bad_name), and so is a NUL byte in
 * any name or string value, and a series or field key that is not UTF-8.
 * Lines starting with `#` (after optional whitespace) and blank lines are skipped. Fields: float (`1`, `-1.5`,
 * `1e3`), integer (`1i`), unsigned (`1u`), string (`"..."`), boolean (t T
 * true True TRUE f F false False FALSE); a field key given twice keeps its
 * last value, a field named `time` is dropped, as in InfluxDB. */
#ifndef GW_LINEPROTO_H
#define GW_LINEPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "point.h"

/* Encoder flags. */
#define GW_LP_NO_UINT 0x1 /* target lacks unsigned (InfluxDB 1.x): write as `i`,
                             or fail when above INT64_MAX */

/* Map a precision name to nanoseconds per unit. Accepts n ns u us µ ms s m h
 * ("" = ns). Returns 0, or -1 when unknown. */
int gw_lp_precision(const char *name, int64_t *ns_per_unit);

/* Parse a body. Each good line becomes a point appended to out (its src is the
 * 1-based line number); each bad line is counted in res with
 * GW_WHERE_LINE and, for the first, a message naming what is wrong and the
 * byte column. Strings borrow body when they hold no escapes, otherwise they
 * are unescaped into a. Timestamps are scaled by ns_per_unit; lines without
 * one get now_ns. Returns 0, or -ENOMEM. */
int gw_lp_parse(const char *body, size_t len, int64_t ns_per_unit, int64_t now_ns,
                gw_arena_t *a, gw_points_t *out, gw_result_t *res);

/* Append p as one line ending in '\n' to out: tags sorted by key (p->tags is
 * sorted in place), every name escaped, floats in the shortest form that
 * reads back bit-exact, integers with `i`, nanosecond timestamp.
 * Returns 0; -ENOMEM; or 1 when the point cannot be written (empty series,
 * no fields, empty key, a name influxd would not read back as written, a
 * NUL byte, NaN/Inf, a key named `time`, duplicate key, unsigned too large
 * under GW_LP_NO_UINT...) with the reason in err.
 * out is unchanged unless 0 is returned. */
int gw_lp_encode(gw_buf_t *out, gw_point_t *p, unsigned flags, char *err, size_t errlen);

#endif
