/*
 * Checking the session when the network under it may have changed, or
 * the machine resumed: a probe must bring a byte from the server soon.
 * Also the record of the last loss, and how long a lost session the
 * server may not have noticed can hold our -R ports.
 */
#ifndef TUNNEL_RECHECK_H
#define TUNNEL_RECHECK_H

#include <stdint.h>
#include <time.h>

struct event_base;
struct netchange;
struct recheck;

/* What a check uses of its tunnel; everything outlives it. */
struct recheck_env {
	struct event_base	*base;
	const char		*name;		/* the tunnel's, for logs */
	/* Sends a keepalive probe on the up session, or if its one open
	 * slot is held, on the tunnel's other sessions: returns 1, 2, or 0
	 * if none could leave. */
	int			(*probe)(void *arg);
	const uint64_t		*rx_bytes;	/* from the server, the session */
	const uint64_t		*rx_total;	/* and every other session */
	/* Drops the up session for cause, with why (from the loop). */
	void			(*lost)(void *arg, const char *cause,
				    const char *why);
	void			*arg;
};

/* NULL on allocation failure. */
struct recheck *recheck_new(const struct recheck_env *);
void	recheck_free(struct recheck *);
/* The session on socket fd is up: learns its source address's
 * interface. */
void	recheck_session_up(struct recheck *, int fd);
/* Forgets the session and a check in progress (the session is going). */
void	recheck_cancel(struct recheck *);
/* Each keepalive tick: a resume from suspend starts a check. */
void	recheck_tick(struct recheck *);
/* A network change while the session is up: one that may cut it starts
 * a check. */
void	recheck_netchange(struct recheck *, const struct netchange *);
/* Records a lost session's cause (a string that stays: it is kept as
 * given); one the server may not have noticed leaves our -R ports held
 * by it for a while. */
void	recheck_note_loss(struct recheck *, const char *cause,
	    const char *why);
/* Until when (CLOCK_MONOTONIC seconds) a lost session may hold our -R
 * ports: a refusal is then retried every second, not backed off. */
time_t	recheck_held_until(const struct recheck *);
/* The cause of the last loss (as given to recheck_note_loss), with why
 * and when (wall clock seconds); NULL if there was none. */
const char *recheck_last_loss(const struct recheck *, const char **why,
	    int64_t *at);

#endif
