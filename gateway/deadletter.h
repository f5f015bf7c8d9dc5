/* deadletter.h — the points InfluxDB refused for good (a field type
 * conflict, a point too large for its body limit...): counted per series,
 * logged at most every few seconds, and optionally appended to a file.
 *
 * The file is line protocol, so it can be replayed once the cause is fixed
 * (`curl --data-binary @file 'http://influx:8086/write?db=...'`); each group
 * of lines follows one comment line that says when and why:
 *
 *   # 2026-11-25T20:30:00.123Z status=400 error="partial write: field type conflict: ..."
 *   cpu,host=a usage="high" 1700000000000000000
 *
 * Process-wide, like the metrics: the sender adds, /health reads. */
#ifndef GW_DEADLETTER_H
#define GW_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

/* Why points were given up (docs/delivery.md, "Dead letters"). */
typedef enum {
    GW_DL_REFUSED = 0,     /* InfluxDB refused them (400/422) */
    GW_DL_TOO_LARGE,       /* 413 for a single point */
    GW_DL_SERVER_ERROR,    /* a status InfluxDB gave only for them while it took other writes */
    GW_DL_NO_ANSWER,       /* InfluxDB never answered a write of them, while it answered others */
    GW_DL_UNREADABLE,      /* InfluxDB's answer to them could not be read, while others could */
    GW_DL_UNRESOLVED,      /* a partial write not looked into: InfluxDB stored all but some of them */
    GW_DL_NREASONS
} gw_dl_reason_t;

/* Start counting, and writing to path unless it is empty. 0, or -1 with the
 * reason in err (the file cannot be opened for appending). */
int gw_deadletter_open(const char *path, char *err, size_t errlen);

/* Points [from, to) of a batch were given up: lines holds the batch, ends[i]
 * the offset just past point i. status and why are InfluxDB's answer,
 * reason a gw_dl_reason_t. */
void gw_deadletter_add(const char *lines, const uint32_t *ends, uint32_t from, uint32_t to, long status,
                       int reason, const char *why);

/* {"points": total, "file": path|null, "series": {"name": count, ...},
 *  "reasons": {"server_error": {"points": n, "series": {"name": n}}, ...}}
 * (only the reasons that occurred), written as the next value of w. */
void gw_deadletter_json(gw_jsonw_t *w);

/* When (monotonic seconds) points held back by the log's rate limit are
 * due to be logged; 0 when none are held. */
double gw_deadletter_due(void);

/* Log the points held back if they are due: the sender calls it between
 * batches, so the last burst is logged without waiting for the next. */
void gw_deadletter_tick(void);

/* Log what the rate limit held back, close the file, forget the counts. */
void gw_deadletter_close(void);

#endif
