/*
 * UDP relays, in the one event loop. Each client address gets a flow: a
 * socket connected to the target, made on its first datagram, found again
 * through a hash table, so the kernel hands each reply to the flow whose
 * client asked. Every read loop is bounded per wakeup, so one busy client
 * cannot starve the others. A flow's expiry timer uses a libevent common
 * timeout (all flows of a relay wait the same time): re-arming it on each
 * datagram moves it to the tail of a list, O(1), whatever the flow count.
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
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/flowtab.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/resolve.h"
#include "relay/udp.h"

#define MAX_SOCKS	8
#define CLIENT_BATCH	64	/* datagrams read per wakeup, listening side */
#define FLOW_BATCH	16	/* and per flow, target side */
#define DGRAM_MAX	65536	/* more than any UDP payload over IPv4/IPv6 */
#define RCVBUF		(4 << 20)	/* asked for; the kernel caps it */
#define REFRESH_SEC	60	/* a target name is looked up again after */
#define RETRY_SEC	5	/* after a failed lookup */
#define WARN_EVERY	10	/* seconds between "flow limit" warnings */

struct udp_sock {
	int			 fd;
	int			 family;
	struct event		 ev;
	struct udp_relay	*owner;
	char			 name[ADDR_STR_MAX];
};

/* The local address a client wrote to, so the reply comes from it even
 * when the socket is bound to every address. */
union local_addr {
	struct in_pktinfo	v4;
	struct in6_pktinfo	v6;
};

struct flow {
	struct flow_entry	 entry;		/* in the relay's table */
	TAILQ_ENTRY(flow)	 link;
	struct udp_relay	*relay;
	struct udp_sock		*via;		/* replies leave from here */
	uint64_t		 id;
	int			 fd;		/* connected to the target */
	struct event		 readev;
	struct event		 timer;
	struct sockaddr_storage	 client;
	socklen_t		 clientlen;
	union local_addr	 local;
	int			 has_local;
	uint64_t		 dgrams_in, dgrams_out, bytes_in, bytes_out;
	uint64_t		 refused;	/* ICMP port unreachable */
	struct timespec		 start;
	char			 client_name[ADDR_STR_MAX];
	char			 target_name[ADDR_STR_MAX];
};

struct udp_relay {
	struct event_base	*base;
	const struct relay_conf	*conf;
	struct udp_sock		 socks[MAX_SOCKS];
	size_t			 nsocks;
	struct flowtab		 tab;
	TAILQ_HEAD(, flow)	 flows;
	struct timeval		 timeout;
	const struct timeval	*expiry;	/* common timeout, or &timeout */
	struct resolve		*lookup;	/* in progress */
	struct event		 retry;
	struct sockaddr_storage	 target;
	socklen_t		 targetlen;	/* 0 = not known yet */
	time_t			 resolved;	/* monotonic seconds */
	int			 reading;	/* started and not stopped */
	time_t			 warned;
	unsigned		 open;
	uint64_t		 total, dropped, bytes_in, bytes_out;
};

static uint64_t		next_flow_id;
static unsigned char	dgram[DGRAM_MAX];	/* the loop's one buffer */

static time_t
now_sec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static double
elapsed(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* ---------------------------------------------------------------- flows */

/* The one close path: unlinks, closes, counts and logs the summary. */
static void
flow_close(struct flow *f, const char *why)
{
	struct udp_relay	*r = f->relay;

	log_info("udp flow %" PRIu64 " %s -> %s datagrams in=%" PRIu64
	    " out=%" PRIu64 " bytes in=%" PRIu64 " out=%" PRIu64 " refused=%"
	    PRIu64 " time=%.3f end=%s", f->id, f->client_name, f->target_name,
	    f->dgrams_in, f->dgrams_out, f->bytes_in, f->bytes_out, f->refused,
	    elapsed(&f->start), why);
	event_del(&f->readev);
	event_del(&f->timer);
	close(f->fd);
	flowtab_remove(&r->tab, &f->entry);
	TAILQ_REMOVE(&r->flows, f, link);
	r->open--;
	free(f);
}

static void
on_flow_expired(evutil_socket_t fd, short what, void *arg)
{
	flow_close(arg, "idle");
}

/* Silence is measured from the last datagram either way. */
static void
flow_touch(struct flow *f)
{
	event_add(&f->timer, f->relay->expiry);
}

/* Sends a reply from the address the client wrote to. */
static ssize_t
send_reply(struct flow *f, const void *buf, size_t len)
{
	char		 cbuf[CMSG_SPACE(sizeof(union local_addr))];
	struct iovec	 iov = { (void *)(uintptr_t)buf, len };
	struct msghdr	 msg = { .msg_name = &f->client,
			    .msg_namelen = f->clientlen, .msg_iov = &iov,
			    .msg_iovlen = 1 };
	struct cmsghdr	*c;
	ssize_t		 n;

	if (f->has_local) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		c = (struct cmsghdr *)(void *)cbuf;
		if (f->via->family == AF_INET) {
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(f->local.v4));
			memcpy(CMSG_DATA(c), &f->local.v4, sizeof(f->local.v4));
		} else {
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(f->local.v6));
			memcpy(CMSG_DATA(c), &f->local.v6, sizeof(f->local.v6));
		}
		msg.msg_controllen = c->cmsg_len;
	}
	n = sendmsg(f->via->fd, &msg, MSG_DONTWAIT);
	/* A source the kernel will not send from (a broadcast address):
	 * let routing choose. */
	if (n == -1 && errno == EINVAL && f->has_local) {
		f->has_local = 0;
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		n = sendmsg(f->via->fd, &msg, MSG_DONTWAIT);
	}
	return n;
}

