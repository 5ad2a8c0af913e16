/* What the tunnel's files share; nothing outside tunnel/ includes this. */
#ifndef TUNNEL_TUNNEL_INT_H
#define TUNNEL_TUNNEL_INT_H

#include <sys/queue.h>
#include <stdint.h>
#include <time.h>

#include <libssh2.h>
#include <event2/event_struct.h>

#include "relay/config.h"
#include "relay/endpoint.h"
#include "relay/service.h"
#include "tunnel/backoff.h"
#include "tunnel/clockjump.h"

/*
 * Memory (see SECURITY.md): what the server may send before the key
 * exchange ends, what libssh2 may hold before new channels are refused,
 * and the receive window of the channels we open (accepted -R channels
 * get libssh2's fixed LIBSSH2_CHANNEL_WINDOW_DEFAULT).
 */
#define TUNNEL_KEX_MAX		(64 * 1024)
#define TUNNEL_MEM_BUDGET	(64u * 1024 * 1024)
#define TUNNEL_OPEN_WINDOW	(256 * 1024)

struct tunnel;
struct listener;
struct socks;
struct netwatch;

/*
 * libssh2 1.10 can hold only one partly sent packet per session: the call
 * that left it must be repeated, and no other call may send, until it
 * completes. The holder is recorded as (who, op).
 */
enum ssh_op {
	OP_NONE, OP_READ, OP_WRITE, OP_EOF, OP_FREE, OP_OPEN, OP_LISTEN,
	OP_ACCEPT
};

/* A channel seen by the pump as an endpoint. */
struct chan {
	struct endpoint		 ep;	/* first: the pump sees &ep */
	TAILQ_ENTRY(chan)	 entry;
	struct tunnel		*t;
	LIBSSH2_CHANNEL		*ch;	/* NULL once the session is gone */
	size_t			 pending_write;	/* length of a partial write */
	uint8_t			 eof_pending;
	uint8_t			 closing;	/* freed by the pump's owner */
};

/* A request that needs the session's one channel-open slot. */
struct open_req {
	TAILQ_ENTRY(open_req)	 entry;
	struct tunnel		*t;
	struct addr_spec	 to;
	int			 ping;		/* a keepalive probe, no channel */
	int			 in_progress;	/* libssh2 holds its open state */
	struct timespec		 since;		/* when it was first sent */
	int			 abandoned;	/* nobody waits for it any more */
	struct event		 timer;
	/* Reports the channel (an endpoint) or why it failed. */
	void			(*done)(struct endpoint *, const char *why,
				    void *arg);
	void			*arg;
};

enum fwd_state { FWD_DOWN, FWD_REQUESTING, FWD_UP, FWD_WAITING };

struct fwd {
	struct tunnel		*t;
	const struct forward_spec *spec;
	char			 name[320];	/* "-R 10080:127.0.0.1:80" */
	struct service		 svc;
	enum fwd_state		 state;
	LIBSSH2_LISTENER	*listener;	/* -R, once up */
	int			 bound_port;
	int			 ever_up;
	struct listener		*local;		/* -L and -D */
	TAILQ_HEAD(, socks)	 handshakes;	/* -D clients still negotiating */
	unsigned		 nhandshakes;
	struct backoff		 backoff;
	struct event		 retry;
};

enum tunnel_state { T_DOWN, T_CONNECTING, T_HANDSHAKE, T_AUTH, T_UP };

struct sendbuf;

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
	struct event		 ev_kick;	/* a pass soon, from the loop */
	int			 write_armed;
	struct sendbuf		*out;		/* packets batched in a pass */
	uint64_t		 packets_out;	/* given to send_cb, all sessions */
	uint64_t		 sends_out;	/* send() calls that carried them */
	struct backoff		 backoff;
	struct fwd		*listening;	/* its -R request is in libssh2 */
	int			 ever_up;
	int			 draining;	/* no new connections */
	int			 exit_code;
	int			 sock_dead;	/* recv saw EOF or an error */
	int			 sock_errno;
	struct timespec		 up_since;
	int			 young_losses;	/* sessions lost soon after login,
						 * in a row */
	int			 missed;	/* keepalive probes unanswered */
	int			 pinging;	/* a probe is queued */
	uint64_t		 moved;		/* channel bytes, to see progress */
	uint64_t		 rx_bytes;	/* bytes received from the server */
	size_t			 kex_bytes;	/* of them, before the kex ended */
	size_t			 mem_held;	/* allocated by libssh2 */
	unsigned		 mem_refused;	/* channels refused, over budget */
	int			 in_pass;	/* inside pass(): it sees new input */
	/* The last read from the socket said EAGAIN: libssh2 holds no
	 * unprocessed input (some calls handle one packet per call). */
	int			 drained;
	unsigned		 sessions;	/* sessions started so far */
	char			 fail_why[160];	/* set by tunnel_fail */
	void			*owner;		/* the partial packet's holder */
	enum ssh_op		 owner_op;
	struct fwd		*fwds;
	size_t			 nfwds;
	TAILQ_HEAD(, chan)	 chans;
	TAILQ_HEAD(, chan)	 closing;
	TAILQ_HEAD(, open_req)	 opens;
	/* Network changes and resumes (recheck.c). */
	struct netwatch		*netwatch;
	struct clockjump	 clock;
	struct event		 ev_recheck;	/* settling, then the deadline */
	int			 recheck;	/* enum in recheck.c */
	const char		*recheck_cause;	/* "network change", "resume" */
	uint64_t		 recheck_rx;	/* rx_bytes when the probe left */
	int			 session_ifindex; /* its source address's */
	const char		*cause;		/* of the loss being handled */
	char			 last_loss[200];	/* "cause: why" */
	int64_t			 last_loss_at;	/* wall clock seconds */
	struct timespec		 stale_until;	/* an old session may hold
						 * our -R ports until then */
};

