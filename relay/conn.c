/*
 * A relayed connection: a client endpoint, an optional step on it (a PROXY
 * header to read), the handshakes of endpoints that have one (TLS), the
 * target endpoint its service opened, the pump between them, and one close
 * path that frees everything and logs one line. Where it is among these is
 * its phase (relay/conn.h), set at each transition and nowhere inferred.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/dial.h"
#include "relay/iplimit.h"
#include "relay/clock.h"
#include "relay/log.h"
#include "relay/proxy.h"
#include "relay/pump.h"
#include "relay/retry.h"
#include "relay/conn.h"
#include "relay/service.h"
#include "relay/tls.h"

#define CLIENT_NAME_MAX	160

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct service		*svc;
	uint64_t		 id;
	enum conn_phase		 phase;
	struct endpoint		*client;
	struct endpoint		*target;
	const struct addr_spec	*to;
	struct addr_spec	*own_to;	/* when not the service's */
	struct tls_client	*tls_to;	/* NULL, or TLS to the target */
	const char		*route;		/* the route's name, or NULL */
	void			*opening;	/* the open's handle (OPENING) */
	struct timespec		 dial_start;	/* of the latest open */
	enum connect_failure	 failure;	/* why it was not reached */
	struct pump		 pump;
	struct event		 idle;
	struct timespec		 start;
	struct timespec		 last;	/* last activity, for --idle-timeout */
	char			 client_name[CLIENT_NAME_MAX];
	/* The client's address and the one it reached (srclen 0: none). */
	struct sockaddr_storage	 src, dst;
	socklen_t		 srclen, dstlen;
	int			 held;		/* counted in svc->iplimit */
	int			 quiet;		/* refused: no summary line */
	void			*step;		/* the step's state (STEP) */
	struct event		 deadline;	/* of the step or the handshake */
	char			*pre;		/* for the target (PREAMBLE) */
	size_t			 pre_len, pre_off;
	uint64_t		 early;		/* client bytes among them */
	/* --connect-retry: the client waits (unread) while the dial is
	 * repeated until hold_until; held_for once the target answered. */
	int			 holding;	/* takes a --max-held slot, over
						 * the HELD and OPENING rounds */
	struct event		 hold_timer;
	uint64_t		 hold_until;	/* mono_ms() clock */
	struct timespec		 hold_start;
	double			 held_for;	/* seconds, -1: never held */
	uint32_t		 hold_rnd;	/* the retries' jitter */
	int			 gave_up;	/* held, then expired */
};

static _Atomic uint64_t	next_id;	/* every loop (--workers) draws here */
static void	(*closed_hook)(void);

void
conn_set_closed_hook(void (*hook)(void))
{
	closed_hook = hook;
}

void
conn_skip_id(void)
{
	next_id++;
}

/* Counts sec in a histogram of nbounds upper bounds (and one bucket
 * more). Plain adds: each loop has its own, summed when asked. */
static void
histogram_add(const double *bounds, size_t nbounds, uint64_t *counts,
    double *sum, double sec)
{
	size_t	i;

	for (i = 0; i < nbounds; i++)
		if (sec <= bounds[i])
			break;
	counts[i]++;
	*sum += sec;
}

/* Counts a closed connection's lifetime in its service's histogram. */
static void
count_duration(struct service *svc, double sec)
{
	static const double	bounds[] = CONN_DURATION_BOUNDS;

	histogram_add(bounds, sizeof(bounds) / sizeof(bounds[0]),
	    svc->duration, &svc->duration_sum, sec);
}

/* Counts how long the dial that reached c's target took. */
static void
count_connect_time(struct conn *c)
{
	static const double	bounds[] = CONNECT_TIME_BOUNDS;
	struct service		*svc = c->svc;

	_Static_assert(sizeof(bounds) / sizeof(bounds[0]) + 1 ==
	    CONNECT_TIME_NBUCKETS, "a bucket for each bound, and one more");

	histogram_add(bounds, sizeof(bounds) / sizeof(bounds[0]),
	    svc->connect_time, &svc->connect_time_sum,
	    mono_since(&c->dial_start));
}

/* Why a dial failed with errno error (dial.h says which errno each
 * failure leaves), for the counts by reason. */
