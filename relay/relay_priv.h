/* What relay.c and conn.c share; nothing outside relay/ includes this. */
#ifndef RELAY_RELAY_PRIV_H
#define RELAY_RELAY_PRIV_H

#include <sys/queue.h>
#include <stdint.h>

#include "relay/addr.h"
#include "relay/config.h"

struct conn;
struct listener;

struct relay {
	TAILQ_ENTRY(relay)	 entry;
	const struct relay_conf	*conf;
	struct event_base	*base;
	struct listener		**listeners;
	size_t			 nlisteners;
	char			 target[ADDR_STR_MAX];
	TAILQ_HEAD(, conn)	 conns;
	unsigned		 active;	/* connections or children */
	uint64_t		 total;
	uint64_t		 rejected;
	uint64_t		 next_id;
};

/* Takes over an accepted client fd and starts dialling the target. */
void	conn_new(struct relay *, int fd, const struct sockaddr *, socklen_t,
	    uint64_t id);
/* Closes a connection: the one path that logs its summary line. */
void	conn_close(struct conn *, const char *why);
/* Called when the last connection of a forked child has closed. */
void	relay_child_done(struct relay *);
/* Whether this process is a --fork child serving one connection. */
extern int relay_in_child;

#endif