/* libssh2's last error message, escaped for logs: it may carry text the
 * server sent. Returns buf. */
const char *ssh_error(LIBSSH2_SESSION *, char *buf, size_t len);
/* Whether who may make the libssh2 call op now. */
int	tunnel_may_call(struct tunnel *, void *who, enum ssh_op op);
/* Records the outcome of a call: a partial packet makes who its holder. */
void	tunnel_called(struct tunnel *, void *who, enum ssh_op op, int rc);
/* Declares the session dead (deferred to the loop: safe from callbacks). */
void	tunnel_fail(struct tunnel *, const char *why);
/* Asks for a pass over every channel from the loop. */
void	tunnel_kick(struct tunnel *);

/* The budget (budget.c): libssh2's allocator, counting into mem_held
 * (the session's abstract pointer is the tunnel). */
void	*budget_alloc(size_t, void **abstract);
void	*budget_realloc(void *, size_t, void **abstract);
void	 budget_free(void *, void **abstract);
/* Whether a new channel may be opened or accepted now; logs refusals. */
int	 budget_admit(struct tunnel *);

/* Drops the up session for cause ("network change", "keepalive", "probe",
 * "server closed") and schedules the next; not from inside a pass. */
void	tunnel_lost(struct tunnel *, const char *cause, const char *why);

/* Network changes and resumes (recheck.c). */
/* Starts watching the network (a failure only logs: keepalives remain). */
void	recheck_init(struct tunnel *);
/* The session is up: learns the interface its source address is on. */
void	recheck_session_up(struct tunnel *);
/* Each keepalive tick: a resume from suspend starts a check. */
void	recheck_tick(struct tunnel *);
/* Forgets a check in progress (the session is going). */
void	recheck_cancel(struct tunnel *);
void	recheck_free(struct tunnel *);
/* Records a lost session's cause; one the server may not have noticed
 * leaves our -R ports held by it for a while. */
void	recheck_note_loss(struct tunnel *, const char *cause,
	    const char *why);
/* Whether a -R refusal may come from the old session still holding its
 * port: it is then retried every second, not backed off. */
int	recheck_old_session_may_hold(struct tunnel *);

/* Channels (channel.c). */
struct chan *chan_new(struct tunnel *, LIBSSH2_CHANNEL *);
/* Runs the pending work of closing channels; returns -1 if the session
 * failed meanwhile. */
int	chan_reap(struct tunnel *);
/* Completes the partial packet ch holds for op (closing channels). */
void	chan_finish_owned(struct chan *, enum ssh_op);
/* Detaches every channel from a dying session and tells their owners. */
void	chan_detach_all(struct tunnel *);
/* Whether the pump should be told ch is readable. */
int	chan_readable(struct chan *);
/* Lets libssh2 process buffered input through a zero-length read on ch. */
void	chan_drain(struct chan *);

/* Forwards (forward.c). */
int	fwd_setup(struct tunnel *, char *err, size_t errlen, int *exitcode);
void	fwd_session_up(struct tunnel *);
void	fwd_session_down(struct tunnel *);
/* Requests pending -R forwards and accepts their connections; -1 if the
 * tunnel stopped meanwhile (fatal or failed). */
int	fwd_service(struct tunnel *);
/* Runs the channel-open queue; -1 if the tunnel failed meanwhile. */
int	open_service(struct tunnel *);
/* Queues a channel open to to; NULL on allocation failure. */
struct open_req *open_request(struct tunnel *, const struct addr_spec *to,
	    int timeout_sec, void (*done)(struct endpoint *, const char *,
	    void *), void *arg);
void	open_cancel(struct open_req *);
/* Fails every queued open (the tunnel is going away). */
void	open_fail_all(struct tunnel *, const char *why);
void	fwd_free_all(struct tunnel *);

/* -D handshakes (socks_conn.c): takes an accepted client fd. The -D
 * service's ops open the requested target and answer the client. */
extern const struct service_ops socks_ops;
void	socks_accept(struct fwd *, int fd, const struct sockaddr *, socklen_t);
/* Drops the handshakes still in progress. */
void	socks_free_all(struct fwd *);

#endif
