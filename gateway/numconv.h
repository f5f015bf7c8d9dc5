/* numconv.h — numbers written as text, for every encoder.
 *
 * One formatter for the line protocol encoder and the JSON writer, so a
 * float reads the same everywhere luagw writes it: a decimal form that reads
 * back bit-exact (grisu2: the fewest digits for all but a few doubles in a
 * thousand, then one or two more, never over 17), printed as JavaScript
 * prints numbers — plain digits from 1e-6 up to 1e21 (`0.1`, `123`, `-0`),
 * exponent form outside that (`1e+21`, `5e-324`). Integers below 2^53 print as integers.
 * Both forms are valid JSON numbers and line protocol floats.
 *
 * The writers store whole 8-byte words: out must have GW_NUM_CHARS bytes of
 * room whatever the number, though the returned length is smaller. */
#ifndef GW_NUMCONV_H
#define GW_NUMCONV_H

#include <stddef.h>
#include <stdint.h>

/* Room the writers need in out: the longest text ("-" 17 digits "." "e-324")
 * plus the slack of a last 8-byte store. */
#define GW_NUM_CHARS 40

/* Write the finite v (callers handle NaN and infinities) as above into out;
 * returns the length (no NUL is written). */
size_t gw_num_double(char *out, double v);

/* Write v in decimal into out; returns the length (no NUL is written). */
size_t gw_num_u64(char *out, uint64_t v);
size_t gw_num_i64(char *out, int64_t v);

#endif
