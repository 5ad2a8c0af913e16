/*
 * UDP flows: one client address's socket connected to the target, made on
 * its first datagram. The kernel hands each reply to the flow whose client
 * asked; the flow sends it back from the address the client wrote to. The
 * expiry timer uses the relay's libevent common timeout (every flow of a
 * relay waits the same time): re-arming it on each datagram moves it to
 * the tail of a list, O(1), whatever the number of flows.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/clock.h"
#include "relay/log.h"
#include "relay/udp_flow.h"

#define FLOW_BATCH	16	/* datagrams read per wakeup, per flow */
#define WARN_EVERY	10	/* seconds between "dropping" warnings */

/* The local address a client wrote to, so the reply comes from it even
 * when the socket is bound to every address. */
union local_addr {
	struct in_pktinfo	v4;
	struct in6_pktinfo	v6;
};

struct udp_flow {
	struct flow_entry	 entry;		/* first: the table links it */
	TAILQ_ENTRY(udp_flow)	 link;
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

static uint64_t		next_flow_id;
static unsigned char	dgram[UDP_DGRAM_MAX];	/* replies, one at a time */

void
udp_flow_close(struct udp_flow *f, const char *why)
{
	struct udp_relay	*r = f->relay;

	if (why != NULL)
		log_info("udp flow %" PRIu64 " %s -> %s datagrams in=%"
		    PRIu64 " out=%" PRIu64 " bytes in=%" PRIu64 " out=%" PRIu64
		    " refused=%" PRIu64 " time=%.3f end=%s", f->id,
		    f->client_name, f->target_name, f->dgrams_in, f->dgrams_out,
		    f->bytes_in, f->bytes_out, f->refused,
		    mono_since(&f->start), why);
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
	udp_flow_close(arg, "idle");
}

/* Silence is measured from the last datagram either way. */
static void
flow_touch(struct udp_flow *f)
{
	event_add(&f->timer, f->relay->expiry);
}

/* Sends a reply from the address the client wrote to. */
static ssize_t
send_reply(struct udp_flow *f, const void *buf, size_t len)
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
	struct udp_flow		*f = arg;
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
		r->dgrams_out++;
	}
	if (heard)
		flow_touch(f);
}

/* Says, at most every WARN_EVERY seconds, why new clients are dropped. */
static void
warn_dropping(struct udp_relay *r, const char *why)
{
	time_t	now = mono_sec();

	if (r->warned != 0 && now - r->warned < WARN_EVERY)
		return;
	r->warned = now;
	log_warnx("udp relay %s: %s; dropping datagrams of new clients",
	    r->socks[0].name, why);
}

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

struct udp_flow *
udp_flow_open(struct udp_relay *r, struct udp_sock *s,
    const struct flow_key *key, struct msghdr *msg)
{
	struct udp_flow	*f;
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
	memcpy(&f->client, msg->msg_name, msg->msg_namelen);
	f->clientlen = msg->msg_namelen;
	f->has_local = local_of(msg, &f->local);
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	addr_sa_format((struct sockaddr *)&f->client, f->clientlen,
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
	return f;
}

/* Passes one datagram to the target; ECONNREFUSED here is an earlier
 * datagram's ICMP error reported late: this one was not sent, try again. */
void
udp_flow_forward(struct udp_flow *f, const void *buf, size_t len)
{
	struct udp_relay	*r = f->relay;
	ssize_t			 n;

	n = send(f->fd, buf, len, MSG_DONTWAIT);
	if (n == -1 && errno == ECONNREFUSED) {
		f->refused++;
		n = send(f->fd, buf, len, MSG_DONTWAIT);
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
	r->dgrams_in++;
	flow_touch(f);
}

struct udp_flow *
udp_flow_find(struct udp_relay *r, const struct flow_key *key)
{
	/* The entry is the flow's first member. */
	return (struct udp_flow *)(void *)flowtab_find(&r->tab, key);
}
