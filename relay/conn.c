/*
 * A relayed connection: accepted client, dialled target, the pump between
 * them, and one close path that frees everything and logs one line.
 */
#include <sys/queue.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/dial.h"
#include "relay/endpoint.h"
#include "relay/log.h"
#include "relay/pump.h"
#include "relay/relay_priv.h"

#define CLIENT_NAME_MAX	64

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	struct relay		*relay;
	uint64_t		 id;
	struct endpoint		*client;
	struct endpoint		*target;
	struct dial		*dial;
	struct pump		 pump;
	struct event		 idle;
	struct timespec		 start;
	struct timespec		 last;	/* last activity, for --idle-timeout */
	char			 client_name[CLIENT_NAME_MAX];
};

static double
elapsed(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

void
conn_close(struct conn *c, const char *why)
{
	struct relay	*r = c->relay;
	int		 failed_dial = c->target == NULL;

	dial_cancel(c->dial);
	pump_stop(&c->pump);
	(failed_dial ? log_warnx : log_info)("conn %" PRIu64 " %s -> %s "
	    "in=%" PRIu64 " out=%" PRIu64 " time=%.3f end=%s", c->id,
	    c->client_name, r->target, c->pump.ab.bytes, c->pump.ba.bytes,
	    elapsed(&c->start), why);
	event_del(&c->idle);
	if (c->target != NULL)
		c->target->ops->free(c->target);
	c->client->ops->free(c->client);
	TAILQ_REMOVE(&r->conns, c, entry);
	r->active--;
	free(c);
	if (relay_in_child && r->active == 0)
		relay_child_done(r);
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

static void
on_ready(struct endpoint *ep, int what, void *arg)
{
	struct conn	*c = arg;

	if (c->relay->conf->idle_timeout > 0)
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

/* Fires every --idle-timeout; closes only if nothing moved since. */
static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	struct timespec	 now;
	struct timeval	 tv;
	long		 left_ms, limit_ms = c->relay->conf->idle_timeout * 1000L;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
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

static void
on_dialled(int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why, void *arg)
{
	struct conn	*c = arg;
	char		 name[ADDR_STR_MAX];

	c->dial = NULL;
	if (fd == -1) {
		conn_close(c, why);
		return;
	}
	if ((c->target = endpoint_fd_new(c->relay->base, fd, on_ready,
	    c)) == NULL) {
		close(fd);
		conn_close(c, "target error: out of memory");
		return;
	}
	if (log_get_level() >= LOG_LVL_DEBUG) {
		addr_sa_format(sa, salen, name, sizeof(name));
		log_debug("conn %" PRIu64 " connected to %s", c->id, name);
	}
	pump_start(&c->pump, c->client, c->target);
}

void
conn_new(struct relay *r, int fd, const struct sockaddr *sa, socklen_t salen,
    uint64_t id)
{
	struct timeval	 tv = { r->conf->idle_timeout, 0 };
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->client = endpoint_fd_new(r->base, fd, on_ready, c)) == NULL) {
		log_warnx("conn %" PRIu64 ": out of memory", id);
		free(c);
		close(fd);
		return;
	}
	c->relay = r;
	c->id = id;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	c->last = c->start;
	addr_sa_format(sa, salen, c->client_name, sizeof(c->client_name));
	TAILQ_INSERT_TAIL(&r->conns, c, entry);
	r->active++;
	evtimer_assign(&c->idle, r->base, on_idle, c);
	if (r->conf->idle_timeout > 0)
		evtimer_add(&c->idle, &tv);
	if ((c->dial = dial_start(r->base, &r->conf->to,
	    r->conf->connect_timeout, on_dialled, c)) == NULL)
		conn_close(c, "connect failed: out of memory");
}