static enum connect_failure
dial_failure(const struct conn *c, int error)
{
	switch (error) {
	case ECONNREFUSED:
		return CF_REFUSED;
	case ENETUNREACH:
	case EHOSTUNREACH:
		return CF_UNREACHABLE;
	case ETIMEDOUT:
		return CF_TIMEOUT;
	case ENOENT:
		/* A unix path with no socket: nobody listens, as refused. */
		return c->to->kind == ADDR_UNIX ? CF_REFUSED : CF_DNS;
	default:
		return CF_OTHER;
	}
}

/* Abandons what c's phase has under way: its step, or its open. */
static void
phase_abandon(struct conn *c)
{
	switch (c->phase) {
	case CONN_STEP:
		c->svc->step->free(c->step);
		c->step = NULL;
		break;
	case CONN_OPENING:
		if (c->opening == NULL)
			break;		/* it reported: closing on it */
		if (c->svc->ops != NULL && c->svc->ops->open != NULL)
			c->svc->ops->cancel(c->opening);
		else
			dial_cancel(c->opening);
		c->opening = NULL;
		break;
	default:
		break;
	}
}

/* Gives back c's --max-held slot. */
static void
unhold(struct conn *c)
{
	if (!c->holding)
		return;
	c->holding = 0;
	c->svc->holds.now--;
	atomic_fetch_sub(c->svc->held_slots, 1);
}

void
conn_close(struct conn *c, const char *why)
{
	struct service	*svc = c->svc;
	char		 to[ADDR_STR_MAX], line[1024], spliced[32] = "";
	char		 held[32] = "";
	int		 failed = c->phase < CONN_PREAMBLE;
	/* A connect failure is a target being opened that never answered;
	 * one given up after --connect-retry is counted as expired. */
	int		 unreached = c->phase >= CONN_OPENING &&
			    c->phase < CONN_PREAMBLE && !c->gave_up;
	int		 quiet = c->quiet;
	uint64_t	 nspliced = c->pump.ab.spliced + c->pump.ba.spliced;
	double		 lived = mono_since(&c->start);

	phase_abandon(c);
	pump_stop(&c->pump);
	addr_spec_format(c->to, to, sizeof(to));
	/* Said only of connections that took the splicing path. */
	if (c->pump.splice)
		snprintf(spliced, sizeof(spliced), " spliced=%" PRIu64,
		    nspliced);
	/* Said of connections that reached their target after a hold. */
	if (c->held_for >= 0)
		snprintf(held, sizeof(held), " held=%.2f", c->held_for);
	snprintf(line, sizeof(line), "conn %" PRIu64 "%s%s%s %s -> %s%s%s in=%"
	    PRIu64 " out=%" PRIu64 "%s%s time=%.3f end=%s", c->id,
	    svc->tag ? " [" : "", svc->tag ? svc->tag : "", svc->tag ? "]" : "",
	    c->client_name, to, c->route ? " route=" : "",
	    c->route ? c->route : "", c->early + c->pump.ab.bytes,
	    c->pump.ba.bytes, spliced, held, lived, why);
	svc->bytes_in += c->early + c->pump.ab.bytes;
	svc->bytes_out += c->pump.ba.bytes;
	svc->bytes_spliced += nspliced;
	if (unreached && !quiet)
		svc->connect_failed[c->failure]++;
	count_duration(svc, lived);
	event_del(&c->idle);
	event_del(&c->deadline);
	event_del(&c->hold_timer);
	unhold(c);
	if (c->held)
		iplimit_release(svc->iplimit, (struct sockaddr *)&c->src);
	free(c->pre);
	if (c->target != NULL)
		c->target->ops->free(c->target);
	c->client->ops->free(c->client);
	TAILQ_REMOVE(&svc->conns, c, entry);
	svc->active--;
	free(c->own_to);
	free(c);
	if (svc->ops != NULL && svc->ops->closed != NULL)
		svc->ops->closed(svc);
	/* Only now: whoever reads the line may connect again at once, and
	 * the slot it held (--max-conns, in any loop) is free. */
	if (!quiet)
		(failed ? log_warnx : log_info)("%s", line);
	if (closed_hook != NULL)
		closed_hook();
}

