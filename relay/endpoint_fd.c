/*
 * Socket endpoints: two persistent events, armed only while wanted. The
 * reading one asks for EPOLLRDHUP (EV_CLOSED) where libevent has it, so
 * a FIN behind data is known without a read that would only say EAGAIN.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/endpoint.h"

struct endpoint_fd {
	struct endpoint	ep;
	int		fd;
	int		tcp;	/* its peer has an IP address */
	struct event	rd;
	struct event	wr;
};

static ssize_t
fd_read(struct endpoint *ep, void *buf, size_t len)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	return recv(e->fd, buf, len, 0);
}

static ssize_t
fd_write(struct endpoint *ep, const void *buf, size_t len)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	/* MSG_NOSIGNAL: a peer gone away is an EPIPE to handle, not a death. */
	return send(e->fd, buf, len, MSG_NOSIGNAL);
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

	if ((what & EP_READ) && !(ep->wanted & EP_READ))
		event_add(&e->rd, NULL);
	else if (!(what & EP_READ) && (ep->wanted & EP_READ))
		event_del(&e->rd);
	if ((what & EP_WRITE) && !(ep->wanted & EP_WRITE))
		event_add(&e->wr, NULL);
	else if (!(what & EP_WRITE) && (ep->wanted & EP_WRITE))
		event_del(&e->wr);
}

static void
fd_free(struct endpoint *ep)
{
	struct endpoint_fd	*e = (struct endpoint_fd *)ep;

	event_del(&e->rd);
	event_del(&e->wr);
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
fd_ready(evutil_socket_t fd, short what, void *arg)
{
	struct endpoint	*ep = arg;

	ep->cb(ep, (what & EV_READ ? EP_READ : 0) |
	    (what & EV_WRITE ? EP_WRITE : 0) |
	    (what & EV_CLOSED ? EP_HUP : 0), ep->cbarg);
}

struct endpoint *
endpoint_fd_new(struct event_base *base, int fd, const struct sockaddr *peer,
    endpoint_cb *cb, void *arg)
{
	struct endpoint_fd	*e;
	short			 hup = 0;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	if (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE)
		hup = EV_CLOSED;
	e->ep.tells_hup = hup != 0;
	e->ep.ops = &fd_ops;
	e->ep.cb = cb;
	e->ep.cbarg = arg;
	e->fd = fd;
	e->tcp = peer != NULL && (peer->sa_family == AF_INET ||
	    peer->sa_family == AF_INET6);
	event_assign(&e->rd, base, fd, EV_READ | EV_PERSIST | hup, fd_ready,
	    &e->ep);
	event_assign(&e->wr, base, fd, EV_WRITE | EV_PERSIST, fd_ready, &e->ep);
	return &e->ep;
}
