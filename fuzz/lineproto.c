/* fuzz/lineproto.c — libFuzzer harness for the line-protocol parser and
 * encoder (gateway/lineproto.c).
 *
 * Property: every point the parser accepts either is refused by the encoder
 * with a reason (gw_lp_encode returns 1), or encodes to one line that parses
 * back to the same point: series, time, tags (sorted by the encoder) and
 * fields with their types, floats bit-exact. Anything else aborts. */
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gw_arena_t *a, *a2;
    static gw_points_t pts;
    gw_result_t res;
    gw_buf_t out = {0};
    /* An exact-size copy, so a read past the end is caught. */
    char *body = malloc(size ? size : 1);

    if (!a) {
        a = gw_arena_create(65536);
        a2 = gw_arena_create(65536);
    }
    memcpy(body, data, size);
    memset(&res, 0, sizeof(res));
    pts.n = 0;
    CHECK(gw_lp_parse(body, size, 1, 1700000000000000000LL, a, &pts, &res) == 0, "parse ENOMEM");
    for (uint32_t i = 0; i < pts.n; i++)
        roundtrip(&pts.v[i], a2, &out);
    gw_buf_free(&out);
    gw_arena_reset(a);
    free(body);
    return 0;
}
