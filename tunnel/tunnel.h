/*
 * An SSH tunnel: one libssh2 session to a server, kept up across failures,
 * carrying -R, -L and -D forwards whose connections the relay pump moves.
 */
#ifndef TUNNEL_TUNNEL_H
#define TUNNEL_TUNNEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/config.h"
#include "relay/service.h"

struct event_base;
struct tunnel;

/* The libssh2 version relayd was built with, the one loaded if it differs,
 * and whether it is our patched build: "1.10.0", "1.10.0 (running
 * 1.11.1)", "1.11.1, patched: cipher runs". */
void	tunnel_libssh2_version(char *buf, size_t len);
/* Before any tunnel (again is harmless). Returns -1 if libssh2 fails. */
int	tunnel_global_init(void);
void	tunnel_global_exit(void);
/*
 * The privileged step: reads keys and known hosts, binds -L/-D listeners.
 * The tunnel keeps a copy of the configuration. Returns NULL with a
 * one-line message and a sysexits.h code.
 */
struct tunnel *tunnel_new(struct event_base *, const struct tunnel_conf *,
	    char *err, size_t errlen, int *exitcode);
/* The configuration it runs (its own copy). */
const struct tunnel_conf *tunnel_conf(const struct tunnel *);
/* Starts connecting (after privileges are dropped). */
void	tunnel_start(struct tunnel *);
/*
 * Non-zero when the tunnel met a failure that is fatal at first start
 * (host key, authentication, a forward with --exit-on-forward-failure);
 * the loop was asked to stop and the caller exits with this code.
 */
int	tunnel_exit_code(const struct tunnel *);
/* Writes its state, reconnections and each forward's connections. */
void	tunnel_write_status(const struct tunnel *, FILE *);
/* What --metrics and --status --json tell of a tunnel (tunnel_status.c);
 * the strings are the tunnel's own, valid while it lives. */
#define TUNNEL_NSTATES	5
/* Why a session ended: "keepalive", "network change", "resume", "probe",
 * "server closed", "refused", "error" (tunnel_cause_name). */
#define TUNNEL_NCAUSES	7
struct tunnel_stats {
	const char	*name;		/* "-" on the command line */
	const char	*server;	/* user@host:port */
	int		 state;		/* index into tunnel_state_name */
	unsigned	 reconnects;
	/* Of them, by the cause of the session before (an index into
	 * tunnel_cause_name); they add up to reconnects. */
	uint64_t	 reconnects_by[TUNNEL_NCAUSES];
	uint64_t	 keepalives_sent;	/* probes sent */
	uint64_t	 keepalives_missed;	/* intervals an up session
						 * heard nothing */
	unsigned	 extra_sessions;	/* beside the main one */
	/* The last --probe verdict: 1 came back, -1 failed (why), 0 none. */
	int		 probe;
	const char	*probe_why;
	int64_t		 probe_at;	/* wall clock seconds */
	uint64_t	 packets;	/* SSH packets sent */
	uint64_t	 writes;	/* send() calls that carried them */
	int64_t		 last_up;	/* wall clock seconds, 0: never */
	/* The last up session's loss (cause NULL: none yet). */
	const char	*loss_cause;	/* a tunnel_cause_name */
	const char	*loss_why;	/* as logged */
	int64_t		 loss_at;	/* wall clock seconds */
	size_t		 nforwards;
};
struct forward_stats {
	const char	*name;		/* "-R 10080:127.0.0.1:80" */
	int		 up;
	int		 port;		/* -R: the server's, once up */
	struct service_counts counts;
};
/* "down", "connecting", "handshaking", "authenticating", "up". */
const char *tunnel_state_name(int state);
/* The name of cause i (< TUNNEL_NCAUSES). */
const char *tunnel_cause_name(int i);
void	tunnel_get_stats(const struct tunnel *, struct tunnel_stats *);
/* Forward i (< nforwards) of the tunnel. */
void	tunnel_forward_stats(const struct tunnel *, size_t i,
	    struct forward_stats *);
/* Whether every forward is up (readiness for systemd). */
int	tunnel_ready(const struct tunnel *);
/* Calls hook whenever a forward comes up (one hook per process). */
void	tunnel_set_up_hook(void (*hook)(void));
/* Live connections through the tunnel's forwards. */
unsigned tunnel_active(const struct tunnel *);
/* Stops taking new connections (-L/-D listeners, -R channels). */
void	tunnel_stop_accepting(struct tunnel *);
/* Closes its -L/-D listening sockets and gives their ports back, copies in
 * other processes included (after tunnel_stop_accepting). */
void	tunnel_close_listeners(struct tunnel *);
/* Closes everything. */
void	tunnel_free(struct tunnel *);

#endif
