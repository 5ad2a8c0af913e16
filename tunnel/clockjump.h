/*
 * A resume from suspend, seen between two readings of the clocks:
 * CLOCK_BOOTTIME counts the time asleep, CLOCK_MONOTONIC does not.
 */
#ifndef TUNNEL_CLOCKJUMP_H
#define TUNNEL_CLOCKJUMP_H

#include <stdint.h>

/* Boottime running ahead of monotonic by more than this is a suspend:
 * a busy machine never lets them part by seconds otherwise. */
#define CLOCKJUMP_SEC	3

struct clockjump {
	int64_t	gap_ms;		/* boottime minus monotonic, last reading */
	int	primed;
};

/*
 * Records a reading (both clocks in milliseconds) and returns how many
 * milliseconds the machine slept since the last one, when that is more
 * than CLOCKJUMP_SEC, else 0. The first reading only primes.
 */
int64_t	clockjump_feed(struct clockjump *, int64_t boot_ms, int64_t mono_ms);
/* Reads both clocks now and feeds them. */
int64_t	clockjump_check(struct clockjump *);

#endif
