/*
 * -D: the SOCKS5 handshake on an accepted client, then a connection like
 * -L's whose target is the one the client asked for. Each message is read
 * exactly (its length known from its first bytes), so data a client sends
 * right after its request stays in the socket for the pump.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/log.h"
#include "relay/service.h"
#include "tunnel/socks.h"
#include "tunnel/socks_conn.h"

#define SOCKS_HANDSHAKE_SEC	10
#define SOCKS_MAX_HANDSHAKES	256
/* One client address's share of them: its stalled clients cannot keep
 * the others out. */
#define SOCKS_SHARE		(SOCKS_MAX_HANDSHAKES / 4)

struct socks {
	TAILQ_ENTRY(socks)	 entry;
	struct socks_server	*f;
	int			 fd;
	int			 greeted;
	uint8_t			 buf[SOCKS_MAX_REQUEST];
	size_t			 have;
	struct event		 ev;
	struct event		 timer;
	struct sockaddr_storage	 from;
	char			 name[ADDR_STR_MAX];
};

struct socks_server {
	struct event_base	*base;
	struct service		*svc;
	TAILQ_HEAD(, socks)	 handshakes;	/* clients still negotiating */
	unsigned		 nhandshakes;
};

void
socks_answer(struct endpoint *ep, const char *why, void *arg)
{
	struct conn	*c = arg;
	struct endpoint	*client = conn_client(c);
	uint8_t		 reply[SOCKS_REPLY_LEN];

	socks_reply(reply, ep != NULL ? SOCKS_REP_OK : SOCKS_REP_REFUSED);
	/* Ten bytes to a socket that sent its request and waits for them:
	 * the kernel buffer takes them at once. */
	if (client->ops->write(client, reply, sizeof(reply)) !=
	    (ssize_t)sizeof(reply)) {
		if (ep != NULL)
			ep->ops->free(ep);
		conn_target_failed(c, "client error: cannot send SOCKS reply");
		return;
	}
	if (ep != NULL)
		conn_target_ready(c, ep);
	else
		conn_target_failed(c, why);
}

static void
socks_free(struct socks *s, int close_fd)
{
	TAILQ_REMOVE(&s->f->handshakes, s, entry);
	s->f->nhandshakes--;
	event_del(&s->ev);
	event_del(&s->timer);
	if (close_fd)
		close(s->fd);
	free(s);
}

/* Counts and logs (a few lines a second) a client refused before its
 * target was opened. */
static void __attribute__((format(printf, 3, 4)))
refuse(struct socks_server *f, const char *client, const char *fmt, ...)
{
	va_list	ap;
	char	why[200];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	f->svc->rejected++;
	f->svc->refused.handshake++;
	service_log_refusal(f->svc, client, why);
}

static void
socks_fail(struct socks *s, const char *why, uint8_t rep, int reply)
{
	uint8_t	out[SOCKS_REPLY_LEN];

	if (reply) {
		socks_reply(out, rep);
		(void)send(s->fd, out, sizeof(out), MSG_NOSIGNAL);
	}
	refuse(s->f, s->name, "SOCKS handshake failed: %s", why);
	socks_free(s, 1);
}

static void
got_request(struct socks *s)
{
	struct addr_spec to;
	struct endpoint	*ep;
	size_t		 used;
	uint8_t		 rep;

	if (socks_parse_request(s->buf, s->have, &used, &to, &rep) !=
	    SOCKS_DONE) {
		socks_fail(s, "bad request", rep, 1);
		return;
	}
	event_del(&s->ev);
	if ((ep = endpoint_fd_new(s->f->base, s->fd, NULL, NULL,
	    NULL)) == NULL) {
		socks_fail(s, "out of memory", SOCKS_REP_FAILURE, 1);
		return;
	}
	conn_start(s->f->svc, ep, s->name, &to);
	socks_free(s, 0);
}

