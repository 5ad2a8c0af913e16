/* --connect-retry's schedule: pure arithmetic, unit tested. */
#include <errno.h>

#include "relay/retry.h"

int
retry_worth(int error)
{
	return error == ECONNREFUSED || error == ENETUNREACH ||
	    error == EHOSTUNREACH;
}

long
retry_delay_ms(uint64_t now_ms, uint64_t deadline_ms, uint32_t rnd)
{
	uint64_t	delay = RETRY_MIN_MS + rnd % (RETRY_JITTER_MS + 1);

	if (now_ms >= deadline_ms)
		return -1;
	/* The last attempt is made at the deadline itself. */
	if (delay > deadline_ms - now_ms)
		delay = deadline_ms - now_ms;
	return (long)delay;
}

uint32_t
retry_rand(uint32_t *state)
{
	uint32_t	x = *state ? *state : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}
