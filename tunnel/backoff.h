/* When to try again, knowing why the last attempt failed. */
#ifndef TUNNEL_BACKOFF_H
#define TUNNEL_BACKOFF_H

enum backoff_reason {
	BACKOFF_LOST,		/* a working session died: retry at once */
	BACKOFF_UNREACHABLE,	/* TCP refused/unreachable: costs the server
				 * nothing, so retry often */
	BACKOFF_REFUSED		/* the server said no (auth, host key,
				 * forward): back off so sshd's penalties and
				 * fail2ban are never provoked */
};

#define BACKOFF_MAX_SEC		60.0
#define BACKOFF_UNREACH_SEC	1.0

struct backoff {
	int	refusals;	/* consecutive REFUSED outcomes */
	int	unreachable;	/* consecutive UNREACHABLE outcomes */
};

/*
 * Records a failure and returns the delay in seconds before the next
 * attempt. jitter01 is a random number in [0, 1) (passed in so the logic
 * stays testable). Refusals double from 1 s to 60 s with +-20% jitter;
 * unreachable servers are retried every 0.25 s doubling to 1 s.
 */
double	backoff_next(struct backoff *, enum backoff_reason, double jitter01);
/* Forgets past failures after a success. */
void	backoff_reset(struct backoff *);

#endif
