/*
 * Non-blocking connect. Names are looked up when each connection is made
 * (the answer may change), IP literals and unix paths need no lookup. Each
 * address is tried in turn until one answers or the deadline passes.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include "relay/dial.h"
#include "relay/endpoint.h"
#include "relay/log.h"
#include "relay/poller.h"
#include "relay/resolve.h"

struct dial {
	struct event_base		*base;
	dial_cb				*cb;
	void				*arg;
	struct resolve			*req;
	struct addrinfo			*res;	/* looked up, or NULL */
	struct addrinfo			*next;	/* next to try */
	struct addrinfo			 one;	/* literal or unix address */
	struct sockaddr_storage		 one_sa;
	struct poller			*poller;	/* of base's loop */
	struct event			 timer;
	struct event			 retry_ev;	/* out of descriptors */
	int				 fd;		/* connecting */
	int				 last_error;
	int				 sync;	/* still inside dial_start */
	int				 hand_over;	/* see dial_hand_over */
	/* A result found inside dial_start, delivered from the loop. */
	int				 result_fd;
	int				 result_error;
	socklen_t			 result_salen;
	char				 result_why[160];
};

static void	try_next(struct dial *);

static void
dial_free(struct dial *d)
{
	if (d->req != NULL)
		resolve_cancel(d->req);
	if (d->res != NULL)
		freeaddrinfo(d->res);
	event_del(&d->timer);
	event_del(&d->retry_ev);
	if (d->result_fd != -1)
		close(d->result_fd);
	if (d->fd != -1) {
		poller_forget(d->poller, d->fd);
		close(d->fd);
	}
	free(d);
}

static void
deliver(evutil_socket_t unused, short what, void *arg)
{
	struct dial	*d = arg;
	dial_cb		*cb = d->cb;
	void		*cbarg = d->arg;
	int		 fd = d->result_fd;
	char		 why[sizeof(d->result_why)];

	memcpy(why, d->result_why, sizeof(why));
	d->result_fd = -1;
	errno = d->result_error;
	cb(fd, (struct sockaddr *)&d->one_sa, d->result_salen,
	    fd == -1 ? why : NULL, cbarg);
	dial_free(d);
}

/*
 * Reports the outcome once and frees d. Inside dial_start the caller has
 * no handle yet, so the report is deferred to the loop. A failure comes
 * with errno set to error.
 */
static void
finish(struct dial *d, int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why, int error)
{
	if (d->sync) {
		d->result_fd = fd;
		d->result_error = error;
		if (sa != NULL && salen <= sizeof(d->one_sa)) {
			memmove(&d->one_sa, sa, salen);
			d->result_salen = salen;
		}
		snprintf(d->result_why, sizeof(d->result_why), "%s",
		    why ? why : "");
		event_del(&d->timer);
		evtimer_assign(&d->timer, d->base, deliver, d);
		event_active(&d->timer, EV_TIMEOUT, 0);
		return;
	}
	errno = error;
	d->cb(fd, sa, salen, why, d->arg);
	dial_free(d);
}

static void
fail(struct dial *d, const char *what, const char *detail, int error)
{
	char	why[256];

	snprintf(why, sizeof(why), "%s%s", what, detail);
	finish(d, -1, NULL, 0, why, error);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dial	*d = arg;

	fail(d, "connect timeout", "", ETIMEDOUT);
}

/*
 * The connect ended. Watched for reading as well as writing: a failed
 * connect raises EPOLLERR (with EPOLLHUP), which the poller reports as
 * both, while one that succeeded is writable only. Writable alone therefore
 * needs no SO_ERROR to ask; anything else (an error, or a target that
 * spoke first) asks. Handed over, the socket stays in the loop's set for
 * the endpoint the callback makes of it; otherwise it leaves the set now.
 */
static void
on_connected(int fd, int what, void *arg)
{
	struct dial		*d = arg;
	struct addrinfo		*ai = d->next;
	struct poller		*p = d->poller;
	int			 error = 0, hand_over = d->hand_over;
	socklen_t		 len = sizeof(error);

	if (what != EP_WRITE &&
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		d->last_error = error;
		poller_forget(p, fd);
		close(d->fd);
		d->fd = -1;
		d->next = ai->ai_next;
		try_next(d);
		return;
	}
	d->fd = -1;	/* the callback's */
	poller_offer(p, fd);
	if (!hand_over)
		poller_retract(p, fd);
	finish(d, fd, ai->ai_addr, ai->ai_addrlen, NULL, 0);
	if (hand_over)
		poller_retract(p, fd);
}