static void
refuse(struct conn *c, uint64_t *counter, const char *why)
{
	if (counter != NULL)
		(*counter)++;
	c->svc->rejected++;
	service_log_refusal(c->svc, c->client_name, why);
	c->quiet = 1;
	conn_close(c, why);
}

void
conn_refuse(struct conn *c, const char *why)
{
	struct refusals	*r = &c->svc->refused;

	if (c->phase == CONN_CLIENT_HANDSHAKE)
		refuse(c, &r->tls, why);
	else if (c->phase == CONN_STEP)
		refuse(c, c->svc->step->learns_origin ? &r->proxy :
		    &r->handshake, why);
	else
		refuse(c, NULL, why);
}

void
conn_refuse_tls(struct conn *c, const char *why)
{
	refuse(c, &c->svc->refused.tls, why);
}

static void
close_failed(struct conn *c)
{
	const char	*side = c->pump.failed == c->client ? "client" :
			    "target";
	char		 why[128];

	if (c->pump.error == ECONNRESET || c->pump.error == EPIPE)
		snprintf(why, sizeof(why), "%s reset", side);
	else
		snprintf(why, sizeof(why), "%s error: %s", side,
		    strerror(c->pump.error));
	conn_close(c, why);
}

/* The bytes the target gets first; the pump starts once they are out. */
static void
write_pre(struct conn *c)
{
	ssize_t	n;
	char	why[128];

	while (c->pre_off < c->pre_len) {
		n = c->target->ops->write(c->target, c->pre + c->pre_off,
		    c->pre_len - c->pre_off);
		if (n == -1 && errno == EAGAIN) {
			endpoint_want(c->target, EP_WRITE);
			return;
		}
		if (n == -1) {
			snprintf(why, sizeof(why), "target error: %s",
			    strerror(errno));
			conn_close(c, why);
			return;
		}
		c->pre_off += (size_t)n;
	}
	free(c->pre);
	c->pre = NULL;
	endpoint_want(c->target, 0);
	c->phase = CONN_PUMPING;
	pump_start(&c->pump, c->client, c->target);
}

static int
pre_add(struct conn *c, const void *data, size_t len, int front)
{
	char	*grown;

	if (len == 0)
		return 0;
	if ((grown = realloc(c->pre, c->pre_len + len)) == NULL)
		return -1;
	if (front)
		memmove(grown + len, grown, c->pre_len);
	memcpy(grown + (front ? 0 : c->pre_len), data, len);
	c->pre = grown;
	c->pre_len += len;
	return 0;
}

struct service *
conn_service(struct conn *c)
{
	return c->svc;
}

void
conn_set_target(struct conn *c, const struct addr_spec *to,
    struct tls_client *tls, const char *route)
{
	c->to = to;
	c->tls_to = tls;
	c->route = route;
}

int
conn_push_target(struct conn *c, const void *data, size_t len)
{
	c->early += len;
	return pre_add(c, data, len, 0);
}

static int	handshake_step(struct conn *);

static void
pump(struct conn *c, struct endpoint *ep, int what)
{
	if (c->svc->idle_timeout > 0)
		clock_gettime(CLOCK_MONOTONIC_COARSE, &c->last);
	switch (pump_ready(&c->pump, ep, what)) {
	case PUMP_RUNNING:
		break;
	case PUMP_DONE:
		conn_close(c, "eof");
		break;
	case PUMP_FAILED:
		close_failed(c);
		break;
	}
}

/* Each phase listens to one side at most; NEW, OPENING and HELD to none
 * (the client waits unread). */
static void
on_ready(struct endpoint *ep, int what, void *arg)
{
	struct conn	*c = arg;

	if (what & EP_LOST) {
		conn_close(c, "tunnel lost");
		return;
	}
	switch (c->phase) {
	case CONN_STEP:
		if (ep == c->client)
			c->svc->step->ready(c, c->step, what);
		break;
	case CONN_CLIENT_HANDSHAKE:
		if (ep == c->client)
			(void)handshake_step(c);
		break;
	case CONN_TARGET_HANDSHAKE:
		if (ep == c->target)
			(void)handshake_step(c);
		break;
	case CONN_PREAMBLE:
		if (ep == c->target)
			write_pre(c);
		break;
	case CONN_PUMPING:
		pump(c, ep, what);
		break;
	default:
		break;
	}
}

