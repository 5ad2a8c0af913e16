/*
 * The tunnel itself, shared by the session's file (tunnel.c) and the
 * status it reports (tunnel_status.c); every other tunnel/ file sees
 * only the part it is given.
 */
#ifndef TUNNEL_TUNNEL_INT_H
#define TUNNEL_TUNNEL_INT_H

#include <stdint.h>
#include <time.h>

#include <libssh2.h>
#include <event2/event_struct.h>

#include "relay/config.h"
#include "tunnel/backoff.h"
#include "tunnel/tunnel.h"

/*
 * Memory (see SECURITY.md): what the server may send before the key
 * exchange ends; the budget and the channels' window are in budget.h.
 */
#define TUNNEL_KEX_MAX		(64 * 1024)

enum tunnel_state { T_DOWN, T_CONNECTING, T_HANDSHAKE, T_AUTH, T_UP };

struct sendbuf;
struct sshcall;
struct chans;
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
	enum tunnel_state	 state;
	LIBSSH2_SESSION		*s;
	int			 fd;
	void			*dial;
	struct event		 ev_read;
	struct event		 ev_write;
	struct event		 ev_retry;	/* next attempt, login deadline */
	struct event		 ev_keepalive;
	int			 write_armed;
	struct sendbuf		*out;		/* packets batched in a pass */
	uint64_t		 packets_out;	/* given to send_cb, all sessions */
	uint64_t		 sends_out;	/* send() calls that carried them */
	struct backoff		 backoff;
	int			 ever_up;
	int			 exit_code;
	int			 sock_dead;	/* recv saw EOF or an error */
	int			 sock_errno;
	struct timespec		 up_since;
	int			 young_losses;	/* sessions lost soon after login,
						 * in a row */
	int			 missed;	/* keepalive probes unanswered */
	uint64_t		 rx_bytes;	/* bytes received from the server */
	size_t			 kex_bytes;	/* of them, before the kex ended */
	/* The last read from the socket said EAGAIN: libssh2 holds no
	 * unprocessed input (some calls handle one packet per call). */
	int			 drained;
	unsigned		 sessions;	/* sessions started so far */
	const char		*cause;		/* of the loss being handled */
	const char		*ended_by;	/* the last session's cause */
	uint64_t		 reconnects_by[TUNNEL_NCAUSES];
	uint64_t		 keepalives_sent;	/* probes queued */
	uint64_t		 keepalives_missed;	/* ticks that found the
						 * up session silent */
	struct sshcall		*call;		/* the call lock (sshcall.c) */
	struct budget		*budget;	/* libssh2's memory */
	struct chans		*chans;		/* channels (channel.c) */
	struct opens		*opens;		/* channel opens (chanopen.c) */
	struct fwds		*fwds;		/* forwards (forward.c) */
	struct recheck		*recheck;	/* network checks (recheck.c) */
	struct netwatch		*netwatch;
};

/* Counts the session just started as a reconnect for the cause that
 * ended the one before (tunnel_status.c). */
void	tunnel_count_reconnect(struct tunnel *);

#endif