static void
got_greeting(struct socks *s)
{
	uint8_t	answer[2] = { 5, 0 };
	size_t	used;

	if (socks_parse_greeting(s->buf, s->have, &used) != SOCKS_DONE) {
		answer[1] = 0xff;	/* no acceptable method */
		(void)send(s->fd, answer, sizeof(answer), MSG_NOSIGNAL);
		socks_fail(s, "no supported method (need SOCKS5 without "
		    "authentication)", 0, 0);
		return;
	}
	if (send(s->fd, answer, sizeof(answer), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(answer)) {
		socks_fail(s, "write error", 0, 0);
		return;
	}
	s->greeted = 1;
	s->have = 0;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct socks	*s = arg;
	size_t		 need;
	ssize_t		 n;

	need = s->greeted ? socks_request_len(s->buf, s->have) :
	    socks_greeting_len(s->buf, s->have);
	if (need == 0 || need > sizeof(s->buf)) {
		socks_fail(s, "bad message", SOCKS_REP_FAILURE, s->greeted);
		return;
	}
	if ((n = recv(fd, s->buf + s->have, need - s->have, 0)) <= 0) {
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		socks_fail(s, n == 0 ? "client closed" : strerror(errno), 0, 0);
		return;
	}
	s->have += (size_t)n;
	/* The first bytes may tell that the message is longer. */
	need = s->greeted ? socks_request_len(s->buf, s->have) :
	    socks_greeting_len(s->buf, s->have);
	if (s->have < need)
		return;
	if (s->greeted)
		got_request(s);
	else
		got_greeting(s);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	socks_fail(arg, "too slow", SOCKS_REP_FAILURE, 0);
}

/* Whether a and b are the same host (ports aside). */
static int
same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	const struct sockaddr_in	*a4 = (const void *)a;
	const struct sockaddr_in	*b4 = (const void *)b;
	const struct sockaddr_in6	*a6 = (const void *)a;
	const struct sockaddr_in6	*b6 = (const void *)b;

	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
	return 1;	/* unix sockets: one host */
}

/* Why a new client from sa gets no handshake slot, or NULL. */
static const char *
no_room(struct socks_server *f, const struct sockaddr *sa)
{
	struct socks	*s;
	unsigned	 mine = 0;

	TAILQ_FOREACH(s, &f->handshakes, entry)
		if (same_host((struct sockaddr *)&s->from, sa) &&
		    ++mine >= SOCKS_SHARE)
			return "too many SOCKS handshakes from this address";
	if (f->nhandshakes >= SOCKS_MAX_HANDSHAKES)
		return "too many SOCKS handshakes";
	return NULL;
}

void
socks_accept(struct socks_server *f, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct timeval	 tv = { SOCKS_HANDSHAKE_SEC, 0 };
	struct socks	*s;
	const char	*why;
	char		 name[ADDR_STR_MAX];

	if ((why = no_room(f, sa)) != NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		addr_sa_format(sa, salen, name, sizeof(name));
		refuse(f, name, "%s", why != NULL ? why : "out of memory");
		close(fd);
		return;
	}
	s->f = f;
	s->fd = fd;
	if (salen <= sizeof(s->from))
		memcpy(&s->from, sa, salen);
	addr_sa_format(sa, salen, s->name, sizeof(s->name));
	TAILQ_INSERT_TAIL(&f->handshakes, s, entry);
	f->nhandshakes++;
	event_assign(&s->ev, f->base, fd, EV_READ | EV_PERSIST, on_readable,
	    s);
	evtimer_assign(&s->timer, f->base, on_timeout, s);
	event_add(&s->ev, NULL);
	evtimer_add(&s->timer, &tv);
}

struct socks_server *
socks_server_new(struct event_base *base, struct service *svc)
{
	struct socks_server	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->base = base;
	f->svc = svc;
	TAILQ_INIT(&f->handshakes);
	return f;
}

void
socks_server_free(struct socks_server *f)
{
	if (f == NULL)
		return;
	while (!TAILQ_EMPTY(&f->handshakes))
		socks_free(TAILQ_FIRST(&f->handshakes), 1);
	free(f);
}
