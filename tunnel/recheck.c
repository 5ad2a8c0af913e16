/*
 * What a tunnel does when the network under its session may have changed
 * (an address or route on its interface, the default route, a resume from
 * suspend): it asks at once, rather than after keepalive x count seconds
 * of silence. A session whose source address is gone is lost outright;
 * otherwise a probe (the keepalive's refused channel open) must bring a
 * byte from the server within RECHECK_DEADLINE_SEC. While a channel open
 * of ours holds the session's one open slot the probe cannot leave on it:
 * it goes on the tunnel's other sessions, whose bytes then answer; with
 * none, silence is left to the keepalives.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/log.h"
#include "tunnel/clockjump.h"
#include "tunnel/netwatch.h"
#include "tunnel/recheck.h"

#define RECHECK_SETTLE_MS	100	/* a change comes as a burst */
#define RECHECK_DEADLINE_SEC	2
/* How long after losing a session the server may not have noticed our -R
 * ports may still be its: sshd lets it go after ClientAliveInterval x
 * ClientAliveCountMax, which the README advises keeping well below this. */
#define STALE_HOLD_SEC		300

enum recheck_state { RC_IDLE, RC_SETTLING, RC_PROBING };

struct recheck {
	struct recheck_env	 env;
	int			 fd;		/* the up session's, else -1 */
	int			 session_ifindex; /* its source address's */
	struct clockjump	 clock;
	struct event		 ev;		/* settling, then deadline */
	enum recheck_state	 state;
	const char		*cause;		/* "network change", "resume" */
	int			 probed;	/* env.probe's answer */
	uint64_t		 rx_at_probe;	/* what it watches, then */
	const char		*last_cause;	/* a string that stays */
	char			 last_why[200];
	int64_t			 last_loss_at;	/* wall clock seconds */
	struct timespec		 stale_until;	/* an old session may hold
						 * our -R ports until then */
};

static void	on_recheck(evutil_socket_t, short, void *);

/* The session's source address, as text in buf; -1 if unknown. */
static int
source_address(struct recheck *t, struct sockaddr_storage *ss, char *buf,
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
begin(struct recheck *t, const char *cause)
{
	struct timeval	tv = { 0, RECHECK_SETTLE_MS * 1000 };

	if (t->fd == -1 || t->state != RC_IDLE)
		return;
	t->state = RC_SETTLING;
	t->cause = cause;
	evtimer_add(&t->ev, &tv);
}

/* The burst is over: is the source address still ours, then a probe. */
/* The bytes that answer the probe: the session's own, or with its slot
 * held, any session's (they share the path to the server). */
static uint64_t
watched(const struct recheck *t)
{
	return t->probed == 2 ? *t->env.rx_total : *t->env.rx_bytes;
}

static void
settled(struct recheck *t)
{
	struct sockaddr_storage	ss;
	struct timeval		tv = { RECHECK_DEADLINE_SEC, 0 };
	char			addr[INET6_ADDRSTRLEN] = "?", why[160];
	int			ifindex = -1;

	if (source_address(t, &ss, addr, sizeof(addr)) == 0)
		ifindex = netwatch_ifindex_of((struct sockaddr *)&ss);
	if (ifindex == 0) {
		t->state = RC_IDLE;
		snprintf(why, sizeof(why), "probe after %s failed: source "
		    "address %s gone", t->cause, addr);
		t->env.lost(t->env.arg, t->cause, why);
		return;
	}
	if (ifindex > 0)
		t->session_ifindex = ifindex;
	t->state = RC_PROBING;
	t->probed = t->env.probe(t->env.arg);
	t->rx_at_probe = watched(t);
	log_debug("tunnel %s: probing the session after %s", t->env.name,
	    t->cause);
	evtimer_add(&t->ev, &tv);
}

static void
judged(struct recheck *t)
{
	char	why[160];

	t->state = RC_IDLE;
	if (watched(t) != t->rx_at_probe) {
		log_info("tunnel %s: probe after %s answered", t->env.name,
		    t->cause);
		return;
	}
	if (t->probed == 0) {
		log_info("tunnel %s: probe after %s could not leave (channel "
		    "opens are pending on every session); left to keepalives",
		    t->env.name, t->cause);
		return;
	}
	snprintf(why, sizeof(why), "probe after %s failed", t->cause);
	t->env.lost(t->env.arg, t->cause, why);
}

static void
on_recheck(evutil_socket_t fd, short what, void *arg)
{
	struct recheck	*t = arg;

	if (t->fd == -1) {
		t->state = RC_IDLE;
		return;
	}
	if (t->state == RC_SETTLING)
		settled(t);
	else if (t->state == RC_PROBING)
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
concerns(struct recheck *t, const struct netchange *nc)
{
	struct sockaddr_storage	ss;
	char			addr[INET6_ADDRSTRLEN] = "?";
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

void
recheck_netchange(struct recheck *t, const struct netchange *nc)
{
	if (t->fd != -1 && concerns(t, nc))
		begin(t, "network change");
}

struct recheck *
recheck_new(const struct recheck_env *env)
{
	struct recheck	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->env = *env;
	t->fd = -1;
	evtimer_assign(&t->ev, env->base, on_recheck, t);
	return t;
}

void
recheck_session_up(struct recheck *t, int fd)
{
	struct sockaddr_storage	ss;
	char			addr[INET6_ADDRSTRLEN] = "?";

	t->fd = fd;
	t->session_ifindex = -1;
	if (source_address(t, &ss, addr, sizeof(addr)) == 0)
		t->session_ifindex = netwatch_ifindex_of((struct sockaddr *)&ss);
	log_debug("tunnel %s: session from %s, interface %d", t->env.name, addr,
	    t->session_ifindex);
	(void)clockjump_check(&t->clock);
}

void
recheck_tick(struct recheck *t)
{
	int64_t	slept = clockjump_check(&t->clock);

	if (slept == 0 || t->fd == -1)
		return;
	log_info("tunnel %s: resumed after %lld s asleep", t->env.name,
	    (long long)(slept / 1000));
	begin(t, "resume");
}

void
recheck_cancel(struct recheck *t)
{
	if (t->state != RC_IDLE)
		event_del(&t->ev);
	t->state = RC_IDLE;
	t->fd = -1;
	t->session_ifindex = 0;
}

void
recheck_free(struct recheck *t)
{
	if (t == NULL)
		return;
	recheck_cancel(t);
	free(t);
}

void
recheck_note_loss(struct recheck *t, const char *cause, const char *why)
{
	static const char *const unnoticed[] = { "network change", "resume",
	    "keepalive", "probe" };
	struct timespec	now;
	size_t		i;

	clock_gettime(CLOCK_REALTIME, &now);
	t->last_cause = cause;
	snprintf(t->last_why, sizeof(t->last_why), "%s", why);
	t->last_loss_at = (int64_t)now.tv_sec;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < sizeof(unnoticed) / sizeof(unnoticed[0]); i++)
		if (strcmp(cause, unnoticed[i]) == 0) {
			t->stale_until = now;
			t->stale_until.tv_sec += STALE_HOLD_SEC;
		}
}

time_t
recheck_held_until(const struct recheck *t)
{
	return t->stale_until.tv_sec;
}

const char *
recheck_last_loss(const struct recheck *t, const char **why, int64_t *at)
{
	*why = t->last_why;
	*at = t->last_loss_at;
	return t->last_cause;
}
