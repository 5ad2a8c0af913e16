/*
 * Name lookups off the event loop, with the system's resolver (NSS: hosts
 * file, DNS, mDNS...) read afresh for every lookup, as getaddrinfo does.
 */
#ifndef RELAY_RESOLVE_H
#define RELAY_RESOLVE_H

#include <netdb.h>

struct event_base;
struct resolve;

/* Called once with the addresses (freed by the callee with freeaddrinfo)
 * or res NULL and a gai error code. */
typedef void resolve_cb(int gai_error, struct addrinfo *res, void *arg);

/* Starts a lookup of host:port for stream sockets. NULL if it could not
 * start (out of memory or threads); the callback then never runs. */
struct resolve *resolve_start(struct event_base *, const char *host,
	    const char *port, resolve_cb *, void *);
/* Abandons a lookup; its callback will not run. */
void	resolve_cancel(struct resolve *);
/* In a forked child: stops listening for the parent's answers. */
void	resolve_after_fork(void);
/* Releases the calling thread's notification channel at exit. */
void	resolve_shutdown(void);

#endif
