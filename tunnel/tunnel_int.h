/*
 * The tunnel itself, shared by its file (tunnel.c) and the
 * status it reports (tunnel_status.c); every other tunnel/ file sees
 * only the part it is given.
 */
#ifndef TUNNEL_TUNNEL_INT_H
#define TUNNEL_TUNNEL_INT_H

#include <sys/queue.h>
#include <stdint.h>
#include <time.h>

#include <event2/event_struct.h>

#include "relay/config.h"
#include "tunnel/backoff.h"
#include "tunnel/lane.h"
#include "tunnel/tunnel.h"

struct opens;
struct budget;
struct fwds;
struct recheck;
struct netwatch;

struct tunnel {
	struct tunnel_conf	*conf;		/* our own copy */
	struct event_base	*base;
	char			 name[320];	/* user@host:port for logs */
	char			 user[64];
	struct addr_spec	 server;
	struct hostkeys		*hostkeys;
	struct auth		*auth;
	struct lane		*main;		/* carries the -R forwards */
	TAILQ_HEAD(, lane)	 extras;	/* while slow opens hold slots */
	unsigned		 nextra;
	unsigned		 extra_seq;	/* numbers them in logs */
	time_t			 extras_refused_until;
	time_t			 silent_until;	/* a witness found it so */
	struct event		 ev_retry;	/* the next attempt */
	struct event		 ev_spread;	/* waiting opens looked at */
	struct event		 ev_probe;	/* --probe rounds */
	int			 probe_last;	/* 1 came back, -1 failed, 0 */
	int			 probe_reconnected;	/* for a failure since (1),
						 * failing again said (2) */
	time_t			 probe_at;	/* wall clock of probe_last */
	char			 probe_why[320];	/* of a failure */
	uint64_t		 packets_out;	/* given to send_cb, all sessions */
	uint64_t		 sends_out;	/* send() calls that carried them */
	uint64_t		 rx_total;	/* bytes from the server, all */
	struct backoff		 backoff;
	int			 ever_up;
	int			 exit_code;
	struct timespec		 up_since;
	int			 young_losses;	/* sessions lost soon after login,
						 * in a row */
	unsigned		 sessions;	/* main sessions logged in */
	const char		*cause;		/* of the loss being handled */
	const char		*ended_by;	/* the last session's cause */
	uint64_t		 reconnects_by[TUNNEL_NCAUSES];
	uint64_t		 keepalives_sent;	/* probes queued */
	uint64_t		 keepalives_missed;	/* ticks that found an
						 * up session silent */
	struct budget		*budget;	/* libssh2's memory */
	struct opens		*opens;		/* -L and -D opens (chanopen.c) */
	struct fwds		*fwds;		/* forwards (forward.c) */
	struct recheck		*recheck;	/* network checks (recheck.c) */
	struct netwatch		*netwatch;
};

/* Counts the session just started as a reconnect for the cause that
 * ended the one before (tunnel_status.c). */
void	tunnel_count_reconnect(struct tunnel *);

#endif
