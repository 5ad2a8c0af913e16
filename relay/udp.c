/*
 * UDP relays, in the one event loop: the listening sockets, the target's
 * address, and the flow table through which each client's datagrams find
 * the flow (relay/udp_flow.c) made on its first one. Every read loop is
 * bounded per wakeup, so one busy client cannot starve the others.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/listener.h"
#include "relay/clock.h"
#include "relay/log.h"
#include "relay/resolve.h"
#include "relay/udp.h"
#include "relay/udp_flow.h"

#define CLIENT_BATCH	64	/* datagrams read per wakeup and socket */
#define RCVBUF		(4 << 20)	/* asked for; the kernel caps it */
#define REFRESH_SEC	60	/* a target name is looked up again after */
#define RETRY_SEC	5	/* after a failed lookup */

static unsigned char	dgram[UDP_DGRAM_MAX];	/* the loop's one buffer */

static void	refresh_target(struct udp_relay *);

/* ------------------------------------------------------- the client side */

/* Reads one datagram; 1 when there was one, 0 when the socket is dry. */
static int
client_datagram(struct udp_relay *r, struct udp_sock *s)
{
	char			 cbuf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
				    CMSG_SPACE(sizeof(struct in_pktinfo))];
	struct sockaddr_storage	 ss;
	struct iovec		 iov = { dgram, sizeof(dgram) };
	struct msghdr		 msg = { .msg_name = &ss,
				    .msg_namelen = sizeof(ss), .msg_iov = &iov,
				    .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf) };
	struct flow_key		 key;
	struct udp_flow		*f;
	ssize_t			 n;

	if ((n = recvmsg(s->fd, &msg, MSG_DONTWAIT)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			log_debug("udp %s: %s", s->name, strerror(errno));
		return 1;
	}
	if ((msg.msg_flags & MSG_TRUNC) || flow_key_from_sa(&key,
	    (struct sockaddr *)&ss, msg.msg_namelen) == -1) {
		r->dropped++;
		return 1;
	}
	if ((f = udp_flow_find(r, &key)) == NULL) {
		if ((f = udp_flow_open(r, s, &key, &msg)) == NULL) {
			r->dropped++;
			return 1;
		}
		refresh_target(r);
	}
	udp_flow_forward(f, dgram, (size_t)n);
	return 1;
}

static void
on_client_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp_sock	*s = arg;
	int		 i;

	for (i = 0; i < CLIENT_BATCH; i++)
		if (!client_datagram(s->owner, s))
			break;
}

static void
set_reading(struct udp_relay *r)
{
	size_t	i;

	for (i = 0; i < r->nsocks; i++)
		if (r->reading && r->targetlen > 0)
			event_add(&r->socks[i].ev, NULL);
		else
			event_del(&r->socks[i].ev);
}

/* ------------------------------------------------------------ the target */

/*
 * The target's name is looked up per relay, not per flow: a DNS relay
 * sees a new client for nearly every query, and a lookup each would cost
 * a resolver thread and delay every first datagram. The answer is reused
 * by new flows and looked up again after REFRESH_SEC; a flow keeps the
 * address it started with. Until the first answer the listening sockets
 * are not read: clients' datagrams wait in the kernel.
 */
static void
on_resolved(int gai_error, struct addrinfo *res, void *arg)
{
	struct udp_relay	*r = arg;
	struct timeval		 tv = { RETRY_SEC, 0 };
	char			 name[ADDR_STR_MAX], to[ADDR_STR_MAX];

	r->lookup = NULL;
	addr_spec_format(&r->conf->to, to, sizeof(to));
	if (res == NULL) {
		log_warnx("udp relay %s: cannot resolve %s: %s%s",
		    r->socks[0].name, to, gai_strerror(gai_error),
		    r->targetlen ? "; keeping the last address" : "");
		r->resolved = mono_sec();
		if (r->targetlen == 0)
			evtimer_add(&r->retry, &tv);
		return;
	}
	memcpy(&r->target, res->ai_addr, res->ai_addrlen);
	r->targetlen = res->ai_addrlen;
	r->resolved = mono_sec();
	freeaddrinfo(res);
	addr_sa_format((struct sockaddr *)&r->target, r->targetlen, name,
	    sizeof(name));
	log_debug("udp relay %s: %s is %s", r->socks[0].name, to, name);
	set_reading(r);
}

static void
start_lookup(struct udp_relay *r)
{
	struct timeval	tv = { RETRY_SEC, 0 };
	char		port[8];

	snprintf(port, sizeof(port), "%u", r->conf->to.port);
	r->lookup = resolve_start(r->base, r->conf->to.host, port,
	    on_resolved, r);
	if (r->lookup == NULL && r->targetlen == 0) {
		log_warnx("udp relay %s: cannot start a lookup of %s",
		    r->socks[0].name, r->conf->to.host);
		evtimer_add(&r->retry, &tv);
	}
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	start_lookup(arg);
}

static void
refresh_target(struct udp_relay *r)
{
	if (!r->conf->to.numeric && r->lookup == NULL &&
	    mono_sec() - r->resolved >= REFRESH_SEC)
		start_lookup(r);
}

/* An IP literal needs no lookup. */
static void
numeric_target(struct udp_relay *r)
{
	struct sockaddr_in6	*s6 = (void *)&r->target;
	struct sockaddr_in	*s4 = (void *)&r->target;

	memset(&r->target, 0, sizeof(r->target));
	if (inet_pton(AF_INET, r->conf->to.host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(r->conf->to.port);
		r->targetlen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, r->conf->to.host, &s6->sin6_addr) ==
	    1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(r->conf->to.port);
		r->targetlen = sizeof(*s6);
	}
}

