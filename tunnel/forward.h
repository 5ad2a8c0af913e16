/*
 * A tunnel's forwards: -R asks the server to listen and accepts the
 * channels it opens; -L and -D listen here and open a channel per
 * connection through the open queue.
 */
#ifndef TUNNEL_FORWARD_H
#define TUNNEL_FORWARD_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "relay/config.h"

struct event_base;
struct sshcall;
struct chans;
struct opens;
struct budget;
struct forward_stats;
struct fwds;

/* What the forwards use of their tunnel; everything outlives them. */
struct fwds_env {
	struct event_base	*base;
	const struct tunnel_conf *conf;
	const char		*name;		/* the tunnel's, for logs */
	struct sshcall		*sc;
	struct chans		*set;		/* -R channels join it */
	struct opens		*opens;		/* -L and -D open through it */
	struct budget		*budget;
};

/* The privileged step: sets up the configured forwards and binds the -L
 * and -D listeners. NULL with a message and a sysexits.h code. */
struct fwds *fwds_new(const struct fwds_env *, char *err, size_t errlen,
	    int *exitcode);
/* Closes every connection and listener and frees the forwards. */
void	fwds_free(struct fwds *);
/* Calls hook whenever a forward comes up (one hook per process). */
void	fwds_set_up_hook(void (*hook)(void));

/* The session is up: -R forwards are requested. first: the tunnel's
 * first session (a refusal may then be fatal); a refused port may be
 * held by a lost session until held_until (CLOCK_MONOTONIC seconds). */
void	fwds_session_up(struct fwds *, int first, time_t held_until);
/* The session is gone, and the server's listeners with it. */
void	fwds_session_down(struct fwds *);
/* Requests pending -R forwards and accepts their connections; -1 if the
 * session failed or the tunnel stopped meanwhile. */
int	fwds_service(struct fwds *);
/* Non-zero when a refused forward is fatal (--exit-on-forward-failure):
 * the loop was asked to stop. */
int	fwds_exit_code(const struct fwds *);

/* Whether every -R forward is up. */
int	fwds_ready(const struct fwds *);
/* How many forwards the tunnel has. */
size_t	fwds_count(const struct fwds *);
/* Live connections through the forwards. */
unsigned fwds_active(const struct fwds *);
/* Forward i (< fwds_count); up says whether the session is. */
void	fwds_stats(const struct fwds *, size_t i, int up,
	    struct forward_stats *);
/* One line per forward, each starting "tunnel NAME forward". */
void	fwds_write_status(const struct fwds *, FILE *, const char *name);
/* Stops taking new connections (-L/-D listeners, -R channels). */
void	fwds_stop_accepting(struct fwds *);
/* Closes the -L/-D listening sockets, copies in other processes
 * included. */
void	fwds_close_listeners(struct fwds *);

/* --probe: judges the probe round that ends and sends the next, to
 * every -R forward up. Returns -1 if a forward failed (why says which and
 * how), 1 if probes came back and none failed, 0 if nothing is known. */
int	fwds_probe_round(struct fwds *, char *why, size_t len);
/* Forgets the round in progress (the session went). */
void	fwds_probe_forget(struct fwds *);

#endif
