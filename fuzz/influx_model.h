/* fuzz/influx_model.h — a model of how InfluxDB 1.x (Debian's influxd 1.6.7)
 * reads and stores line protocol: an oracle for the fuzzers and the
 * differential tools, written apart from gateway/lp_parse.c on purpose.
 *
 * It is a port of the scanners of InfluxDB's models/points.go (scanLine,
 * scanKey with scanMeasurement, scanTags and the tag sort, scanFields with
 * scanNumber and scanBoolean, scanTime) and of the readers the write path
 * applies afterwards (Name, Tags/walkTags, the FieldIterator with scanTo and
 * scanFieldValue, escape.Unescape, unescapeTag, unescapeStringField), plus
 * what the shard and the TSM engine do with a parsed point: a field named
 * `time` is dropped, a tag named `time` or a point with no other field is
 * refused, two values of one field key with different types conflict, the
 * last value of a repeated key wins, and StringValue panics on a one-byte
 * value (outside the HTTP handler, so influxd dies). The scanners disagree
 * with each other on backslashes (scanFields pairs `\` with any byte,
 * scanTo and the key scanners only look at the byte before a delimiter), so
 * the model runs both, as influxd does, and reports what influxd would
 * store, refuse or crash on.
 *
 * Measured against the real influxd 1.6.7 with tools/lp_differential.lua.
 *
 * Use, from a fuzzer (one call per encoded point):
 *
 *     char why[256];
 *     if (im_check_encoded(line, len, &point, why, sizeof(why)))
 *         abort();  // InfluxDB would not store `point` from `line`
 *
 * where line/len is what gw_lp_encode(out, &point, GW_LP_NO_UINT, ...)
 * appended (one line ending in '\n'). Every function may be called from
 * any thread (im_check_encoded keeps a scratch arena per thread). Link
 * fuzz/influx_model.c (the Makefile's fuzz rule links it into every
 * harness). */
#ifndef FUZZ_INFLUX_MODEL_H
#define FUZZ_INFLUX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../gateway/arena.h"
#include "../gateway/point.h"

/* What influxd does with one line. */
enum {
    IM_STORED = 0,   /* answers 204, and the point reads back as modelled */
    IM_SKIPPED,      /* a blank or comment line: nothing happens */
    IM_REFUSED,      /* answers 400: the line does not parse, or the shard drops the point */
    IM_SERVER_ERROR, /* answers 5xx every time: a panic in the HTTP handler (exactly
                        100 * 2^k tags) or an engine error on a value it scanned */
    IM_LOST,         /* answers 204, but the point cannot be read back: a measurement
                        with a backslash before , space = or " */
    IM_CRASH,        /* the write kills influxd (StringValue's panic) */
};

/* The name of an IM_* outcome ("stored", "refused"...). */
const char *im_outcome_name(int outcome);

/* scanLine: where the line that starts at buf[i] ends, as influxd splits a
 * body: the index of the '\n' that ends it, or len. A backslash pairs with
 * the byte after it (a newline included), and a newline inside a quoted
 * field value does not end the line. */
size_t im_line_end(const char *buf, size_t len, size_t i);

/* Model one line (line..line+n, without the '\n' that ends it) as written
 * to /write?precision=ns: returns an IM_* outcome. For IM_STORED (and
 * IM_LOST) *out is the point as influxd stores it: the unescaped
 * measurement, tags sorted by key, fields in line order with the `time`
 * field dropped and a repeated key holding its last value, the time (now_ns
 * when the line has none). Strings and arrays are allocated in a, or borrow
 * line. *why (static text) says why for the other outcomes. Returns -1 when
 * a runs out of memory. */
int im_parse_line(const char *line, size_t n, int64_t now_ns, gw_arena_t *a, gw_point_t *out,
                  const char **why);

/* Does stored (from im_parse_line) hold exactly what p says: the same
 * series and time, p's tags with a non-empty value (in any order), p's
 * fields by key with the same type and value (floats bit-exact; an unsigned
 * value of p equal to a stored integer, as GW_LP_NO_UINT writes it)?
 * Returns 0, or 1 with the first difference in why. */
int im_same_point(const gw_point_t *stored, const gw_point_t *p, char *why, size_t whylen);

/* The round-trip property in one call: text (n bytes) is the line that
 * gw_lp_encode wrote for p. Returns 0 when influxd reads text as exactly
 * one line, stores it, and stores exactly p (im_same_point); otherwise 1
 * with the reason in why, or -1 on ENOMEM. */
int im_check_encoded(const char *text, size_t n, const gw_point_t *p, char *why, size_t whylen);

#endif