/* ------------------------------------------------------------- binding */

static int
bind_one(struct udp_relay *r, int family, const struct sockaddr *sa,
    socklen_t salen, int v6only, char *err, size_t errlen, int *exitcode)
{
	struct udp_sock	*s = &r->socks[r->nsocks];
	const struct addr_spec *spec = &r->conf->listen[0];
	int		 fd, on = 1, rcvbuf = RCVBUF;

	memcpy(s->name, "udp:", 4);
	addr_sa_format(sa, salen, s->name + 4, sizeof(s->name) - 4);
	if ((fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	/* No SO_REUSEADDR: for UDP it would let a second relayd share the
	 * port and take half the datagrams. */
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    sizeof(v6only));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
	} else
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, sa, salen) == -1)
		goto fail;
	s->fd = fd;
	s->family = family;
	s->owner = r;
	event_assign(&s->ev, r->base, fd, EV_READ | EV_PERSIST,
	    on_client_read, s);
	r->nsocks++;
	return 0;
fail:
	*exitcode = listener_exit_code(errno);
	snprintf(err, errlen, "cannot listen on %s: %s%s", s->name,
	    strerror(errno), errno == EACCES ? listener_bind_hint(spec) : "");
	if (fd != -1)
		close(fd);
	return -1;
}

/* listener_bind_host's step for a UDP relay; the wildcard is named
 * "udp:*:PORT" once bound. */
static int
bind_udp(int family, const struct sockaddr *sa, socklen_t salen, int any,
    void *arg, char *err, size_t errlen, int *exitcode)
{
	struct udp_relay	*r = arg;
	/* sin_port and sin6_port share their place. */
	in_port_t		 port = ((const struct sockaddr_in *)sa)->sin_port;

	if (r->nsocks == UDP_MAX_SOCKS)
		return 1;
	if (bind_one(r, family, sa, salen, !any, err, errlen, exitcode) == -1)
		return -1;
	if (any)
		snprintf(r->socks[r->nsocks - 1].name, ADDR_STR_MAX,
		    "udp:*:%u", ntohs(port));
	return 0;
}

/* ---------------------------------------------------------- the relay */

struct udp_relay *
udp_relay_new(struct event_base *base, const struct relay_conf *conf,
    char *err, size_t errlen, int *exitcode)
{
	struct udp_relay	*r;
	size_t			 i;
	int			 rc = 0;

	if ((r = calloc(1, sizeof(*r))) == NULL || flowtab_init(&r->tab) ==
	    -1) {
		free(r);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	r->base = base;
	r->conf = conf;
	TAILQ_INIT(&r->flows);
	evtimer_assign(&r->retry, base, on_retry, r);
	r->timeout.tv_sec = conf->udp_timeout;
	/* At most 256 durations per loop; past that, a plain timeout. */
	if ((r->expiry = event_base_init_common_timeout(base, &r->timeout)) ==
	    NULL)
		r->expiry = &r->timeout;
	for (i = 0; i < conf->nlisten && rc == 0; i++) {
		if (r->nsocks == UDP_MAX_SOCKS)
			break;
		rc = listener_bind_host(&conf->listen[i], SOCK_DGRAM,
		    bind_udp, r, err, errlen, exitcode);
	}
	if (rc == -1) {
		udp_relay_forget(r);
		return NULL;
	}
	if (conf->to.numeric)
		numeric_target(r);
	return r;
}

void
udp_relay_start(struct udp_relay *r)
{
	size_t	i;

	for (i = 0; i < r->nsocks; i++)
		log_info("listening on %s", r->socks[i].name);
	r->reading = 1;
	if (r->targetlen == 0 && r->lookup == NULL)
		start_lookup(r);
	set_reading(r);
}

void
udp_relay_stop(struct udp_relay *r)
{
	r->reading = 0;
	set_reading(r);
}

void
udp_relay_addrs(const struct udp_relay *r, char *buf, size_t len)
{
	size_t	i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < r->nsocks && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    off ? " " : "", r->socks[i].name);
}

void
udp_relay_describe(const struct udp_relay *r, char *buf, size_t len)
{
	snprintf(buf, len, "flows %u open, %" PRIu64 " total, %" PRIu64
	    " datagrams dropped, in=%" PRIu64 " out=%" PRIu64, r->open,
	    r->total, r->dropped, r->bytes_in, r->bytes_out);
}

void
udp_relay_count(const struct udp_relay *r, struct udp_counts *n)
{
	n->open = r->open;
	n->total = r->total;
	n->dgrams_in = r->dgrams_in;
	n->dgrams_out = r->dgrams_out;
	n->dropped = r->dropped;
	n->bytes_in = r->bytes_in;
	n->bytes_out = r->bytes_out;
}

static void
release(struct udp_relay *r)
{
	size_t	i;

	for (i = 0; i < r->nsocks; i++) {
		event_del(&r->socks[i].ev);
		close(r->socks[i].fd);
	}
	event_del(&r->retry);
	flowtab_free(&r->tab);
	free(r);
}

void
udp_relay_free(struct udp_relay *r, const char *why)
{
	if (r == NULL)
		return;
	while (!TAILQ_EMPTY(&r->flows))
		udp_flow_close(TAILQ_FIRST(&r->flows), why);
	if (r->lookup != NULL)
		resolve_cancel(r->lookup);
	release(r);
}

void
udp_relay_forget(struct udp_relay *r)
{
	struct udp_flow	*f;

	if (r == NULL)
		return;
	while ((f = TAILQ_FIRST(&r->flows)) != NULL)
		udp_flow_close(f, NULL);
	release(r);
}
