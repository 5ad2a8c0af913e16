/*
 * --connect-retry: when a refused connect is worth trying again, and when
 * to try. Pure arithmetic, unit tested; conn.c keeps the timer.
 */
#ifndef RELAY_RETRY_H
#define RELAY_RETRY_H

#include <stdint.h>

/* Attempts are RETRY_MIN_MS to RETRY_MIN_MS + RETRY_JITTER_MS apart. */
#define RETRY_MIN_MS	100
#define RETRY_JITTER_MS	150

/* Whether a connect that failed with errno error may well succeed in a
 * moment: refused, or no route (a restarting server, a flapping link).
 * A timeout or a failed lookup is not retried. */
int	retry_worth(int error);
/* Milliseconds from now_ms to the next attempt of a connect held until
 * deadline_ms, jittered by rnd (any 32-bit number) and never past the
 * deadline; -1 once the deadline has passed (give up). */
long	retry_delay_ms(uint64_t now_ms, uint64_t deadline_ms, uint32_t rnd);
/* The next of a cheap pseudo-random sequence (xorshift32; *state not 0). */
uint32_t retry_rand(uint32_t *state);

#endif
