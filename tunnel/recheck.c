/*
 * What a tunnel does when the network under its session may have changed
 * (an address or route on its interface, the default route, a resume from
 * suspend): it asks at once, rather than after keepalive x count seconds
 * of silence. A session whose source address is gone is lost outright;
 * otherwise a probe (the keepalive's refused channel open) must bring a
 * byte from the server within RECHECK_DEADLINE_SEC. While a channel open
 * of ours holds libssh2's one open slot the probe cannot leave, and the
 * server owes no byte until its connect ends: then any byte proves the
 * session, and silence is left to the keepalives.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "relay/log.h"
#include "tunnel/netwatch.h"
#include "tunnel/tunnel_int.h"

#define RECHECK_SETTLE_MS	100	/* a change comes as a burst */
#define RECHECK_DEADLINE_SEC	2
/* How long after losing a session the server may not have noticed our -R
 * ports may still be its: sshd lets it go after ClientAliveInterval x
 * ClientAliveCountMax, which the README advises keeping well below this. */
#define STALE_HOLD_SEC		300

enum { RC_IDLE, RC_SETTLING, RC_PROBING };

static void	on_recheck(evutil_socket_t, short, void *);

/* Whether a channel open of ours (not a probe) holds the open slot. */
static int
open_slot_busy(struct tunnel *t)
{
	struct open_req	*r = TAILQ_FIRST(&t->opens);

	return r != NULL && r->in_progress && !r->ping;
}

