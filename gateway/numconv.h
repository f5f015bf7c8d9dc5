/* numconv.h — numbers read from text and written as text, for every parser
 * and encoder.
 *
 * Reading (gw_num_parse_double): a decimal float token, correctly rounded
 * without strtod in the common cases (Clinger's exact fast path, then x87
 * extended precision), strtod_l in the C locale for the rest.
 *
 * Writing: one formatter for the line protocol encoder and the JSON writer,
 * so a float reads the same everywhere luagw writes it: a decimal form that
 * reads back bit-exact (grisu2: the fewest digits for all but a few doubles
 * in a thousand, then one or two more, never over 17), printed as JavaScript
 * prints numbers — plain digits from 1e-6 up to 1e21 (`0.1`, `123`, `-0`),
 * exponent form outside that (`1e+21`, `5e-324`). Integers below 2^53 print
 * as integers. Both forms are valid JSON numbers and line protocol floats.
 * The integer writers are inline: the encoders write a time per point.
 *
 * The writers store whole 8-byte words: out must have GW_NUM_CHARS bytes of
 * room whatever the number, though the returned length is smaller. */
#ifndef GW_NUMCONV_H
#define GW_NUMCONV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Room the writers need in out: the longest text ("-" 17 digits "." "e-324")
 * plus the slack of a last 8-byte store. */
#define GW_NUM_CHARS 40

/* Longest float gw_num_put_double writes: "-" 17 digits "." "e-324". */
#define GW_NUM_DOUBLE_CHARS 32

/* 10^0 .. 10^22, each exactly a double: m / 10^k with m <= 2^53 and
 * k <= 22 is then correctly rounded (Clinger's fast path, for parsers that
 * gathered the digits themselves). */
extern const double gw_num_pow10[23];

/* Convert the float token s..s+n, already checked against the grammar
 * -?digits*[.digits*][(e|E)[+-]digits] (s need not be NUL-terminated).
 * Returns 0; -1 when it overflows to infinity (InfluxDB refuses those;
 * underflow to 0 or a subnormal is fine, as in Go's ParseFloat); or
 * -ENOMEM. */
int gw_num_parse_double(const char *s, size_t n, double *out);

/* Write the finite v (callers handle NaN and infinities) as above at d;
 * returns the end (no NUL is written). */
char *gw_num_put_double(char *d, double v);

/* The same, returning the length. */
size_t gw_num_double(char *out, double v);

/* Write v in decimal into out; returns the length (no NUL is written). */
size_t gw_num_u64(char *out, uint64_t v);
size_t gw_num_i64(char *out, int64_t v);

/* ------------------------------------------------------------------ */
/* Inline: digits read and written in a parser's and an encoder's loops */

#define NUM_ONES UINT64_C(0x0101010101010101)

/* Are the eight bytes of w all ASCII digits? Each byte must have 3 as its
 * high nibble, and keep it when 6 is added (0x30..0x39). A carry out of a
 * byte only happens from a byte that fails the test anyway. */
static inline int num_all_digits8(uint64_t w)
{
    uint64_t hi = UINT64_C(0xF0F0F0F0F0F0F0F0);
    return ((w & hi) | ((w + NUM_ONES * 6) & hi) >> 4) == NUM_ONES * 0x33;
}

/* The value of eight ASCII digits, the first in the lowest byte: digits
 * to pairs, pairs to quads and quads to the whole, by multiplication. */
static inline uint32_t num_value8(uint64_t w)
{
    uint64_t lanes = UINT64_C(0x000000FF000000FF);

    w -= NUM_ONES * '0';
    w = w * 10 + (w >> 8); /* even bytes: 10 * digit + the next digit */
    w = (w & lanes) * (100 + (UINT64_C(1000000) << 32)) +
        (w >> 16 & lanes) * (1 + (UINT64_C(10000) << 32));
    return (uint32_t)(w >> 32);
}

/* The value of the digits s..e (for a parser: inline, eight at a time on
 * little-endian machines). Returns 0, 1 when a byte is not a digit, or 2
 * when the value is above UINT64_MAX. */
static inline int gw_num_read_digits(const char *s, const char *e, uint64_t *out)
{
    uint64_t v = 0;

    if (e - s > 19) { /* rare; the only lengths that can overflow */
        for (const char *x = s; x < e; x++)
            if ((unsigned char)(*x - '0') >= 10)
                return 1;
        for (; s < e; s++) {
            unsigned d = (unsigned)(*s - '0');
            if (v > (UINT64_MAX - d) / 10)
                return 2;
            v = v * 10 + d;
        }
        *out = v;
        return 0;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; e - s >= 8; s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        if (!num_all_digits8(w))
            return 1;
        v = v * 100000000 + num_value8(w);
    }
#endif
    for (; s < e; s++) {
        if ((unsigned char)(*s - '0') >= 10)
            return 1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* The eight decimal digits of v < 10^8 as bytes 0..9 in memory order
 * (little-endian), all at once: split into halves of four digits, those
 * into pairs, the pairs into digits, dividing by multiplication. */
static inline uint64_t num_digits8(uint32_t v)
{
    uint64_t x = v / 10000 | (uint64_t)(v % 10000) << 32;
    uint64_t q = (x * 10486 >> 20) & UINT64_C(0x0000007F0000007F); /* /100 */
    x = q | (x - q * 100) << 16;
    q = (x * 103 >> 10) & UINT64_C(0x000F000F000F000F); /* /10 */
    return q | (x - q * 10) << 8;
}

/* Write v < 10^8 without leading zeros; returns the end. Stores eight
 * bytes whatever the length: callers reserve the slack. */
static inline char *num_put_short(char *d, uint32_t v)
{
    uint64_t x = num_digits8(v);
    /* Leading zero digits are the low zero bytes; the last digit counts as
     * non-zero so that 0 prints as "0". */
    unsigned z = (unsigned)__builtin_ctzll(x | UINT64_C(1) << 56) >> 3;

    x = (x + UINT64_C(0x3030303030303030)) >> (8 * z);
    memcpy(d, &x, 8);
    return d + 8 - z;
}

static inline char *num_put_8(char *d, uint32_t v)
{
    uint64_t x = num_digits8(v) + UINT64_C(0x3030303030303030);
    memcpy(d, &x, 8);
    return d + 8;
}

/* Write v in decimal; returns the end. May store up to 7 bytes past it. */
static inline char *gw_num_put_u64(char *d, uint64_t v)
{
    if (v < 100000000)
        return num_put_short(d, (uint32_t)v);
    if (v < UINT64_C(10000000000000000)) {
        d = num_put_short(d, (uint32_t)(v / 100000000));
        return num_put_8(d, (uint32_t)(v % 100000000));
    }
    d = num_put_short(d, (uint32_t)(v / UINT64_C(10000000000000000)));
    v %= UINT64_C(10000000000000000);
    d = num_put_8(d, (uint32_t)(v / 100000000));
    return num_put_8(d, (uint32_t)(v % 100000000));
}

static inline char *gw_num_put_i64(char *d, int64_t v)
{
    if (v < 0) {
        *d++ = '-';
        return gw_num_put_u64(d, 0 - (uint64_t)v);
    }
    return gw_num_put_u64(d, (uint64_t)v);
}

#endif
