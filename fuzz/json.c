/* fuzz/json.c — libFuzzer harness for the JSON ingest (gateway/json.c).
 *
 * Property: no crash, leak or sanitizer report on any body; the counts add
 * up; and every accepted point that the line-protocol encoder takes parses
 * back from its line unchanged (what /v1/points accepts reaches InfluxDB as
 * it was sent). */
#include "roundtrip.h"
#include "../gateway/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_arena_t *a, *a2;
    static gw_points_t pts;
    gw_result_t res;
    gw_buf_t out = {0};
    char *body = malloc(size ? size : 1);

    if (!a) {
        a = gw_arena_create(65536);
        a2 = gw_arena_create(65536);
    }
    memcpy(body, data, size);
    memset(&res, 0, sizeof(res));
    pts.n = 0;
    CHECK(gw_json_parse(body, size, 1700000000000000000LL, a, &pts, &res) == 0, "parse ENOMEM");
    for (uint32_t i = 0; i < pts.n; i++)
        roundtrip(&pts.v[i], a2, &out);
    gw_buf_free(&out);
    gw_arena_reset(a);
    free(body);
    return 0;
}