/*
 * Replies from the target. A refused datagram (ICMP port unreachable)
 * shows up here as ECONNREFUSED once; reading it clears it, so it neither
 * spins nor ends the flow: the target may come back.
 */
static void
on_target_read(evutil_socket_t fd, short what, void *arg)
{
	struct flow		*f = arg;
	struct udp_relay	*r = f->relay;
	ssize_t			 n;
	int			 i, heard = 0;

	for (i = 0; i < FLOW_BATCH; i++) {
		if ((n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ECONNREFUSED && f->refused++ == 0)
				log_debug("udp flow %" PRIu64 ": %s refused",
				    f->id, f->target_name);
			else if (errno != ECONNREFUSED && errno != EINTR)
				log_debug("udp flow %" PRIu64 ": %s: %s", f->id,
				    f->target_name, strerror(errno));
			continue;
		}
		heard = 1;
		if (send_reply(f, dgram, (size_t)n) == -1) {
			r->dropped++;
			log_debug("udp flow %" PRIu64 ": reply to %s: %s",
			    f->id, f->client_name, strerror(errno));
			continue;
		}
		f->dgrams_out++;
		f->bytes_out += (uint64_t)n;
		r->bytes_out += (uint64_t)n;
	}
	if (heard)
		flow_touch(f);
}

/* Says, at most every WARN_EVERY seconds, why new clients are dropped. */
static void
warn_dropping(struct udp_relay *r, const char *why)
{
	time_t	now = now_sec();

	if (r->warned != 0 && now - r->warned < WARN_EVERY)
		return;
	r->warned = now;
	log_warnx("udp relay %s: %s; dropping datagrams of new clients",
	    r->socks[0].name, why);
}

/* A socket connected to the target (connecting a UDP socket only sets
 * its peer: nothing goes on the wire). */
static int
target_socket(struct udp_relay *r)
{
	int	fd, saved;

	if ((fd = socket(r->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&r->target, r->targetlen) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static void	refresh_target(struct udp_relay *);

static struct flow *
flow_open(struct udp_relay *r, struct udp_sock *s, const struct flow_key *key,
    const struct sockaddr_storage *client, socklen_t clientlen)
{
	struct flow	*f;
	char		 why[128];
	int		 fd;

	if (r->conf->max_conns > 0 && r->open >= r->conf->max_conns) {
		snprintf(why, sizeof(why), "%u flows open (max-conns)",
		    r->open);
		warn_dropping(r, why);
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (fd = target_socket(r)) ==
	    -1) {
		snprintf(why, sizeof(why), "cannot open a flow: %s",
		    f == NULL ? "out of memory" : strerror(errno));
		warn_dropping(r, why);
		free(f);
		return NULL;
	}
	f->relay = r;
	f->via = s;
	f->fd = fd;
	f->id = ++next_flow_id;
	f->entry.key = *key;
	memcpy(&f->client, client, clientlen);
	f->clientlen = clientlen;
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	addr_sa_format((const struct sockaddr *)client, clientlen,
	    f->client_name, sizeof(f->client_name));
	memcpy(f->target_name, "udp:", 4);
	addr_sa_format((struct sockaddr *)&r->target, r->targetlen,
	    f->target_name + 4, sizeof(f->target_name) - 4);
	event_assign(&f->readev, r->base, fd, EV_READ | EV_PERSIST,
	    on_target_read, f);
	evtimer_assign(&f->timer, r->base, on_flow_expired, f);
	event_add(&f->readev, NULL);
	flowtab_insert(&r->tab, &f->entry);
	TAILQ_INSERT_TAIL(&r->flows, f, link);
	r->open++;
	r->total++;
	log_debug("udp flow %" PRIu64 " %s -> %s opened", f->id,
	    f->client_name, f->target_name);
	refresh_target(r);
	return f;
}

/* ------------------------------------------------------- the client side */

/* Where the datagram was addressed, from IP_PKTINFO / IPV6_PKTINFO. */
static int
local_of(struct msghdr *msg, union local_addr *local)
{
	struct cmsghdr		*c;
	struct in_pktinfo	 in4;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == IPPROTO_IP &&
		    c->cmsg_type == IP_PKTINFO) {
			memcpy(&in4, CMSG_DATA(c), sizeof(in4));
			memset(&local->v4, 0, sizeof(local->v4));
			local->v4.ipi_spec_dst = in4.ipi_addr;
			return 1;
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			memcpy(&local->v6, CMSG_DATA(c), sizeof(local->v6));
			return 1;
		}
	}
	return 0;
}

/* Passes one datagram to the target; ECONNREFUSED here is an earlier
 * datagram's ICMP error reported late: this one was not sent, try again. */
static void
forward(struct udp_relay *r, struct flow *f, size_t len)
{
	ssize_t	n;

	n = send(f->fd, dgram, len, MSG_DONTWAIT);
	if (n == -1 && errno == ECONNREFUSED) {
		f->refused++;
		n = send(f->fd, dgram, len, MSG_DONTWAIT);
	}
	if (n == -1) {
		r->dropped++;
		log_debug("udp flow %" PRIu64 ": to %s: %s", f->id,
		    f->target_name, strerror(errno));
		return;
	}
	f->dgrams_in++;
	f->bytes_in += len;
	r->bytes_in += len;
	flow_touch(f);
}

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
	struct flow_entry	*e;
	struct flow_key		 key;
	struct flow		*f;
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
	if ((e = flowtab_find(&r->tab, &key)) != NULL)
		f = (struct flow *)(void *)e;
	else if ((f = flow_open(r, s, &key, &ss, msg.msg_namelen)) == NULL) {
		r->dropped++;
		return 1;
	} else
		f->has_local = local_of(&msg, &f->local);
	forward(r, f, (size_t)n);
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
		r->resolved = now_sec();
		if (r->targetlen == 0)
			evtimer_add(&r->retry, &tv);
		return;
	}
	memcpy(&r->target, res->ai_addr, res->ai_addrlen);
	r->targetlen = res->ai_addrlen;
	r->resolved = now_sec();
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
	    now_sec() - r->resolved >= REFRESH_SEC)
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