/* Fires every --idle-timeout; closes only if nothing moved since. */
static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	struct timespec	 now;
	struct timeval	 tv;
	long		 left_ms, limit_ms = c->svc->idle_timeout * 1000L;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (c->holding)
		c->last = now;	/* waiting for the target is not idleness */
	left_ms = limit_ms - ((now.tv_sec - c->last.tv_sec) * 1000L +
	    (now.tv_nsec - c->last.tv_nsec) / 1000000L);
	if (left_ms <= 0) {
		conn_close(c, "idle timeout");
		return;
	}
	tv.tv_sec = left_ms / 1000;
	tv.tv_usec = (left_ms % 1000) * 1000;
	evtimer_add(&c->idle, &tv);
}

/* The target is open (and past its handshake): bytes can flow. */
static void
target_ready(struct conn *c)
{
	if (c->pre != NULL) {
		c->phase = CONN_PREAMBLE;
		write_pre(c);
	} else {
		c->phase = CONN_PUMPING;
		pump_start(&c->pump, c->client, c->target);
	}
}

static int	open_now(struct conn *);

/* Lets an endpoint that has a set-up of its own finish it, within
 * --handshake-timeout: phase says which (CONN_CLIENT_HANDSHAKE or
 * CONN_TARGET_HANDSHAKE). Returns -1 if that closed c. */
static int
handshake_start(struct conn *c, enum conn_phase phase)
{
	struct timeval	tv = { c->svc->handshake_timeout, 0 };

	c->phase = phase;
	evtimer_add(&c->deadline, &tv);
	return handshake_step(c);
}

/* A client done with its handshake has the target opened; a target
 * starts the bytes. A client that fails is refused, like a bad PROXY
 * header; a target that fails closes the connection. Returns -1 if c was
 * closed. */
static int
handshake_step(struct conn *c)
{
	struct endpoint	*ep = c->phase == CONN_CLIENT_HANDSHAKE ? c->client :
			    c->target;
	char		 why[256], reason[300];

	switch (ep->ops->handshake(ep, why, sizeof(why))) {
	case 0:
		return 0;
	case -1:
		if (ep == c->client)
			conn_refuse(c, why);
		else {
			c->failure = CF_TLS;
			snprintf(reason, sizeof(reason), "target %s", why);
			conn_close(c, reason);
		}
		return -1;
	}
	event_del(&c->deadline);
	if (ep == c->client)
		return open_now(c);
	target_ready(c);
	return 0;
}

void
conn_target_ready(struct conn *c, struct endpoint *target)
{
	count_connect_time(c);
	c->opening = NULL;
	c->target = target;
	target->cb = on_ready;
	target->cbarg = c;
	if (target->ops->handshake != NULL)
		(void)handshake_start(c, CONN_TARGET_HANDSHAKE);
	else
		target_ready(c);
}

void
conn_target_failed(struct conn *c, const char *why)
{
	c->opening = NULL;
	conn_close(c, why);
}

struct endpoint *
conn_client(struct conn *c)
{
	return c->client;
}

/* Takes a --max-held slot for c: 0 if they are all taken (counted). */
static int
hold_start(struct conn *c)
{
	struct service	*svc = c->svc;

	if (atomic_fetch_add(svc->held_slots, 1) >= svc->max_held) {
		atomic_fetch_sub(svc->held_slots, 1);
		svc->holds.over++;
		return 0;
	}
	c->holding = 1;
	svc->holds.now++;
	svc->holds.total++;
	c->hold_until = mono_ms() + (uint64_t)svc->connect_retry * 1000;
	clock_gettime(CLOCK_MONOTONIC, &c->hold_start);
	c->hold_rnd = (uint32_t)c->hold_start.tv_nsec ^ (uint32_t)c->id;
	log_debug("conn %" PRIu64 " held: target refused or unreachable",
	    c->id);
	return 1;
}

/*
 * The dial failed with error: with --connect-retry and a slot free, c
 * stays (its client unread, so what it sends waits in the kernel) and the
 * dial is repeated soon. Returns 1 if it will be, 0 to close c with *why
 * (which becomes "connect retry expired" once the time is up).
 */
