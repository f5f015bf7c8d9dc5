/* fuzz/json.c — libFuzzer harness for the JSON ingest (gateway/json.c).
 *
 * Property: no crash, leak or sanitizer report on any body; the counts add
 * up; and every accepted point that the line-protocol encoder takes parses
 * back from its line unchanged and is stored from it unchanged by influxd
 * (fuzz/influx_model.c): what /v1/points accepts reaches InfluxDB as it
 * was sent. */
#include "roundtrip.h"
#include "../gateway/json.h"

static int parse(const char *body, size_t len, gw_arena_t *a, gw_points_t *out, gw_result_t *res)
{
    return gw_json_parse(body, len, 1700000000000000000LL, a, out, res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_roundtrip(data, size, parse, 0);
    return 0;
}
