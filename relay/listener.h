/* Listening sockets: bound while privileged, accepting once enabled. */
#ifndef RELAY_LISTENER_H
#define RELAY_LISTENER_H

#include <sys/socket.h>
#include <stddef.h>

#include "relay/addr.h"

struct event_base;
struct listener;

/* Called with each accepted non-blocking fd (the callee owns it). */
typedef void listener_cb(int fd, const struct sockaddr *sa, socklen_t salen,
	    void *arg);

/*
 * Binds every socket that spec names (a host name may give several).
 * Returns NULL with a one-line message and a sysexits.h code on failure.
 */
struct listener *listener_bind(struct event_base *, const struct addr_spec *,
	    listener_cb *, void *, char *err, size_t errlen, int *exitcode);
/*
 * The same for a listener that listener_clone will give siblings in other
 * loops (--workers): TCP sockets take SO_REUSEPORT, once a plain bind has
 * shown that the port is not taken.
 */
struct listener *listener_bind_reuseport(struct event_base *,
	    const struct addr_spec *, listener_cb *, void *, char *err,
	    size_t errlen, int *exitcode);
/*
 * A sibling of src for another loop: src's TCP addresses bound again with
 * SO_REUSEPORT (the kernel spreads new connections over the siblings),
 * src's unix or adopted sockets watched as they are (whichever loop
 * accepts first gets the connection). Free every clone before src. NULL
 * with a one-line message and a sysexits.h code on failure.
 */
struct listener *listener_clone(struct event_base *, const struct listener *src,
	    listener_cb *, void *, char *err, size_t errlen, int *exitcode);
/* Takes over listening sockets someone else bound (systemd). */
struct listener *listener_adopt(struct event_base *, const int *fds,
	    size_t nfds, listener_cb *, void *, char *err, size_t errlen);
/* Starts or stops accepting. */
void	listener_enable(struct listener *);
void	listener_disable(struct listener *);
/* Closes the sockets (and removes a unix socket file); a clone that
 * shares its original's sockets leaves them to it. */
void	listener_free(struct listener *);
/* Closes the sockets without touching the file system (forked children). */
void	listener_free_in_child(struct listener *);
/* Stops the sockets listening in every process that has a copy of them, so
 * that their ports can be bound again; call before listener_free. */
void	listener_unlisten(struct listener *);
/*
 * A reload's hand-over (see listener.c): stops accepting and keeps the
 * sockets listening, parked, for a successor on the same address; loop is
 * the event loop l served. A clone that shares another's sockets, or
 * systemd's, is freed as listener_free does.
 */
void	listener_park(struct listener *, unsigned loop);
/*
 * The listener that loop parked for spec's address (with any_loop, any
 * loop's, and the other loops' sockets of that address added), now
 * accepting for cb in base once enabled; NULL if none is parked.
 */
struct listener *listener_take(struct event_base *, const struct addr_spec *spec,
	    unsigned loop, int any_loop, listener_cb *, void *);
/* Frees (as listener_free) the parked listeners that keep, if not NULL,
 * does not want kept. */
void	listener_close_parked(int (*keep)(const struct addr_spec *,
	    const void *), const void *arg);
/* Whether a listener of a and one of b would listen on the same address
 * (what "tls:" changes is not the socket). */
int	listener_same_address(const struct addr_spec *a,
	    const struct addr_spec *b);
/* Binds one address for listener_bind_host (any: it is the wildcard, to
 * bind dual-stack, not IPv6 alone): 0 to go on, 1 when there is no room
 * for another socket (the other addresses are left unbound), -1 with a
 * one-line message and a sysexits.h code. */
typedef int listener_bind_addr(int family, const struct sockaddr *sa,
	    socklen_t salen, int any, void *arg, char *err, size_t errlen,
	    int *exitcode);
/*
 * Resolves spec's host for passive sockets of socktype (SOCK_STREAM or
 * SOCK_DGRAM) and gives each address to bind_addr, with arg, in turn; no
 * host is the wildcard: one dual-stack address, or IPv4's where IPv6 is
 * off. Returns 0, or -1 with a one-line message and a sysexits.h code.
 */
int	listener_bind_host(const struct addr_spec *spec, int socktype,
	    listener_bind_addr *bind_addr, void *arg, char *err, size_t errlen,
	    int *exitcode);
/* How many sockets the spec gave, and the address each is bound to. */
size_t	listener_nsockets(const struct listener *);
const char *listener_name(const struct listener *, size_t i);
/* For a bind that failed with error: its sysexits.h code, and a hint
 * (or "") to append to the message when error is EACCES. */
int	listener_exit_code(int error);
const char *listener_bind_hint(const struct addr_spec *);

#endif