static int
hold(struct conn *c, int error, const char **why)
{
	struct timeval	tv;
	long		ms;

	if (c->svc->connect_retry <= 0 || !retry_worth(error))
		return 0;
	if (!c->holding && !hold_start(c))
		return 0;
	ms = retry_delay_ms(mono_ms(), c->hold_until,
	    retry_rand(&c->hold_rnd));
	if (ms < 0) {
		c->svc->holds.expired++;
		c->gave_up = 1;
		*why = "connect retry expired";
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&c->hold_timer, &tv);
	c->phase = CONN_HELD;
	return 1;
}

static void *open_target(struct conn *);

static void
on_hold_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	c->phase = CONN_OPENING;
	if ((c->opening = open_target(c)) == NULL)
		conn_close(c, "connect failed: out of resources");
}

static void
on_dialled(int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why, void *arg)
{
	struct conn	*c = arg;
	struct endpoint	*ep;
	char		 name[ADDR_STR_MAX];
	int		 error = errno;

	c->opening = NULL;
	if (fd == -1) {
		c->failure = dial_failure(c, error);
		if (!hold(c, error, &why))
			conn_target_failed(c, why);
		return;
	}
	if (c->holding) {
		c->held_for = mono_since(&c->hold_start);
		unhold(c);
	}
	if (c->tls_to != NULL)
		ep = tls_endpoint_connect(c->svc->base, fd, c->tls_to);
	else
		ep = endpoint_fd_new(c->svc->base, fd, sa, NULL, NULL);
	if (ep == NULL) {
		close(fd);
		c->failure = CF_OTHER;
		conn_target_failed(c, "target error: out of memory");
		return;
	}
	if (log_get_level() >= LOG_LVL_DEBUG) {
		addr_sa_format(sa, salen, name, sizeof(name));
		log_debug("conn %" PRIu64 " connected to %s", c->id, name);
	}
	conn_target_ready(c, ep);
}

static void *
open_target(struct conn *c)
{
	struct dial	*d;

	clock_gettime(CLOCK_MONOTONIC, &c->dial_start);
	if (c->svc->ops != NULL && c->svc->ops->open != NULL)
		return c->svc->ops->open(c->svc, c, c->to);
	/* on_dialled makes the target endpoint of the socket at once. */
	if ((d = dial_start(c->svc->base, c->to, c->svc->connect_timeout,
	    on_dialled, c)) != NULL)
		dial_hand_over(d);
	return d;
}

/* --proxy-protocol: the header goes before anything the client sent. */
static int
add_proxy_header(struct conn *c)
{
	uint8_t	hdr[PROXY_BUILD_MAX];
	ssize_t	n;

	n = proxy_build(c->svc->send_proxy, c->srclen ?
	    (struct sockaddr *)&c->src : NULL, c->dstlen ?
	    (struct sockaddr *)&c->dst : NULL, hdr, sizeof(hdr));
	return n < 0 ? -1 : pre_add(c, hdr, (size_t)n, 1);
}

/* Past the step (if any): the last checks, then the target is opened.
 * Returns -1 if c was closed. */
static int
open_now(struct conn *c)
{
	struct service	*svc = c->svc;
	const char	*why;

	c->phase = CONN_OPENING;
	if (c->srclen > 0 && (why = service_admit_origin(svc,
	    (struct sockaddr *)&c->src, &c->held)) != NULL) {
		conn_refuse(c, why);
		return -1;
	}
	if (svc->send_proxy != 0 && add_proxy_header(c) == -1) {
		conn_close(c, "out of memory");
		return -1;
	}
	if ((c->opening = open_target(c)) == NULL) {
		conn_close(c, "connect failed: out of resources");
		return -1;
	}
	return 0;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	char		 why[64];

	switch (c->phase) {
	case CONN_TARGET_HANDSHAKE:
		c->failure = CF_TLS;
		conn_close(c, "target handshake timeout");
		break;
	case CONN_CLIENT_HANDSHAKE:
		conn_refuse(c, "handshake timeout");
		break;
	case CONN_STEP:
		snprintf(why, sizeof(why), "%s timeout", c->svc->step->name);
		conn_refuse(c, why);
		break;
	default:
		break;		/* disarmed when its phase ended */
	}
}

/* Past the step (if any): the client's handshake, if it has one, then
 * the target. Returns -1 if c was closed. */
