/* refusal.h — which lines of a write InfluxDB's refusal names.
 *
 * InfluxDB says which points it refused only in words. 1.x and 2.x name one
 * field type conflict ("input field "v" on measurement "m" is type string,
 * already exists as type integer") with the count of points dropped, and 1.x
 * quotes a line it could not parse ("unable to parse 'm v=': missing field
 * value"). Every line of the body that has the named field with the named
 * type on the named measurement (or is the quoted line) is refused for the
 * same reason. The sender moves those lines apart and sends both parts
 * again: a client that keeps sending one wrong type costs two or three
 * requests per batch instead of a bisection per point (docs/delivery.md).
 *
 * Only the words are trusted, never a guess: a line is moved when its own
 * text shows the named measurement, field and type. What was moved is still
 * sent to InfluxDB, which decides; nothing is refused here. */
#ifndef GW_REFUSAL_H
#define GW_REFUSAL_H

#include <stdint.h>

/* Move the lines of [lo, hi) that InfluxDB's error message names to the end
 * of the range, keeping the order within both parts. data holds the lines,
 * ends[i] the offset just past line i; both are rewritten in place (the
 * range keeps its bytes). Returns how many lines were moved: 0 when the
 * message names nothing this code understands or no line of the range, or
 * -ENOMEM. */
int gw_refusal_partition(const char *error, char *data, uint32_t *ends, uint32_t lo, uint32_t hi);

#endif
