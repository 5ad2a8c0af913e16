/* A relay: its listeners and the connections they accepted. */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "relay/config.h"
#include "relay/service.h"
#include "relay/udp.h"

struct event_base;
struct relay;

/*
 * Binds every listener of conf (the privileged step); accepting starts with
 * relay_start. The relay keeps a copy of conf. Returns NULL with a
 * one-line message and a sysexits.h code.
 */
struct relay *relay_new(struct event_base *, const struct relay_conf *conf,
	    char *err, size_t errlen, int *exitcode);
/* Starts accepting and logs each listening address. */
void	relay_start(struct relay *);
/* Stops accepting; live connections go on. */
void	relay_stop_accepting(struct relay *);
/*
 * Left by a reload: stops accepting and parks its listening sockets, still
 * listening, for the relay that listens on the same address next (see
 * listener_park); its UDP sockets and flows close.
 */
void	relay_park_listeners(struct relay *);
/* Closes the parked sockets that no relay of keep listens on, or with
 * keep NULL every one that no relay took. */
void	relay_close_parked(const struct config *keep);
/* Loads conf's TLS certificates, keys and CAs to see that they work
 * (--check): 0, or -1 with one line in err. */
int	relay_check_tls(const struct relay_conf *conf, char *err, size_t errlen);
/* Reads its TLS certificates and CAs again (SIGHUP); a failure is logged
 * and the old ones stay. */
void	relay_reload_tls(struct relay *);
/* Writes one status line: listeners, connections, bytes. */
void	relay_write_status(const struct relay *, FILE *);
/* What --metrics and --status --json tell of a relay. */
struct relay_stats {
	struct service_counts	 counts;	/* over every loop */
	int			 udp;		/* then udp, not counts */
	struct udp_counts	 udp_counts;
	size_t			 nsockets;	/* listening */
};
/* Sums the relay's counters (from the main thread, loop by loop). */
void	relay_get_stats(const struct relay *, struct relay_stats *);
/* Writes the listening addresses, space-separated; returns how many. */
size_t	relay_addrs(const struct relay *, char *buf, size_t len);
/* Live connections (or --fork children). */
unsigned relay_active(const struct relay *);
/* Frees a relay, closing what it still has. */
void	relay_free(struct relay *);
/* Closes and frees a relay inherited from the process that owns it (its
 * unix socket files stay). */
void	relay_free_inherited(struct relay *);
/* The configuration it runs (its own copy). */
const struct relay_conf *relay_conf(const struct relay *);
/* Reaps exited children; call on SIGCHLD. Those that are not --fork
 * children go to other (if not NULL) with their wait status. */
void	relay_reap_children(void (*other)(pid_t, int));
/* Asks every --fork child to stop; call when the daemon exits. */
void	relay_kill_children(void);
/* Called in each --fork child, to drop what only the parent may use. */
void	relay_set_forked_hook(void (*)(void));

#endif
