/*
 * One end of a relayed connection. The pump moves bytes between two
 * endpoints without knowing whether each is a socket or, later, an SSH
 * channel: readiness arrives through the callback, interest is declared
 * with want().
 */
#ifndef RELAY_ENDPOINT_H
#define RELAY_ENDPOINT_H

#include <sys/types.h>
#include <stddef.h>

#define EP_READ		0x01
#define EP_WRITE	0x02
#define EP_LOST		0x04	/* the transport under it is gone */
#define EP_HUP		0x08	/* with EP_READ: the peer's EOF has arrived,
				 * behind whatever is still to read */

struct endpoint;

/* Called when the endpoint became readable and/or writable (EP_* bits). */
typedef void endpoint_cb(struct endpoint *, int what, void *arg);

struct endpoint_ops {
	/* >0 bytes, 0 at EOF, -1 with errno (EAGAIN: wait for EP_READ). */
	ssize_t	(*read)(struct endpoint *, void *, size_t);
	/* >0 bytes taken, -1 with errno (EAGAIN: wait for EP_WRITE). */
	ssize_t	(*write)(struct endpoint *, const void *, size_t);
	/* Sends EOF: no more writes. Returns 0 or -1 with errno. */
	int	(*shutdown_write)(struct endpoint *);
	/* Declares interest (EP_* bits); endpoint_want() skips no-ops. */
	void	(*want)(struct endpoint *, int what);
	/* Closes and frees. Must not be called from inside the callback's
	 * own endpoint code, only from the owner. */
	void	(*free)(struct endpoint *);
	/*
	 * Optional (NULL: none): drives the endpoint's own set-up, such as a
	 * TLS handshake, which must finish before bytes are read or written.
	 * Returns 1 when done, 0 while waiting (readiness then comes through
	 * the callback, whatever want() said), -1 with one line in why.
	 */
	int	(*handshake)(struct endpoint *, char *why, size_t len);
	/* The descriptor of a bare TCP socket, which the pump may splice()
	 * to and from directly, or -1. NULL (the same as -1) for anything
	 * that is not a plain socket or that adds or transforms bytes of
	 * its own (SSH channels, TLS, PROXY headers). */
	int	(*splice_fd)(struct endpoint *);
};

struct endpoint {
	const struct endpoint_ops	*ops;
	endpoint_cb			*cb;
	void				*cbarg;
	int				 wanted;
	/* Its EP_READ carries EP_HUP whenever the peer's EOF has arrived:
	 * a short read then says there is nothing more, EOF included. */
	int				 tells_hup;
	/* Optional (NULL: nothing to tell), for a socket whose readiness is
	 * learnt from its reads and writes: whoever splices to or from its
	 * splice_fd tells it what a read or write would have seen, that it
	 * had nothing to read (EP_READ) or no room (EP_WRITE). */
	void				(*exhausted)(struct endpoint *, int what);
};

/* Changes interest only when it differs from what is armed. */
static inline void
endpoint_want(struct endpoint *ep, int what)
{
	if (ep->wanted != what) {
		ep->ops->want(ep, what);
		ep->wanted = what;
	}
}

/* See endpoint_ops.splice_fd. */
static inline int
endpoint_splice_fd(struct endpoint *ep)
{
	return ep->ops->splice_fd != NULL ? ep->ops->splice_fd(ep) : -1;
}

struct event_base;
struct sockaddr;
/*
 * Wraps a connected non-blocking stream socket. peer, its peer's address,
 * says whether it is TCP, which may be spliced (NULL: copy only). Returns
 * NULL on allocation failure (fd is then left open for the caller). The
 * endpoint owns fd.
 */
struct endpoint *endpoint_fd_new(struct event_base *, int fd,
	    const struct sockaddr *peer, endpoint_cb *, void *);

#endif
