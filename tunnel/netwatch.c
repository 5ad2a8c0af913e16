/*
 * The routing netlink socket: subscribed to RTMGRP_IPV4_IFADDR,
 * RTMGRP_IPV6_IFADDR and both route groups, read from the loop, each
 * message reduced to what a tunnel needs to judge it (struct netchange).
 * A full socket buffer (ENOBUFS) means changes were missed: reported as
 * one change that matches everything.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <event2/event.h>

#include "tunnel/netwatch.h"

struct netwatch {
	int		 fd;
	struct event	*ev;
	void		(*cb)(const struct netchange *, void *);
	void		*arg;
};

/* Fills addr from an address attribute of the given family. */
static void
set_addr(struct sockaddr_storage *ss, int family, const void *data,
    size_t len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET && len == sizeof(sin->sin_addr)) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, data, len);
	} else if (family == AF_INET6 && len == sizeof(sin6->sin6_addr)) {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, data, len);
	}
}

/* An address message: IFA_LOCAL is the host's own IPv4 address (on a
 * point-to-point link IFA_ADDRESS is the peer's); IPv6 has IFA_ADDRESS. */
static void
parse_addr(struct nlmsghdr *nh, struct netchange *nc)
{
	struct ifaddrmsg	*ifa = NLMSG_DATA(nh);
	struct rtattr		*rta = IFA_RTA(ifa);
	int			 len = (int)IFA_PAYLOAD(nh), have_local = 0;

	nc->is_addr = 1;
	nc->family = ifa->ifa_family;
	nc->ifindex = (int)ifa->ifa_index;
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == IFA_LOCAL) {
			set_addr(&nc->addr, ifa->ifa_family, RTA_DATA(rta),
			    RTA_PAYLOAD(rta));
			have_local = 1;
		} else if (rta->rta_type == IFA_ADDRESS && !have_local)
			set_addr(&nc->addr, ifa->ifa_family, RTA_DATA(rta),
			    RTA_PAYLOAD(rta));
	}
}

static void
parse_route(struct nlmsghdr *nh, struct netchange *nc)
{
	struct rtmsg	*rtm = NLMSG_DATA(nh);
	struct rtattr	*rta = RTM_RTA(rtm);
	int		 len = (int)RTM_PAYLOAD(nh);

	nc->family = rtm->rtm_family;
	nc->main_table = rtm->rtm_table == RT_TABLE_MAIN;
	nc->default_route = rtm->rtm_dst_len == 0 && nc->main_table;
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type == RTA_OIF &&
		    RTA_PAYLOAD(rta) == sizeof(int))
			memcpy(&nc->ifindex, RTA_DATA(rta), sizeof(int));
}

/* Calls back once per address or route message in one datagram. */
static void
deliver(struct netwatch *nw, char *buf, size_t n)
{
	struct nlmsghdr		*nh;
	struct netchange	 nc;
	size_t			 len = n;

	for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
	    nh = NLMSG_NEXT(nh, len)) {
		memset(&nc, 0, sizeof(nc));
		switch (nh->nlmsg_type) {
		case RTM_NEWADDR:
		case RTM_DELADDR:
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct
			    ifaddrmsg)))
				continue;
			nc.removed = nh->nlmsg_type == RTM_DELADDR;
			parse_addr(nh, &nc);
			break;
		case RTM_NEWROUTE:
		case RTM_DELROUTE:
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
				continue;
			nc.removed = nh->nlmsg_type == RTM_DELROUTE;
			parse_route(nh, &nc);
			break;
		default:
			continue;
		}
		nw->cb(&nc, nw->arg);
	}
}

static void
on_netlink(evutil_socket_t fd, short what, void *arg)
{
	struct netwatch		*nw = arg;
	struct netchange	 all;
	char			 buf[16384];
	ssize_t			 n;
	int			 round;

	/* A few datagrams per wake-up: a burst (an interface going away
	 * takes its addresses and routes) is judged as one. */
	for (round = 0; round < 16; round++) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			deliver(nw, buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == ENOBUFS) {
			memset(&all, 0, sizeof(all));	/* family 0: any */
			nw->cb(&all, nw->arg);
			continue;
		}
		return;
	}
}

struct netwatch *
netwatch_new(struct event_base *base, void (*cb)(const struct netchange *,
    void *), void *arg, char *err, size_t errlen)
{
	struct sockaddr_nl	 sa;
	struct netwatch		*nw;

	if ((nw = calloc(1, sizeof(*nw))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	nw->cb = cb;
	nw->arg = arg;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
	    RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	if ((nw->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, NETLINK_ROUTE)) == -1 ||
	    bind(nw->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		goto fail;
	}
	if ((nw->ev = event_new(base, nw->fd, EV_READ | EV_PERSIST,
	    on_netlink, nw)) == NULL || event_add(nw->ev, NULL) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return nw;
fail:
	netwatch_free(nw);
	return NULL;
}

void
netwatch_free(struct netwatch *nw)
{
	if (nw == NULL)
		return;
	if (nw->ev != NULL)
		event_free(nw->ev);
	if (nw->fd != -1)
		close(nw->fd);
	free(nw);
}

/* Whether a and b are the same address (an IPv4-mapped IPv6 one is its
 * IPv4 address). */
static int
same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in6	*a6 = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6	*b6 = (const struct sockaddr_in6 *)b;
	const struct sockaddr_in	*b4 = (const struct sockaddr_in *)b;

	if (a->sa_family == AF_INET && b->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    b4->sin_addr.s_addr;
	if (a->sa_family == AF_INET6 && b->ss_family == AF_INET6)
		return memcmp(&a6->sin6_addr, &b6->sin6_addr,
		    sizeof(a6->sin6_addr)) == 0;
	if (a->sa_family == AF_INET6 && b->ss_family == AF_INET &&
	    IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
		return memcmp(&a6->sin6_addr.s6_addr[12], &b4->sin_addr, 4) ==
		    0;
	return 0;
}

/* Reads one dump's datagrams; returns the index found, 0, or -1. */
static int
read_dump(int fd, const struct sockaddr *want)
{
	struct netchange	 nc;
	struct nlmsghdr		*nh;
	char			 buf[16384];
	ssize_t			 n;
	size_t			 len;
	int			 found = 0;

	for (;;) {
		if ((n = recv(fd, buf, sizeof(buf), 0)) <= 0)
			return -1;
		len = (size_t)n;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
		    nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE)
				return found;
			if (nh->nlmsg_type == NLMSG_ERROR)
				return -1;
			if (nh->nlmsg_type != RTM_NEWADDR || nh->nlmsg_len <
			    NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
				continue;
			memset(&nc, 0, sizeof(nc));
			parse_addr(nh, &nc);
			if (found == 0 && same_addr(want, &nc.addr))
				found = nc.ifindex;
		}
	}
}

int
netwatch_ifindex_of(const struct sockaddr *sa)
{
	struct {
		struct nlmsghdr		nh;
		struct ifaddrmsg	ifa;
	} req;
	struct timeval	tv = { 1, 0 };
	int		fd, rc;

	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) == -1)
		return -1;
	/* The kernel answers a dump at once; never hang the loop on it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.nh.nlmsg_type = RTM_GETADDR;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = (uint32_t)time(NULL);
	req.ifa.ifa_family = AF_UNSPEC;
	if (send(fd, &req, req.nh.nlmsg_len, 0) == -1)
		rc = -1;
	else
		rc = read_dump(fd, sa);
	close(fd);
	return rc;
}