static const struct timeval retry_tv = { 0, 100 * 1000 };

static void
retry(evutil_socket_t unused, short what, void *arg)
{
	try_next(arg);
}

/* Starts a connect to d->next; on immediate failure moves on. */
static void
try_next(struct dial *d)
{
	struct addrinfo	*ai;
	int		 fd, one = 1;

	for (ai = d->next; ai != NULL; ai = d->next = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1 && (errno == EMFILE || errno == ENFILE)) {
			/* Out of descriptors: wait for a connection to close
			 * rather than fail this one; the deadline still holds. */
			event_add(&d->retry_ev, &retry_tv);
			return;
		}
		if (fd == -1) {
			d->last_error = errno;
			continue;
		}
		if (ai->ai_family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			finish(d, fd, ai->ai_addr, ai->ai_addrlen, NULL, 0);
			return;
		}
		if (errno == EINPROGRESS &&
		    poller_add(d->poller, fd, on_connected, d) == 0) {
			d->fd = fd;
			poller_want(d->poller, fd, EP_READ | EP_WRITE);
			return;
		}
		d->last_error = errno;
		close(fd);
	}
	fail(d, "connect failed: ", strerror(d->last_error), d->last_error);
}

static void
on_resolved(int result, struct addrinfo *res, void *arg)
{
	struct dial	*d = arg;

	d->req = NULL;
	if (result != 0) {
		fail(d, "resolve failed: ", gai_strerror(result), ENOENT);
		return;
	}
	d->res = d->next = res;
	try_next(d);
}

static void
resolve(struct dial *d, const struct addr_spec *spec)
{
	char	port[8];

	snprintf(port, sizeof(port), "%u", spec->port);
	if ((d->req = resolve_start(d->base, spec->host, port, on_resolved,
	    d)) == NULL)
		fail(d, "resolve failed: ", "cannot start a lookup", ENOMEM);
}

/* Fills d->one with a literal IP or unix address. */
static void
literal(struct dial *d, const struct addr_spec *spec)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&d->one_sa;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&d->one_sa;

	memset(&d->one_sa, 0, sizeof(d->one_sa));
	if (spec->kind == ADDR_UNIX) {
		d->one.ai_family = AF_UNIX;
		d->one.ai_addrlen = addr_unix_sockaddr(spec->path,
		    (struct sockaddr_un *)&d->one_sa);
	} else if (inet_pton(AF_INET, spec->host, &s4->sin_addr) == 1) {
		s4->sin_family = d->one.ai_family = AF_INET;
		s4->sin_port = htons(spec->port);
		d->one.ai_addrlen = sizeof(*s4);
	} else {
		inet_pton(AF_INET6, spec->host, &s6->sin6_addr);
		s6->sin6_family = d->one.ai_family = AF_INET6;
		s6->sin6_port = htons(spec->port);
		d->one.ai_addrlen = sizeof(*s6);
	}
	d->one.ai_addr = (struct sockaddr *)&d->one_sa;
	d->next = &d->one;
}

struct dial *
dial_start(struct event_base *base, const struct addr_spec *spec,
    int timeout_sec, dial_cb *cb, void *arg)
{
	struct timeval	 tv = { timeout_sec, 0 };
	struct dial	*d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->base = base;
	d->cb = cb;
	d->arg = arg;
	d->fd = -1;
	d->result_fd = -1;
	d->last_error = ECONNREFUSED;
	d->sync = 1;
	evtimer_assign(&d->timer, base, on_timeout, d);
	evtimer_assign(&d->retry_ev, base, retry, d);
	evtimer_add(&d->timer, &tv);
	if ((d->poller = poller_get(base)) == NULL)
		fail(d, "connect failed: ", strerror(errno), errno);
	else if (spec->kind == ADDR_UNIX || spec->numeric) {
		literal(d, spec);
		try_next(d);
	} else
		resolve(d, spec);
	d->sync = 0;
	return d;
}

void
dial_hand_over(struct dial *d)
{
	d->hand_over = 1;
}

void
dial_cancel(struct dial *d)
{
	if (d != NULL)
		dial_free(d);
}
