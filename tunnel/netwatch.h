/*
 * Network changes from the kernel's routing netlink: addresses and routes
 * added or removed, so that a tunnel can ask at once whether its session
 * survived instead of waiting for keepalives to go unanswered.
 */
#ifndef TUNNEL_NETWATCH_H
#define TUNNEL_NETWATCH_H

#include <sys/socket.h>
#include <stddef.h>

struct event_base;
struct netwatch;

struct netchange {
	int			 ifindex;	/* 0 if the message names none */
	int			 family;	/* AF_INET or AF_INET6, 0: any */
	int			 is_addr;	/* else a route */
	int			 removed;	/* RTM_DEL* */
	int			 main_table;	/* a route of the main table */
	int			 default_route;	/* a main route with no prefix */
	struct sockaddr_storage	 addr;		/* an address change's address,
						 * else AF_UNSPEC */
};

/* Subscribes to IPv4 and IPv6 address and route changes; cb runs from the
 * loop once per change. NULL with a message in err. Freed by
 * netwatch_free. */
struct netwatch *netwatch_new(struct event_base *,
	    void (*cb)(const struct netchange *, void *), void *arg,
	    char *err, size_t errlen);
void	netwatch_free(struct netwatch *);
/* The index of the interface that holds address sa now, 0 if none does,
 * -1 if the kernel could not be asked. Asks and waits (a dump the kernel
 * answers at once). */
int	netwatch_ifindex_of(const struct sockaddr *sa);

#endif
