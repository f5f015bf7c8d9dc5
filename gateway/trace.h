/* trace.h — what became of each point of one pipeline run, as JSON: the
 * answer of POST /v1/debug/transform and of the busted harness.
 *
 * The pipeline (pipeline.c) records into a trace while it runs the body
 * exactly as ingest does, so the trace can only say what /write would do:
 * each point stored (as stored, with its line), each point rejected and
 * why (limits, series declarations, the encoder's rules), each failed
 * script call, the first parse error, and the verdict — the status and the
 * JSON body /write would answer. Scripts report through the callbacks of
 * gw_trace_scripts (script.h's gw_script_trace_t); script.c knows nothing
 * of JSON.
 *
 * The answer (docs/scripts.md):
 *   {"errors": [{action, kind, message, script, series, src}],
 *    "parse_error": {at, count, error, where},          (when one)
 *    "points": [{exact?, fields, line, scripts, series, src, tags, time,
 *                time_ns, types}],
 *    "rejected": [{error, scripts, series, src}],
 *    "verdict": {status, error?, line|index?, accepted?, rejected?}}
 * Names and values are written as they are when UTF-8, else with each bad
 * byte as \xHH (jsonw.h); numbers in the shortest form that reads back, the
 * form of the line (numconv.h).
 *
 * What a trace holds is bounded by max_points (gw_trace_begin): past that
 * many points stored or rejected, it only counts, and gw_trace_write says
 * GW_TRACE_TOO_MANY. Strings of points are borrowed from the run (body,
 * arena, Lua state): write the answer before the next run. */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "point.h"
#include "script.h"

typedef struct gw_trace gw_trace_t;

/* gw_trace_write: more points than max_points came out of the scripts. */
#define GW_TRACE_TOO_MANY 1

/* An empty trace; NULL on ENOMEM. Free with gw_trace_destroy. */
gw_trace_t *gw_trace_create(void);
void gw_trace_destroy(gw_trace_t *t);

/* Start recording a run; keep at most max_points points, stored and
 * rejected together. */
void gw_trace_begin(gw_trace_t *t, uint32_t max_points);

/* The callbacks for gw_script_run. Borrowed from t. */
const gw_script_trace_t *gw_trace_scripts(gw_trace_t *t);

/* The parse of the body ended as res says: its first error, if any, is
 * the answer's parse_error. */
void gw_trace_parsed(gw_trace_t *t, const gw_result_t *res);

/* Point k (its index after the scripts; UINT32_MAX before them) was
 * rejected with err, or stored as the line at offset at (len bytes, no
 * newline) of the run's output. p is copied; its strings are borrowed.
 * Running out of memory here makes gw_trace_write fail. */
void gw_trace_reject(gw_trace_t *t, uint32_t k, const gw_point_t *p, const char *err);
void gw_trace_store(gw_trace_t *t, uint32_t k, const gw_point_t *p, size_t at, size_t len);

/* Append the answer to out: status is what /write would answer (204, 400,
 * 413), res its result; lines the run's output, where the stored points'
 * lines are. 0, GW_TRACE_TOO_MANY (nothing written), or -ENOMEM. */
int gw_trace_write(gw_trace_t *t, int status, const gw_result_t *res, const char *lines, gw_buf_t *out);

#endif
