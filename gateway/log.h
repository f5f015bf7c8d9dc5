/* log.h — one line per event on stderr: time, level, then key=value pairs.
 *
 *   2026-11-25T20:30:00.123Z level=warn msg="influx write failed" status=503
 *
 * Callers format the key=value part themselves (printf-style). */
#ifndef GW_LOG_H
#define GW_LOG_H

enum { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Set the minimum level printed. */
void gw_log_set_level(int level);

/* Every line this thread logs from now on ends with kv ("output=replica";
 * borrowed, must outlive the thread's logging; NULL: nothing). */
void gw_log_set_context(const char *kv);

/* Is level printed? Lets callers skip formatting work. */
int gw_log_enabled(int level);

/* Log msg (quoted for the reader) followed by the formatted key=value pairs,
 * e.g. gw_log(GW_LOG_WARN, "write failed", "status=%d", 503). fmt may be "". */
void gw_log(int level, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Rate limit for an error that can repeat per request: one per call site,
 * static and zero-initialised (GW_LOG_LIMIT_INIT). */
typedef struct {
    _Atomic long long last_ns; /* monotonic time of the last printed line, 0 = never */
    _Atomic unsigned suppressed;
} gw_log_limit_t;
#define GW_LOG_LIMIT_INIT {0, 0}

/* Like gw_log, but at most one line per every_s seconds per lim; the next
 * printed line ends with suppressed=N, the lines left out meanwhile. */
void gw_log_limited(gw_log_limit_t *lim, double every_s, int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The same window, for a caller that logs a tally of its own (points
 * dropped since its last line) rather than one line per event: 1 when a
 * line may be printed now (none yet, every_s seconds since the last, or
 * force), its time then noted; else 0. */
int gw_log_limit_pass(gw_log_limit_t *lim, double every_s, int force);

/* When lim lets the next line through, in gw_clock_mono's seconds (a time
 * already past when it would now): what a thread holding a tally wakes at. */
double gw_log_limit_next(const gw_log_limit_t *lim, double every_s);

#define gw_log_debug(msg, ...) gw_log(GW_LOG_DEBUG, msg, __VA_ARGS__)
#define gw_log_info(msg, ...)  gw_log(GW_LOG_INFO, msg, __VA_ARGS__)
#define gw_log_warn(msg, ...)  gw_log(GW_LOG_WARN, msg, __VA_ARGS__)
#define gw_log_error(msg, ...) gw_log(GW_LOG_ERROR, msg, __VA_ARGS__)

#endif
