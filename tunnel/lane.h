/*
 * One SSH session of a tunnel: its socket, its libssh2 session, its call
 * lock, its channels and its open slot; the connect, handshake, host key
 * check and login, then the passes that serve it. What a session is for,
 * and what its end means, is the tunnel's (tunnel.c) to decide.
 */
#ifndef TUNNEL_LANE_H
#define TUNNEL_LANE_H

#include <sys/queue.h>
#include <stdint.h>
#include <time.h>

#include <libssh2.h>
#include <event2/event_struct.h>

#include "relay/addr.h"
#include "relay/config.h"

/*
 * Memory (see SECURITY.md): what the server may send before the key
 * exchange ends; the budget and the channels' window are in budget.h.
 */
#define TUNNEL_KEX_MAX		(64 * 1024)

/* The phases of a session, in order (tunnel_state_name names them). */
enum lane_state { L_DOWN, L_CONNECTING, L_HANDSHAKE, L_AUTH, L_UP };

/* How a session ended, for the tunnel to judge. */
enum lane_end {
	LANE_UNREACHABLE,	/* no connection to the server */
	LANE_FAILED,		/* handshake or login failed: may pass */
	LANE_REFUSED,		/* host key or keys refused: the user's */
	LANE_LOST		/* the session failed; cause says how */
};

struct lane_ending {
	enum lane_end	 kind;
	const char	*what;		/* "cannot connect", "lost", ... */
	const char	*cause;		/* "server closed", "error" */
	int		 exit_code;	/* of a refusal */
	const char	*why;
};

struct lane;
struct hostkeys;
struct auth;
struct budget;
struct opens;
struct sendbuf;
struct sshcall;
struct chans;
struct open_slot;

struct lane_env {
	struct event_base	*base;
	const struct tunnel_conf *conf;
	const struct addr_spec	*server;
	const char		*user;
	struct hostkeys		*hostkeys;
	struct budget		*budget;	/* libssh2's memory */
	struct opens		*opens;		/* the opens its slot serves */
	uint64_t		*packets_out;	/* the tunnel's totals */
	uint64_t		*sends_out;
	uint64_t		*rx_total;	/* bytes from the server */
	/* Logged in; ended: the lane is the tunnel's to drop or free (it
	 * is not touched after); serve: more work for a pass, -1 if the
	 * session failed meanwhile (NULL: none); tick: every keepalive
	 * interval from the connection on. */
	void			(*up)(struct lane *, void *arg);
	void			(*ended)(struct lane *,
				    const struct lane_ending *, void *arg);
	int			(*serve)(void *arg);
	void			(*tick)(struct lane *, void *arg);
	void			*arg;
};

struct lane {
	struct lane_env		 env;
	TAILQ_ENTRY(lane)	 entry;		/* the tunnel's extra lanes */
	char			 name[340];	/* for logs */
	enum lane_state		 state;
	LIBSSH2_SESSION		*s;
	int			 fd;
	void			*dial;
	struct auth		*auth;
	struct event		 ev_read;
	struct event		 ev_write;
	struct event		 ev_login;
	struct event		 ev_keepalive;
	int			 write_armed;
	struct sendbuf		*out;		/* packets batched in a pass */
	int			 sock_dead;	/* recv saw EOF or an error */
	int			 sock_errno;
	int			 missed;	/* keepalive ticks unanswered */
	uint64_t		 rx_bytes;	/* bytes received from the server */
	uint64_t		 rx_at_tick;	/* rx_bytes at the last tick */
	uint64_t		 total_at_tick;	/* *rx_total then */
	size_t			 kex_bytes;	/* of them, before the kex ended */
	/* The last read from the socket said EAGAIN: libssh2 holds no
	 * unprocessed input (some calls handle one packet per call). */
	int			 drained;
	struct timespec		 idle_since;	/* no channel, no open */
	struct sshcall		*call;		/* the call lock (sshcall.c) */
	struct chans		*chans;		/* channels (channel.c) */
	struct open_slot	*slot;		/* its one open (chanopen.c) */
};

/* A session not yet connected that logs in with auth (the lane's own);
 * NULL on allocation failure. */
struct lane *lane_new(const struct lane_env *, const char *name,
	    struct auth *auth);
/* Drops the session, then frees the lane (not its auth). */
void	lane_free(struct lane *);
/* Connects, given patience_sec to answer, then logs in on its own. */
void	lane_connect(struct lane *, int patience_sec);
/* Drops the session and everything that lived in it: its channels end,
 * its open in progress fails. The lane may connect again. */
void	lane_drop(struct lane *);
/* Asks for a pass. */
void	lane_kick(struct lane *);
/* Ends the lane as a loss for cause; not from inside its pass. */
void	lane_lost(struct lane *, const char *cause, const char *why);

#endif
