/* influx.h — InfluxDB output over HTTP (libcurl): one write request at a time
 * on a reused keep-alive connection. Knows the 1.x and 2.x write APIs; the
 * decision what to do with an answer belongs to sender.c. */
#ifndef GW_INFLUX_H
#define GW_INFLUX_H

#include <stddef.h>

#include "config.h"

typedef struct gw_influx gw_influx_t;

/* How much of an answer came back. A complete answer is never taken for a
 * missing one: an answer that arrived but cannot be read (a NUL byte in a
 * header, a malformed status line, cut short) is an outcome of its own. */
enum {
    GW_ANSWER_HTTP = 0,       /* a complete HTTP answer: status is valid */
    GW_ANSWER_NONE = 1,       /* none: not connected, reset before answering, timed out */
    GW_ANSWER_UNREADABLE = 2, /* something answered, but not a readable HTTP answer */
};

/* What InfluxDB answered to one write. */
typedef struct {
    long status;        /* HTTP status; 0 when none could be read */
    int kind;           /* GW_ANSWER_* */
    double retry_after; /* seconds from a Retry-After header, -1 when none */
    char error[512];    /* InfluxDB's error message, or libcurl's when the answer is not complete */
} gw_influx_answer_t;

/* Create a client for cfg->monitoring (the config must outlive it). NULL on
 * failure with the reason in err. Free with gw_influx_destroy. */
gw_influx_t *gw_influx_create(const gw_config_t *cfg, char *err, size_t errlen);

/* POST len bytes of line protocol (nanosecond timestamps). Compresses with
 * gzip when configured. Always fills ans. Returns 0 when InfluxDB answered
 * 2xx, 1 for any other answer or no answer. Not thread-safe: one sender. */
int gw_influx_write(gw_influx_t *c, const char *body, size_t len, gw_influx_answer_t *ans);

void gw_influx_destroy(gw_influx_t *c);

#endif