static int
client_ready(struct conn *c)
{
	if (c->client->ops->handshake != NULL)
		return handshake_start(c, CONN_CLIENT_HANDSHAKE);
	return open_now(c);
}

void
conn_step_done(struct conn *c)
{
	c->svc->step->free(c->step);
	c->step = NULL;
	event_del(&c->deadline);
	endpoint_want(c->client, 0);
	(void)client_ready(c);
}

void
conn_set_origin(struct conn *c, const struct sockaddr *src, socklen_t srclen,
    const struct sockaddr *dst, socklen_t dstlen)
{
	char	name[ADDR_STR_MAX], was[CLIENT_NAME_MAX];

	memcpy(&c->src, src, srclen);
	c->srclen = srclen;
	memcpy(&c->dst, dst, dstlen);
	c->dstlen = dstlen;
	addr_sa_format(src, srclen, name, sizeof(name));
	snprintf(was, sizeof(was), "%s", c->client_name);
	/* "203.0.113.9:4242 via 10.0.0.2:51000": both fit, each cut short
	 * if it had to be. */
	snprintf(c->client_name, sizeof(c->client_name), "%.*s via %.*s",
	    (int)(sizeof(c->client_name) / 2 - 3), name,
	    (int)(sizeof(c->client_name) / 2 - 3), was);
}

/* Runs the service's step on the client, or opens the target now. */
static struct conn *
conn_begin(struct conn *c)
{
	struct timeval	tv = { c->svc->handshake_timeout, 0 };

	if (c->svc->step == NULL)
		return client_ready(c) == 0 ? c : NULL;
	if ((c->step = c->svc->step->start(c)) == NULL) {
		conn_close(c, "out of memory");
		return NULL;
	}
	c->phase = CONN_STEP;
	evtimer_add(&c->deadline, &tv);
	endpoint_want(c->client, EP_READ);
	return c;
}

/* A new connection, not yet started. */
static struct conn *
conn_new(struct service *svc, struct endpoint *client,
    const char *client_name, const struct addr_spec *to)
{
	struct timeval	 tv = { svc->idle_timeout, 0 };
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL || (to != NULL &&
	    (c->own_to = malloc(sizeof(*to))) == NULL)) {
		log_warnx("%s: out of memory", client_name);
		free(c);
		client->ops->free(client);
		return NULL;
	}
	c->svc = svc;
	c->id = atomic_fetch_add(&next_id, 1) + 1;
	c->client = client;
	client->cb = on_ready;
	client->cbarg = c;
	if (to != NULL)
		*c->own_to = *to;
	c->to = to != NULL ? c->own_to : svc->to;
	c->tls_to = svc->tls_to;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	c->last = c->start;
	snprintf(c->client_name, sizeof(c->client_name), "%s", client_name);
	TAILQ_INSERT_TAIL(&svc->conns, c, entry);
	svc->active++;
	svc->total++;
	evtimer_assign(&c->idle, svc->base, on_idle, c);
	evtimer_assign(&c->deadline, svc->base, on_deadline, c);
	evtimer_assign(&c->hold_timer, svc->base, on_hold_timer, c);
	c->held_for = -1;
	c->failure = CF_OTHER;
	if (svc->idle_timeout > 0)
		evtimer_add(&c->idle, &tv);
	return c;
}

struct conn *
conn_start(struct service *svc, struct endpoint *client,
    const char *client_name, const struct addr_spec *to)
{
	struct conn	*c;

	if ((c = conn_new(svc, client, client_name, to)) == NULL)
		return NULL;
	return conn_begin(c);
}

struct conn *
conn_start_socket(struct service *svc, struct endpoint *ep, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct conn	*c;
	char		 name[ADDR_STR_MAX];

	addr_sa_format(sa, salen, name, sizeof(name));
	if ((c = conn_new(svc, ep, name, NULL)) == NULL)
		return NULL;
	if (salen <= sizeof(c->src)) {
		memcpy(&c->src, sa, salen);
		c->srclen = salen;
	}
	/* Where the client arrived, for a PROXY header sent on (a header
	 * accepted first replaces it). */
	if (svc->send_proxy != 0) {
		c->dstlen = sizeof(c->dst);
		if (getsockname(fd, (struct sockaddr *)&c->dst,
		    &c->dstlen) == -1)
			c->dstlen = 0;
	}
	return conn_begin(c);
}

