/*
 * UDP relays: datagrams from each client address travel through a flow of
 * their own (a UDP socket connected to the target), so replies go back to
 * the client that asked. Flows end after --udp-timeout of silence.
 */
#ifndef RELAY_UDP_H
#define RELAY_UDP_H

#include <stddef.h>

#include "relay/config.h"

struct event_base;
struct udp_relay;

/*
 * Binds the listening sockets of conf (the privileged step; conf must
 * outlive the relay). Datagrams are read once udp_relay_start is called.
 * Returns NULL with a one-line message and a sysexits.h code.
 */
struct udp_relay *udp_relay_new(struct event_base *,
	    const struct relay_conf *conf, char *err, size_t errlen,
	    int *exitcode);
/* Logs each listening address and starts reading (once the target's
 * address is known: a name is looked up first, off the loop). */
void	udp_relay_start(struct udp_relay *);
/* Stops reading new datagrams; flows go on until freed. */
void	udp_relay_stop(struct udp_relay *);
/* Writes the listening addresses, space-separated, into buf. */
void	udp_relay_addrs(const struct udp_relay *, char *buf, size_t len);
/* Writes "flows N open, N total, N datagrams dropped, in=N out=N". */
void	udp_relay_describe(const struct udp_relay *, char *buf, size_t len);
/* A UDP relay's counts, for --metrics and --status --json. */
struct udp_counts {
	unsigned	open;		/* flows */
	uint64_t	total;		/* flows */
	uint64_t	dgrams_in;	/* clients to target */
	uint64_t	dgrams_out;	/* replies to clients */
	uint64_t	dropped;	/* datagrams */
	uint64_t	bytes_in, bytes_out;
};
void	udp_relay_count(const struct udp_relay *, struct udp_counts *);
/* Ends every flow (each logs its summary with end=why) and frees all. */
void	udp_relay_free(struct udp_relay *, const char *why);
/* In a forked child: closes and frees everything, silently (a lookup
 * in progress is the parent's). */
void	udp_relay_forget(struct udp_relay *);

#endif
