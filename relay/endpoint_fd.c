/*
 * Socket endpoints. Readiness comes from the loop's poller (relay/poller.h):
 * the socket is registered once, edge-triggered, for reading, writing and
 * its peer's EOF (EPOLLRDHUP), so a FIN behind data is known without a
 * read that would only say EAGAIN. Reads and writes that come back short
 * or with EAGAIN tell the poller the socket is used up for them.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "relay/endpoint.h"
#include "relay/poller.h"

struct endpoint_fd {
	struct endpoint	 ep;
	struct poller	*poller;
	int		 fd;
	int		 tcp;	/* its peer has an IP address */
};

static ssize_t
fd_read(struct endpoint *ep, void *buf, size_t len)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;
	ssize_t			 n;

	/* Short: a stream socket had no more; more would bring an edge. */
	n = recv(e->fd, buf, len, 0);
	if ((n == -1 && errno == EAGAIN) || (n > 0 && (size_t)n < len))
		poller_drained(e->poller, e->fd, EP_READ);
	return n;
}

static ssize_t
fd_write(struct endpoint *ep, const void *buf, size_t len)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;
	ssize_t			 n;

	/* MSG_NOSIGNAL: a peer gone away is an EPIPE to handle, not a death. */
	n = send(e->fd, buf, len, MSG_NOSIGNAL);
	if ((n == -1 && errno == EAGAIN) || (n >= 0 && (size_t)n < len))
		poller_drained(e->poller, e->fd, EP_WRITE);
	return n;
}

static int
fd_shutdown_write(struct endpoint *ep)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	return shutdown(e->fd, SHUT_WR);
}

static void
fd_want(struct endpoint *ep, int what)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	poller_want(e->poller, e->fd, what);
}

static void
fd_exhausted(struct endpoint *ep, int what)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	poller_drained(e->poller, e->fd, what);
}

/* No epoll_ctl: the close takes the socket out of the set. */
static void
fd_free(struct endpoint *ep)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	poller_forget(e->poller, e->fd);
	close(e->fd);
	free(e);
}

/* Unix sockets take the copying path: only TCP is spliced. */
static int
fd_splice_fd(struct endpoint *ep)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	return e->tcp ? e->fd : -1;
}

static const struct endpoint_ops fd_ops = {
	fd_read, fd_write, fd_shutdown_write, fd_want, fd_free, NULL,
	fd_splice_fd
};

static void
fd_ready(int fd, int what, void *arg)
{
	struct endpoint	*ep = arg;

	ep->cb(ep, what, ep->cbarg);
}

struct endpoint *
endpoint_fd_new(struct event_base *base, int fd, const struct sockaddr *peer,
    endpoint_cb *cb, void *arg)
{
	struct endpoint_fd	*e;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	if ((e->poller = poller_get(base)) == NULL ||
	    poller_add(e->poller, fd, fd_ready, &e->ep) == -1) {
		free(e);
		return NULL;
	}
	e->ep.tells_hup = 1;
	e->ep.exhausted = fd_exhausted;
	e->ep.ops = &fd_ops;
	e->ep.cb = cb;
	e->ep.cbarg = arg;
	e->fd = fd;
	e->tcp = peer != NULL && (peer->sa_family == AF_INET ||
	    peer->sa_family == AF_INET6);
	return &e->ep;
}
