/* harness.h — the busted harness's door into the engine.
 *
 * scripts/luagw/harness.lua loads libluagw.so through LuaJIT's FFI and
 * sees only these three functions and an opaque pointer. A harness is one
 * pipeline (pipeline.h) made from a configuration file as luagw makes its
 * workers' — its scripts pinned, its series declarations, its limits and
 * its InfluxDB version — and a run is gw_pipeline_debug: the answer is
 * what POST /v1/debug/transform answers, and what /write would do. */
#ifndef GW_HARNESS_H
#define GW_HARNESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_harness gw_harness_t;

/* A harness for the configuration file at path, or NULL with the reason
 * (a config or script error, as luagw would print it) in err. */
gw_harness_t *gw_harness_open(const char *path, char *err, size_t errlen);

/* Run body (JSON when format is 1, else line protocol scaled by
 * ns_per_unit) and put the answer (trace.h) into *json: malloc'd,
 * NUL-terminated, the caller frees it. At most 1,000,000 points come out.
 * 0, GW_PIPELINE_TOO_MANY, or -ENOMEM. */
int gw_harness_run(gw_harness_t *h, int format, const char *body, size_t len, int64_t ns_per_unit, char **json);

/* What the scripts of the next runs see as req (script.h; borrowed until
 * set again); NULL: every field nil. */
struct gw_script_req;
void gw_harness_set_req(gw_harness_t *h, const struct gw_script_req *req);

/* NULL is a no-op. */
void gw_harness_close(gw_harness_t *h);

#endif