/* The session's source address, as text in buf; -1 if unknown. */
static int
source_address(struct tunnel *t, struct sockaddr_storage *ss, char *buf,
    size_t len)
{
	socklen_t	 sl = sizeof(*ss);
	const void	*a;

	if (t->fd == -1 || getsockname(t->fd, (struct sockaddr *)ss, &sl) ==
	    -1)
		return -1;
	a = ss->ss_family == AF_INET ?
	    (const void *)&((struct sockaddr_in *)ss)->sin_addr :
	    (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
	if (inet_ntop(ss->ss_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return 0;
}

static void
begin(struct tunnel *t, const char *cause)
{
	struct timeval	tv = { 0, RECHECK_SETTLE_MS * 1000 };

	if (t->state != T_UP || t->recheck != RC_IDLE)
		return;
	t->recheck = RC_SETTLING;
	t->recheck_cause = cause;
	evtimer_add(&t->ev_recheck, &tv);
}

/* The burst is over: is the source address still ours, then a probe. */
static void
settled(struct tunnel *t)
{
	struct sockaddr_storage	ss;
	struct timeval		tv = { RECHECK_DEADLINE_SEC, 0 };
	char			addr[INET6_ADDRSTRLEN], why[160];
	int			ifindex = -1;

	if (source_address(t, &ss, addr, sizeof(addr)) == 0)
		ifindex = netwatch_ifindex_of((struct sockaddr *)&ss);
	if (ifindex == 0) {
		t->recheck = RC_IDLE;
		snprintf(why, sizeof(why), "probe after %s failed: source "
		    "address %s gone", t->recheck_cause, addr);
		tunnel_lost(t, t->recheck_cause, why);
		return;
	}
	if (ifindex > 0)
		t->session_ifindex = ifindex;
	t->recheck_rx = t->rx_bytes;
	t->recheck = RC_PROBING;
	if (!open_slot_busy(t) && !t->pinging &&
	    open_request(t, NULL, 0, NULL, NULL) != NULL)
		t->pinging = 1;
	log_debug("tunnel %s: probing the session after %s", t->name,
	    t->recheck_cause);
	evtimer_add(&t->ev_recheck, &tv);
}

static void
judged(struct tunnel *t)
{
	char	why[160];

	t->recheck = RC_IDLE;
	if (t->rx_bytes != t->recheck_rx) {
		log_info("tunnel %s: probe after %s answered", t->name,
		    t->recheck_cause);
		return;
	}
	if (open_slot_busy(t)) {
		log_info("tunnel %s: probe after %s could not leave (a channel "
		    "open is pending); left to keepalives", t->name,
		    t->recheck_cause);
		return;
	}
	snprintf(why, sizeof(why), "probe after %s failed", t->recheck_cause);
	tunnel_lost(t, t->recheck_cause, why);
}

static void
on_recheck(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel	*t = arg;

	if (t->state != T_UP) {
		t->recheck = RC_IDLE;
		return;
	}
	if (t->recheck == RC_SETTLING)
		settled(t);
	else if (t->recheck == RC_PROBING)
		judged(t);
}

/*
 * Whether a change may have cut the session: an address of its family
 * removed from its interface (its own, perhaps), a main-table route of
 * its family on that interface, a default route of its family (the way
 * out may have moved), or missed messages. An address added or refreshed
 * (DHCP renewals, IPv6 router advertisements, the end of duplicate
 * address detection) breaks nothing.
 */
static int
concerns(struct tunnel *t, const struct netchange *nc)
{
	struct sockaddr_storage	ss;
	char			addr[INET6_ADDRSTRLEN];
	int			same_if;

	if (nc->family == 0)
		return 1;		/* missed messages */
	if (source_address(t, &ss, addr, sizeof(addr)) == 0 &&
	    ss.ss_family != nc->family &&
	    !(ss.ss_family == AF_INET6 && nc->family == AF_INET))
		return 0;
	/* Not knowing the session's interface, any may be it. */
	same_if = t->session_ifindex <= 0 || nc->ifindex == t->session_ifindex;
	if (nc->is_addr)
		return nc->removed && same_if;
	return nc->default_route || (nc->main_table && same_if);
}

static void
on_netchange(const struct netchange *nc, void *arg)
{
	struct tunnel	*t = arg;

	if (t->state == T_UP) {
		if (concerns(t, nc))
			begin(t, "network change");
		return;
	}
	/* Waiting after a failed connect: a new address or route may be
	 * the way to the server, so try now. Refusals keep their delay. */
	if (t->state == T_DOWN && !nc->removed && t->backoff.unreachable > 0 &&
	    evtimer_pending(&t->ev_retry, NULL)) {
		struct timeval	now = { 0, 0 };

		evtimer_add(&t->ev_retry, &now);
	}
}

void
recheck_init(struct tunnel *t)
{
	char	err[160];

	evtimer_assign(&t->ev_recheck, t->base, on_recheck, t);
	if ((t->netwatch = netwatch_new(t->base, on_netchange, t, err,
	    sizeof(err))) == NULL)
		log_warnx("tunnel %s: not watching network changes (%s); "
		    "keepalives alone notice a changed network", t->name, err);
}

void
recheck_session_up(struct tunnel *t)
{
	struct sockaddr_storage	ss;
	char			addr[INET6_ADDRSTRLEN];

	t->session_ifindex = -1;
	if (source_address(t, &ss, addr, sizeof(addr)) == 0)
		t->session_ifindex = netwatch_ifindex_of((struct sockaddr *)&ss);
	log_debug("tunnel %s: session from %s, interface %d", t->name, addr,
	    t->session_ifindex);
	(void)clockjump_check(&t->clock);
}

void
recheck_tick(struct tunnel *t)
{
	int64_t	slept = clockjump_check(&t->clock);

	if (slept == 0 || t->state != T_UP)
		return;
	log_info("tunnel %s: resumed after %lld s asleep", t->name,
	    (long long)(slept / 1000));
	begin(t, "resume");
}

void
recheck_cancel(struct tunnel *t)
{
	if (t->recheck != RC_IDLE)
		event_del(&t->ev_recheck);
	t->recheck = RC_IDLE;
	t->session_ifindex = 0;
}

void
recheck_free(struct tunnel *t)
{
	recheck_cancel(t);
	netwatch_free(t->netwatch);
	t->netwatch = NULL;
}

void
recheck_note_loss(struct tunnel *t, const char *cause, const char *why)
{
	static const char *const unnoticed[] = { "network change", "resume",
	    "keepalive", "probe" };
	struct timespec	now;
	size_t		i;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(t->last_loss, sizeof(t->last_loss), "%s: %s", cause, why);
	t->last_loss_at = (int64_t)now.tv_sec;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < sizeof(unnoticed) / sizeof(unnoticed[0]); i++)
		if (strcmp(cause, unnoticed[i]) == 0) {
			t->stale_until = now;
			t->stale_until.tv_sec += STALE_HOLD_SEC;
		}
}

int
recheck_old_session_may_hold(struct tunnel *t)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < t->stale_until.tv_sec;
}
