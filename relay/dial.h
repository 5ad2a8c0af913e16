/* Connecting to a target without blocking the loop: lookup, every address
 * in turn, one deadline for all of it. */
#ifndef RELAY_DIAL_H
#define RELAY_DIAL_H

#include <sys/socket.h>

#include "relay/addr.h"

struct event_base;
struct dial;

/*
 * Called once: with a connected non-blocking fd (the callee owns it) and
 * the address it reached, or with fd -1 and why it failed ("connect failed:
 * Connection refused", "connect timeout", "resolve failed: ...") and errno
 * set to the last connect's error (ETIMEDOUT for the deadline, ENOENT for
 * a failed lookup).
 */
typedef void dial_cb(int fd, const struct sockaddr *sa, socklen_t salen,
	    const char *why, void *arg);

/*
 * Starts connecting to spec. The callback always runs later from the loop,
 * after which the handle is gone. Returns NULL only when out of memory
 * (the callback will then never run).
 */
struct dial *dial_start(struct event_base *, const struct addr_spec *spec,
	    int timeout_sec, dial_cb *, void *);
/*
 * The callback will make an endpoint of the fd (endpoint_fd_new), which
 * then takes over the fd's registration in the loop's poller, saving a
 * system call each to unregister and register it again. If the callback
 * makes none, the registration goes when it returns: it must not close fd
 * and open another socket in the meantime.
 */
void	dial_hand_over(struct dial *);
/* Aborts a dial in progress; its callback will not run. */
void	dial_cancel(struct dial *);

#endif