struct conn *
conn_start_fd(struct service *svc, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct endpoint	*ep;
	char		 name[ADDR_STR_MAX];

	if ((ep = endpoint_fd_new(svc->base, fd, sa, NULL, NULL)) == NULL) {
		addr_sa_format(sa, salen, name, sizeof(name));
		log_warnx("%s: out of memory", name);
		close(fd);
		return NULL;
	}
	return conn_start_socket(svc, ep, fd, sa, salen);
}

void
service_init(struct service *svc, struct event_base *base,
    const struct service_ops *ops)
{
	memset(svc, 0, sizeof(*svc));
	svc->ops = ops;
	svc->base = base;
	svc->connect_timeout = 10;
	svc->held_slots = &svc->held_own;
	TAILQ_INIT(&svc->conns);
}

void
service_count(const struct service *svc, struct service_counts *sum)
{
	const struct conn	*c;
	size_t			 i;

	sum->active += svc->active;
	sum->total += svc->total;
	sum->rejected += svc->rejected;
	sum->bytes_in += svc->bytes_in;
	sum->bytes_out += svc->bytes_out;
	sum->bytes_spliced += svc->bytes_spliced;
	for (i = 0; i < CF_NREASONS; i++)
		sum->connect_failed[i] += svc->connect_failed[i];
	for (i = 0; i < CONNECT_TIME_NBUCKETS; i++)
		sum->connect_time[i] += svc->connect_time[i];
	sum->connect_time_sum += svc->connect_time_sum;
	for (i = 0; i < CONN_DURATION_NBUCKETS; i++)
		sum->duration[i] += svc->duration[i];
	sum->duration_sum += svc->duration_sum;
	TAILQ_FOREACH(c, &svc->conns, entry) {
		sum->bytes_in += c->pump.ab.bytes;
		sum->bytes_out += c->pump.ba.bytes;
		sum->bytes_spliced += c->pump.ab.spliced + c->pump.ba.spliced;
	}
	sum->refused.denied += svc->refused.denied;
	sum->refused.per_ip += svc->refused.per_ip;
	sum->refused.rate += svc->refused.rate;
	sum->refused.handshake += svc->refused.handshake;
	sum->refused.proxy += svc->refused.proxy;
	sum->refused.tls += svc->refused.tls;
	sum->refused.max_conns += svc->refused.max_conns;
	sum->refuses |= svc->nacl > 0 || svc->iplimit != NULL ||
	    svc->step != NULL || svc->screens;
	sum->holds.now += svc->holds.now;
	sum->holds.total += svc->holds.total;
	sum->holds.expired += svc->holds.expired;
	sum->holds.over += svc->holds.over;
	sum->retries |= svc->connect_retry > 0;
}

void
service_counts_describe(const struct service_counts *n, char *buf,
    size_t len)
{
	const struct refusals	*r = &n->refused;
	size_t			 off;

	snprintf(buf, len, "%u active, %" PRIu64 " total, %" PRIu64
	    " rejected, in=%" PRIu64 " out=%" PRIu64 " spliced=%" PRIu64,
	    n->active, n->total, n->rejected, n->bytes_in, n->bytes_out,
	    n->bytes_spliced);
	if (n->retries && (off = strlen(buf)) < len)
		snprintf(buf + off, len - off, "; held=%u: %" PRIu64 " total, %"
		    PRIu64 " expired, %" PRIu64 " over max-held", n->holds.now,
		    n->holds.total, n->holds.expired, n->holds.over);
	if (!n->refuses || (off = strlen(buf)) >= len)
		return;
	snprintf(buf + off, len - off, "; refused: denied=%" PRIu64 " per-ip=%"
	    PRIu64 " rate=%" PRIu64 " handshake=%" PRIu64, r->denied,
	    r->per_ip, r->rate, r->handshake + r->proxy + r->tls);
}

void
service_describe(const struct service *svc, char *buf, size_t len)
{
	struct service_counts	n = { 0 };

	service_count(svc, &n);
	service_counts_describe(&n, buf, len);
}

void
service_close_all(struct service *svc, const char *why)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&svc->conns)) != NULL)
		conn_close(c, why);
	service_log_refusals_end(svc);
}
