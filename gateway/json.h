/* json.h — JSON ingest for POST /v1/points (our own streaming tokenizer: no DOM).
 *
 * A body is one point object or an array of them:
 *   {"series": "requests", "time": 1700000000.123456,
 *    "tags": {"route": "GET:/version", "status_code": 200},
 *    "fields": {"request_id": "4f1c", "execution_time": 0.0123}}
 * time: Unix seconds (number, microseconds kept exactly) or RFC 3339 string;
 * absent = now_ns. Tags: string, number or boolean, stored as strings.
 * Fields: integer (no fraction/exponent), float, string, boolean. A key
 * repeated in tags or fields takes its last value; a field named time is
 * dropped (as InfluxDB does); a NUL byte (\u0000) in a name or value
 * rejects the point. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "point.h"

/* Parse a body. Each good point is appended to out (its src is its array
 * index, 0 for a lone object); each bad one is counted in res with
 * GW_WHERE_INDEX and, for the first, a message. A body that is not JSON at
 * all is one GW_WHERE_BODY error naming line and column. Strings are copied
 * into a. Returns 0, or -ENOMEM. */
int gw_json_parse(const char *body, size_t len, int64_t now_ns, gw_arena_t *a,
                  gw_points_t *out, gw_result_t *res);

/* The string value of member key of the JSON object doc (len bytes), as
 * InfluxDB's error answers hold them ({"error": "..."}; {"message": "..."}):
 * the first one at the top level, unescaped. *out borrows doc or a. Returns 0;
 * -1 when doc is no object, has no such string member, or is cut short
 * before it; -ENOMEM. */
int gw_json_member_string(const char *doc, size_t len, const char *key, gw_arena_t *a, gw_str_t *out);

#endif