/* No address: one dual-stack socket, or IPv4 alone where IPv6 is off. */
static int
bind_any(struct udp_relay *r, const struct addr_spec *spec, char *err,
    size_t errlen, int *exitcode)
{
	struct sockaddr_in6	s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in	s4 = { .sin_family = AF_INET };
	int			fd, rc;

	if ((fd = socket(AF_INET6, SOCK_DGRAM, 0)) != -1) {
		close(fd);
		s6.sin6_port = htons(spec->port);
		s6.sin6_addr = in6addr_any;
		rc = bind_one(r, AF_INET6, (struct sockaddr *)&s6, sizeof(s6),
		    0, err, errlen, exitcode);
	} else {
		s4.sin_port = htons(spec->port);
		s4.sin_addr.s_addr = htonl(INADDR_ANY);
		rc = bind_one(r, AF_INET, (struct sockaddr *)&s4, sizeof(s4),
		    0, err, errlen, exitcode);
	}
	if (rc == 0)
		snprintf(r->socks[r->nsocks - 1].name, ADDR_STR_MAX,
		    "udp:*:%u", spec->port);
	return rc;
}

static int
bind_host(struct udp_relay *r, const struct addr_spec *spec, char *err,
    size_t errlen, int *exitcode)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[8];
	int		 rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | (spec->numeric ? AI_NUMERICHOST : 0);
	snprintf(port, sizeof(port), "%u", spec->port);
	if ((rc = getaddrinfo(spec->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot listen on udp:%s: %s",
		    spec->host, gai_strerror(rc));
		*exitcode = 68;	/* EX_NOHOST */
		return -1;
	}
	rc = 0;
	for (ai = res; ai != NULL && rc == 0 && r->nsocks < MAX_SOCKS;
	    ai = ai->ai_next)
		rc = bind_one(r, ai->ai_family, ai->ai_addr, ai->ai_addrlen, 1,
		    err, errlen, exitcode);
	freeaddrinfo(res);
	return rc;
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
		*exitcode = 71;
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
		if (r->nsocks == MAX_SOCKS)
			break;
		if (conf->listen[i].host[0] == '\0')
			rc = bind_any(r, &conf->listen[i], err, errlen,
			    exitcode);
		else
			rc = bind_host(r, &conf->listen[i], err, errlen,
			    exitcode);
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
		flow_close(TAILQ_FIRST(&r->flows), why);
	if (r->lookup != NULL)
		resolve_cancel(r->lookup);
	release(r);
}

void
udp_relay_forget(struct udp_relay *r)
{
	struct flow	*f;

	if (r == NULL)
		return;
	while ((f = TAILQ_FIRST(&r->flows)) != NULL) {
		TAILQ_REMOVE(&r->flows, f, link);
		event_del(&f->readev);
		event_del(&f->timer);
		close(f->fd);
		free(f);
	}
	release(r);
}
