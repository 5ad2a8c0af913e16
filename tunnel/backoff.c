/* Retry delays: pure arithmetic, unit tested. */
#include "tunnel/backoff.h"

/* 0.25 s doubling to BACKOFF_UNREACH_SEC, after n such delays. */
static double
quick(int n)
{
	double	delay = 0.25;
	int	i;

	for (i = 0; i < n && delay < BACKOFF_UNREACH_SEC; i++)
		delay *= 2;
	return delay > BACKOFF_UNREACH_SEC ? BACKOFF_UNREACH_SEC : delay;
}

double
backoff_next(struct backoff *b, enum backoff_reason why, double jitter01)
{
	double	delay;
	int	i;

	switch (why) {
	case BACKOFF_LOST:
		b->unreachable = 0;
		b->lost_again = 0;
		return 0.0;
	case BACKOFF_LOST_AGAIN:
		b->unreachable = 0;
		return quick(b->lost_again++);
	case BACKOFF_UNREACHABLE:
		return quick(b->unreachable++);
	case BACKOFF_REFUSED:
	default:
		delay = 1.0;
		for (i = 0; i < b->refusals && delay < BACKOFF_MAX_SEC; i++)
			delay *= 2;
		if (delay > BACKOFF_MAX_SEC)
			delay = BACKOFF_MAX_SEC;
		b->refusals++;
		delay *= 0.8 + 0.4 * jitter01;
		return delay < 1.0 ? 1.0 : delay;
	}
}

void
backoff_reset(struct backoff *b)
{
	b->refusals = 0;
	b->unreachable = 0;
}
