/* harness.c — the busted harness's door, see harness.h. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "pipeline.h"
#include "schema.h"
#include "script.h"

#define HARNESS_MAX_POINTS 1000000

struct gw_harness {
    gw_schema_t *schema;               /* owned; pinned in w */
    gw_pipeline_t *w;                  /* owned */
    const struct gw_script_req *req;   /* borrowed: what the next runs' scripts see as req; NULL = none */
};

void gw_harness_set_req(gw_harness_t *h, const struct gw_script_req *req)
{
    h->req = req;
}

void gw_harness_close(gw_harness_t *h)
{
    if (!h)
        return;
    gw_pipeline_destroy(h->w);
    gw_schema_destroy(h->schema);
    free(h);
}

gw_harness_t *gw_harness_open(const char *path, char *err, size_t errlen)
{
    gw_config_t *cfg = gw_config_load(path, err, errlen);
    gw_harness_t *h = NULL;
    gw_script_set_t *set = NULL;

    if (!cfg)
        return NULL;
    if (!(set = gw_script_set_load(cfg, err, errlen)))
        goto done;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->schema = gw_schema_create(cfg)) || !(h->w = gw_pipeline_create(0)) ||
        gw_pipeline_pin_scripts(h->w, set)) {
        snprintf(err, errlen, "out of memory");
        gw_harness_close(h);
        h = NULL;
        goto done;
    }
    gw_pipeline_configure(h->w, cfg);
    gw_pipeline_pin_schema(h->w, h->schema);
done:
    gw_script_set_release(set);
    gw_config_free(cfg);
    return h;
}

int gw_harness_run(gw_harness_t *h, int format, const char *body, size_t len, int64_t ns_per_unit, char **json)
{
    gw_ingest_t in = {.format = format == GW_FMT_JSON ? GW_FMT_JSON : GW_FMT_LINEPROTO,
                      .ns_per_unit = ns_per_unit,
                      .now_ns = gw_clock_wall_ns(),
                      .req = h->req};
    gw_buf_t out = {0};
    int rc;

    *json = NULL;
    rc = gw_pipeline_debug(h->w, &in, body, len, HARNESS_MAX_POINTS, &out);
    if (!rc && gw_buf_putc(&out, '\0'))
        rc = -ENOMEM;
    if (rc) {
        gw_buf_free(&out);
        return rc;
    }
    *json = out.data;
    return 0;
}
