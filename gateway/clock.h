/* clock.h — the one clock of the gateway, below every other module.
 *
 * Two kinds of time, never mixed:
 *   monotonic  for durations, deadlines and rate limits: it never jumps
 *              when the system time is set. Seconds as a double (deadlines
 *              compared with <, a microsecond's precision for centuries) or
 *              nanoseconds as an integer (CPU budgets, per-point costs).
 *   wall       Unix time, for a point's time of receipt and for what is
 *              written down (log lines, dead letters).
 * Condition variables that wait for a deadline are created with
 * CLOCK_MONOTONIC (pthread_condattr_setclock), so a monotonic deadline
 * converts to their timespec directly (gw_clock_timespec). */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Monotonic time in seconds. */
double gw_clock_mono(void);

/* Monotonic time in nanoseconds. */
int64_t gw_clock_mono_ns(void);

/* Wall-clock time as Unix nanoseconds. */
int64_t gw_clock_wall_ns(void);

/* Write wall_ns as UTC with milliseconds, "2026-11-25T20:30:00.123Z", into
 * out (outlen >= 25). Returns the length written. */
size_t gw_clock_utc(char *out, size_t outlen, int64_t wall_ns);

/* A time in seconds (monotonic, or a duration) as a struct timespec: for
 * pthread_cond_timedwait on a CLOCK_MONOTONIC condition, or sigtimedwait. */
struct timespec gw_clock_timespec(double s);

#endif
