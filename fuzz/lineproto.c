/* fuzz/lineproto.c — libFuzzer harness for the line-protocol parser and
 * encoder (gateway/lp_parse.c, lp_encode.c).
 *
 * Properties: every point the parser accepts either is refused by the
 * encoder with a reason (gw_lp_encode returns 1), or encodes to one line
 * that parses back to the same point: series, time, tags (sorted by the
 * encoder) and fields with their types, floats bit-exact; the line written
 * for InfluxDB 1.x is one that influxd stores as exactly that point; and
 * influxd, sent the same body, stores exactly that point from the point's
 * line (the last two judged by fuzz/influx_model.c; see roundtrip.h for
 * the deliberate differences left out). Anything else aborts. */
#include "roundtrip.h"

static int parse(const char *body, size_t len, gw_arena_t *a, gw_points_t *out, gw_result_t *res)
{
    return gw_lp_parse(body, len, 1, 1700000000000000000LL, a, out, res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_roundtrip(data, size, parse, 1700000000000000000LL);
    return 0;
}
