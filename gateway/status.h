/* status.h — what GET /status shows: the live state of the gateway.
 *
 *   GET /status        the page (gateway/status.html, compiled in)
 *   GET /status.json   what the page reads once a second (docs/operations.md)
 *
 * The rate history is kept here, server-side, so that a page opened now
 * shows the last five minutes at once: a sampler thread reads the per-series
 * accepted counters (metrics.h) once a second into a ring of
 * GW_STATUS_HISTORY seconds for at most GW_STATUS_SERIES series (a series
 * silent for the whole ring gives its place to a new one; beyond that, new
 * series show counters but no chart). It holds about 80 KB, whatever the
 * traffic. The last error of each series (a rejected point or a script
 * error), the outputs' last success and failure, and the last reload's
 * result are noted by the modules where they happen, in tables as bounded. */
#ifndef GW_STATUS_H
#define GW_STATUS_H

#include <stddef.h>

#include "output.h"
#include "config.h"

#define GW_STATUS_HISTORY 300 /* seconds of rate history per series */
#define GW_STATUS_SERIES 64   /* series with a history (and a last error) */
#define GW_STATUS_MSG_MAX 300 /* bytes of an error message kept */

/* Note the start: the config file's path (copied) and the scripts loaded,
 * and start the sampler. 0, or -1 when the thread cannot start (the page
 * then shows no history). */
int gw_status_start(const char *config_path, int scripts);

/* Stop the sampler. A no-op when it is not running. */
void gw_status_stop(void);

/* A point of series (n bytes) failed: kind is "rejected" (a 400 for its
 * client) or "script" (its script failed); msg is the reason. Cheap enough
 * for every rejected point (one uncontended lock, one copy). */
void gw_status_error(const char *series, size_t n, const char *kind, const char *msg);

/* The output's write attempt succeeded (ok), or failed with HTTP status
 * (0: no answer) and reason. */
void gw_status_write(int ok, long status, const char *reason);

/* A reload (SIGHUP) ended: ok with scripts loaded, or failed with reason
 * (the running scripts stay). */
void gw_status_reload(int ok, int scripts, const char *reason);

/* /status.json for the running cfg and queue q (both borrowed): malloc'd
 * text, the caller frees it;
 * NULL when out of memory. */
char *gw_status_json(const gw_config_t *cfg, gw_outputs_t *outs);

/* The page, gateway/status.html, as compiled in (status_page.c). */
extern const char gw_status_html[];
extern const size_t gw_status_html_len;

#endif
