/* output.h — the outputs at run time: one buffer (fanout.h) between ingest
 * and all of them, and per output a sender thread with its own InfluxDB
 * client, backoff and figures (docs/outputs.md).
 *
 * Each output's thread takes its batches from its lanes in the buffer (one
 * lane per database it writes to) and delivers them by the answer table
 * of sender.c (gw_delivery_run). A lane whose delivery has to wait while
 * the output has other lanes is parked, so that a database InfluxDB
 * refuses (404) holds back only its own points. Nothing here is shared
 * between outputs but the buffer: an output that is down, slow or refusing
 * never delays another. */
#ifndef GW_OUTPUT_H
#define GW_OUTPUT_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "fanout.h"
#include "jsonw.h"
#include "outconf.h"

typedef struct gw_outputs gw_outputs_t;

/* An output's state, for /health. */
enum { GW_OUT_OK = 0, GW_OUT_DOWN, GW_OUT_REFUSING, GW_OUT_FULL };

/* Build the outputs of cfg (outconf.h), create the buffer (recovering what
 * their spools hold) and start a sender per output. NULL with the reason
 * in err. Stop with gw_outputs_stop. */
gw_outputs_t *gw_outputs_start(const gw_config_t *cfg, char *err, size_t errlen);

/* Borrowed from o. */
gw_fanout_t *gw_outputs_fanout(gw_outputs_t *o);
int gw_outputs_count(const gw_outputs_t *o);
const gw_outconf_t *gw_outputs_conf(const gw_outputs_t *o, int i);

/* The index of the output called name, or -1. */
int gw_outputs_find(const gw_outputs_t *o, const char *name, size_t n);

/* Output i's state now (GW_OUT_*). */
int gw_outputs_state(gw_outputs_t *o, int i);

/* Is luagw unable to place points anywhere: every output down, refusing or
 * full, for the outputs of some route (masks[0..n), the outputs each route
 * sends to)? */
int gw_outputs_stuck(gw_outputs_t *o, const uint64_t *masks, int n);

/* Sums over the outputs, for the process-wide figures: points and bytes
 * held, and the spools' bytes. */
void gw_outputs_held(gw_outputs_t *o, uint64_t *points, uint64_t *bytes, uint64_t *spool_bytes);

/* /health's "buffer.spool": the spools' {"points", "bytes",
 * "damaged_records", "appends", "syncs"} summed, or JSON null without
 * one, written to w. */
void gw_outputs_spool_json(gw_outputs_t *o, gw_jsonw_t *w);

/* /health's "outputs": {name: {state, host, port, database, buffer, spool,
 * written, failed, dead_lettered, overflowed, last_status, held_back}},
 * written to w. */
void gw_outputs_json(gw_outputs_t *o, gw_jsonw_t *w);

/* /metrics: every per-output family, labelled output="<name>". 0 or
 * -ENOMEM. */
int gw_outputs_prom(gw_outputs_t *o, gw_buf_t *b);

/* Close the buffer, let each output deliver what it holds within its
 * shutdown_timeout, stop the threads and free everything (spool files
 * stay). Logs, per output, what was left. Returns the points left
 * undelivered over all outputs. NULL is a no-op (0). */
uint64_t gw_outputs_stop(gw_outputs_t *o);

#endif
