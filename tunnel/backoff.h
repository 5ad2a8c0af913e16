/* When to try again, knowing why the last attempt failed. */
#ifndef TUNNEL_BACKOFF_H
#define TUNNEL_BACKOFF_H

enum backoff_reason {
	BACKOFF_LOST,		/* a working session died: retry at once */
	BACKOFF_LOST_AGAIN,	/* it died soon after login, again: retry
				 * within a second, so a server that drops
				 * every session is not hammered */
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
	int	lost_again;	/* consecutive LOST_AGAIN outcomes */
};

/*
 * Records a failure and returns the delay in seconds before the next
 * attempt. jitter01 is a random number in [0, 1) (passed in so the logic
 * stays testable). Refusals double from 1 s to 60 s with +-20% jitter;
 * unreachable servers, and sessions lost again soon after login, are
 * retried every 0.25 s doubling to 1 s; a lost session at once.
 */
double	backoff_next(struct backoff *, enum backoff_reason, double jitter01);
/* Forgets past refusals and unreachability after a success (a session
 * that logged in and brought its forwards up). */
void	backoff_reset(struct backoff *);

#endif
