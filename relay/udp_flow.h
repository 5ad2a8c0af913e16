/*
 * UDP flows, internal to the UDP relay (relay/udp.c): the state a relay
 * shares with its flows, and a flow's life from its client's first
 * datagram to its expiry.
 */
#ifndef RELAY_UDP_FLOW_H
#define RELAY_UDP_FLOW_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event_struct.h>

#include "relay/config.h"
#include "relay/flowtab.h"

#define UDP_MAX_SOCKS	8
#define UDP_DGRAM_MAX	65536	/* more than any UDP payload */

struct udp_flow;
struct udp_relay;

/* A listening socket: its clients' replies leave from it. */
struct udp_sock {
	int			 fd;
	int			 family;
	struct event		 ev;
	struct udp_relay	*owner;
	char			 name[ADDR_STR_MAX];
};

struct udp_relay {
	struct event_base	*base;
	const struct relay_conf	*conf;
	struct udp_sock		 socks[UDP_MAX_SOCKS];
	size_t			 nsocks;
	struct flowtab		 tab;
	TAILQ_HEAD(, udp_flow)	 flows;
	struct timeval		 timeout;
	const struct timeval	*expiry;	/* common, or &timeout */
	struct resolve		*lookup;	/* in progress */
	struct event		 retry;
	struct sockaddr_storage	 target;
	socklen_t		 targetlen;	/* 0 = not known yet */
	time_t			 resolved;	/* monotonic seconds */
	int			 reading;	/* started and not stopped */
	time_t			 warned;	/* last "dropping" warning */
	unsigned		 open;
	uint64_t		 total, dropped, bytes_in, bytes_out;
	uint64_t		 dgrams_in, dgrams_out;
};

/* The flow of the client key, or NULL. */
struct udp_flow *udp_flow_find(struct udp_relay *,
	    const struct flow_key *);
/*
 * Opens the flow of a client's first datagram, as recvmsg filled msg (its
 * name and IP_PKTINFO / IPV6_PKTINFO). NULL at the flow limit or out of
 * descriptors, said in a warning at most every few seconds.
 */
struct udp_flow *udp_flow_open(struct udp_relay *, struct udp_sock *,
	    const struct flow_key *, struct msghdr *msg);
/* Passes one datagram from the client on to the target. */
void	udp_flow_forward(struct udp_flow *, const void *buf, size_t len);
/* The one close path: unlinks and frees f, logs its summary (end=why);
 * why NULL: no line (in a forked child, the flow is the parent's to
 * report). */
void	udp_flow_close(struct udp_flow *, const char *why);

#endif
