/*
 * Edge-triggered readiness for sockets, one epoll set per event loop: a
 * socket is registered once for reading, writing and its peer's EOF, never
 * changed, and its close takes it out of the set. Callers see level-
 * triggered interest: what is wanted and ready is reported again, from the
 * loop, until a read or write finds it used up (poller_drained).
 */
#ifndef RELAY_POLLER_H
#define RELAY_POLLER_H

struct event_base;
struct poller;

/* Called with the EP_* bits (relay/endpoint.h) fd is ready for among
 * those wanted; EP_HUP with EP_READ once the peer's EOF has arrived. */
typedef void poller_cb(int fd, int what, void *arg);

/* The poller of base's loop, made on first use; NULL with errno when it
 * cannot be made. It lives as long as base (poller_free). */
struct poller	*poller_get(struct event_base *);
/* Frees base's poller, if it has one, before base itself is freed. */
void		 poller_free(struct event_base *);
/*
 * Reports fd's readiness to cb from now on, wanting nothing yet. An fd
 * offered (poller_offer) is taken over with what it is known to be ready
 * for; any other is added to the set (one system call). Returns 0, or -1
 * with errno.
 */
int	poller_add(struct poller *, int fd, poller_cb *, void *);
/* Sets what fd is wanted for (EP_READ, EP_WRITE); no system call. */
void	poller_want(struct poller *, int fd, int what);
/* A read (EP_READ) or write (EP_WRITE) on fd found nothing to read or no
 * room: fd is not reported for it until the next edge (a read, once the
 * peer's EOF has arrived, still is: the EOF is there to read). */
void	poller_drained(struct poller *, int fd, int what);
/* Forgets fd, which the caller closes at once: the close takes it out of
 * the set, with no call of its own. */
void	poller_forget(struct poller *, int fd);
/* Gives fd up, still registered, for whoever opens an endpoint on it next
 * (poller_add); poller_retract then takes it out of the set if nobody
 * did. A connect hands its socket over so, without a call. */
void	poller_offer(struct poller *, int fd);
void	poller_retract(struct poller *, int fd);

#endif
