/* Suspend detection from the two clocks: pure arithmetic, unit tested. */
#include <time.h>

#include "tunnel/clockjump.h"

int64_t
clockjump_feed(struct clockjump *cj, int64_t boot_ms, int64_t mono_ms)
{
	int64_t	gap = boot_ms - mono_ms, slept;

	if (!cj->primed) {
		cj->primed = 1;
		cj->gap_ms = gap;
		return 0;
	}
	slept = gap - cj->gap_ms;
	/* The gap only grows (NTP slews both clocks alike); a shrink is a
	 * new baseline, not a suspend. */
	cj->gap_ms = gap;
	return slept > (int64_t)CLOCKJUMP_SEC * 1000 ? slept : 0;
}

static int64_t
ms_of(clockid_t id)
{
	struct timespec	ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clockjump_check(struct clockjump *cj)
{
	int64_t	mono = ms_of(CLOCK_MONOTONIC);

	return clockjump_feed(cj, ms_of(CLOCK_BOOTTIME), mono);
}
