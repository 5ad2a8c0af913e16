/*
 * Channel opens: one queue for the tunnel, one slot per session. An open
 * waits in the queue until a session's slot is free, is then sent, and
 * holds that slot until the server answers; libssh2 cannot have two in
 * progress in one session. Probes (keepalives) take the slot ahead of
 * the queue: an unknown channel type, refused at once by the server.
 */
#include <sys/queue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "tunnel/budget.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/sshcall.h"

/* A channel open: waiting in the queue, or in a slot's libssh2 call. */
struct open_req {
	TAILQ_ENTRY(open_req)	 entry;		/* while it waits */
	struct opens		*q;
	struct open_slot	*slot;		/* once sent */
	struct addr_spec	 to;
	struct timespec		 since;		/* when it was sent */
	int			 abandoned;	/* nobody waits for it any more */
	struct event		 timer;
	open_done_fn		*done;
	void			*arg;
};

struct opens {
	struct event_base	*base;
	struct budget		*budget;
	TAILQ_HEAD(, open_req)	 queue;
	size_t			 waiting;
	void			(*queued)(void *);
	void			*arg;
};

enum probe_state { PROBE_NONE, PROBE_ASKED, PROBE_SENT };

struct open_slot {
	struct opens		*q;
	struct sshcall		*sc;
	struct chans		*set;
	struct open_req		*cur;		/* in libssh2's open state */
	enum probe_state	 probe;
};

struct opens *
opens_new(struct event_base *base, struct budget *budget,
    void (*queued)(void *), void *arg)
{
	struct opens	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->base = base;
	q->budget = budget;
	q->queued = queued;
	q->arg = arg;
	TAILQ_INIT(&q->queue);
	return q;
}

void
opens_free(struct opens *q)
{
	free(q);
}

int
open_sent(const struct open_req *r)
{
	return r->slot != NULL;
}

size_t
opens_waiting(const struct opens *q)
{
	return q->waiting;
}

static void
unqueue(struct open_req *r)
{
	TAILQ_REMOVE(&r->q->queue, r, entry);
	r->q->waiting--;
}

static void
open_free(struct open_req *r)
{
	if (r->slot == NULL)
		unqueue(r);
	else
		r->slot->cur = NULL;
	event_del(&r->timer);
	free(r);
}

static void
open_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct open_req	*r = arg;
	open_done_fn	*done = r->done;
	void		*darg = r->arg;

	open_cancel(r);
	done(NULL, "connect timeout", darg);
}

static struct open_req *
queue_open(struct opens *q, const struct addr_spec *to, int timeout_sec,
    open_done_fn *done, void *arg, int first)
{
	struct timeval	 tv = { timeout_sec, 0 };
	struct open_req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->q = q;
	r->to = *to;
	r->done = done;
	r->arg = arg;
	evtimer_assign(&r->timer, q->base, open_timeout, r);
	if (timeout_sec > 0)
		evtimer_add(&r->timer, &tv);
	if (first)
		TAILQ_INSERT_HEAD(&q->queue, r, entry);
	else
		TAILQ_INSERT_TAIL(&q->queue, r, entry);
	q->waiting++;
	q->queued(q->arg);
	return r;
}

struct open_req *
open_request(struct opens *q, const struct addr_spec *to, int timeout_sec,
    open_done_fn *done, void *arg)
{
	return queue_open(q, to, timeout_sec, done, arg, 0);
}

struct open_req *
open_request_first(struct opens *q, const struct addr_spec *to,
    int timeout_sec, open_done_fn *done, void *arg)
{
	return queue_open(q, to, timeout_sec, done, arg, 1);
}

void
open_cancel(struct open_req *r)
{
	/* libssh2 is in the middle of opening it: let that finish, then
	 * close what it gives, or the slot's next open would receive it. */
	if (r->slot != NULL) {
		r->abandoned = 1;
		r->done = NULL;
		event_del(&r->timer);
		return;
	}
	open_free(r);
}

void
opens_fail_all(struct opens *q, const char *why)
{
	struct open_req	*r;
	open_done_fn	*done;
	void		*arg;

	while ((r = TAILQ_FIRST(&q->queue)) != NULL) {
		done = r->done;
		arg = r->arg;
		open_free(r);
		done(NULL, why, arg);
	}
}

struct open_slot *
slot_new(struct opens *q, struct sshcall *sc, struct chans *set)
{
	struct open_slot	*sl;

	if ((sl = calloc(1, sizeof(*sl))) == NULL)
		return NULL;
	sl->q = q;
	sl->sc = sc;
	sl->set = set;
	return sl;
}

void
slot_free(struct open_slot *sl)
{
	free(sl);
}

void
slot_session_lost(struct open_slot *sl)
{
	struct open_req	*r = sl->cur;
	open_done_fn	*done;
	void		*arg;

	sl->probe = PROBE_NONE;
	if (r == NULL)
		return;
	done = r->abandoned ? NULL : r->done;
	arg = r->arg;
	open_free(r);
	if (done != NULL)
		done(NULL, "tunnel lost", arg);
}

int
slot_probe(struct open_slot *sl)
{
	if (sl->probe != PROBE_NONE)
		return 0;
	sl->probe = PROBE_ASKED;
	return 1;
}

int
slot_probing(const struct open_slot *sl)
{
	return sl->probe != PROBE_NONE;
}

long
slot_held_ms(const struct open_slot *sl, int abandoned_too)
{
	struct timespec	now;

	if (sl->cur == NULL || (sl->cur->abandoned && !abandoned_too))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - sl->cur->since.tv_sec) * 1000 +
	    (now.tv_nsec - sl->cur->since.tv_nsec) / 1000000;
}

/* Delivers the outcome of the slot's open. */
static void
open_finish(struct open_slot *sl, struct open_req *r, LIBSSH2_CHANNEL *ch,
    int rc)
{
	open_done_fn	*done = r->abandoned ? NULL : r->done;
	void		*arg = r->arg;
	struct endpoint	*ep = NULL;
	char		 why[300], msg[256];

	open_free(r);
	if (ch != NULL && (ep = chan_new(sl->set, ch)) == NULL) {
		/* No memory for our side: let the session go. */
		sshcall_fail(sl->sc, "out of memory");
		if (done != NULL)
			done(NULL, "out of memory", arg);
		return;
	}
	if (ep != NULL && done == NULL) {
		ep->ops->free(ep);	/* nobody wants it any more */
		return;
	}
	if (ep != NULL) {
		done(ep, NULL, arg);
		return;
	}
	/* Only a refusal is the server's answer about the target. */
	snprintf(why, sizeof(why), "%s: %s", rc ==
	    LIBSSH2_ERROR_CHANNEL_FAILURE ? "connect failed" : "tunnel error",
	    ssh_error(sshcall_session(sl->sc), msg, sizeof(msg)));
	if (rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
		sshcall_fail(sl->sc, "channel open failed");
	if (done != NULL)
		done(NULL, why, arg);
}

static unsigned char *
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

static unsigned char *
put_str(unsigned char *p, const char *str, size_t len)
{
	p = put_u32(p, (uint32_t)len);
	memcpy(p, str, len);
	return p + len;
}

/*
 * A direct-tcpip channel (RFC 4254 7.2) that grants the server
 * TUNNEL_OPEN_WINDOW: libssh2_channel_direct_tcpip_ex always grants
 * LIBSSH2_CHANNEL_WINDOW_DEFAULT. A repeated call must bring the same
 * message, as it does here.
 */
static LIBSSH2_CHANNEL *
open_direct(LIBSSH2_SESSION *s, const struct addr_spec *to)
{
	static const char	type[] = "direct-tcpip", from[] = "127.0.0.1";
	unsigned char		msg[sizeof(to->host) + sizeof(from) + 16];
	unsigned char		*p = msg;

	p = put_str(p, to->host, strnlen(to->host, sizeof(to->host)));
	p = put_u32(p, (uint32_t)to->port);
	p = put_str(p, from, sizeof(from) - 1);
	p = put_u32(p, 0);
	return libssh2_channel_open_ex(s, type, sizeof(type) - 1,
	    TUNNEL_OPEN_WINDOW, LIBSSH2_CHANNEL_PACKET_DEFAULT,
	    (const char *)msg, (unsigned)(p - msg));
}

/* A probe: an unknown channel type, refused at once by the server, whose
 * answer libssh2 consumes properly. */
static LIBSSH2_CHANNEL *
open_probe(LIBSSH2_SESSION *s)
{
	static const char	probe[] = "keepalive@relayd";

	return libssh2_channel_open_ex(s, probe, sizeof(probe) - 1,
	    LIBSSH2_CHANNEL_WINDOW_DEFAULT, LIBSSH2_CHANNEL_PACKET_DEFAULT,
	    NULL, 0);
}

/* The probe's answer: a refusal proves the server there. */
static int
probe_step(struct open_slot *sl)
{
	LIBSSH2_SESSION	*s = sshcall_session(sl->sc);
	LIBSSH2_CHANNEL	*ch;
	struct endpoint	*ep;
	int		 rc;

	ch = open_probe(s);
	rc = ch != NULL ? 0 : libssh2_session_last_errno(s);
	sshcall_done(sl->sc, sl, OP_OPEN, rc);
	if (ch == NULL && rc == LIBSSH2_ERROR_EAGAIN) {
		sl->probe = PROBE_SENT;
		return 0;
	}
	sl->probe = PROBE_NONE;
	if (ch != NULL && (ep = chan_new(sl->set, ch)) != NULL)
		ep->ops->free(ep);	/* a server that took it: close it */
	else if (ch != NULL || rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
		sshcall_fail(sl->sc, "keepalive probe failed");
	return 1;
}

/* The next queued open the budget admits, now the slot's; NULL if none. */
static struct open_req *
take_next(struct open_slot *sl)
{
	struct open_req	*r;
	open_done_fn	*done;
	void		*arg;

	while ((r = TAILQ_FIRST(&sl->q->queue)) != NULL) {
		if (budget_admit(sl->q->budget)) {
			unqueue(r);
			r->slot = sl;
			sl->cur = r;
			clock_gettime(CLOCK_MONOTONIC, &r->since);
			return r;
		}
		done = r->done;
		arg = r->arg;
		open_free(r);
		done(NULL, "refused: the tunnel's memory budget is spent",
		    arg);
	}
	return NULL;
}

int
slot_service(struct open_slot *sl)
{
	LIBSSH2_SESSION	*s;
	LIBSSH2_CHANNEL	*ch;
	struct open_req	*r;
	int		 rc;

	for (;;) {
		if (!sshcall_may(sl->sc, sl, OP_OPEN))
			return 0;
		if (sl->cur == NULL && sl->probe != PROBE_NONE) {
			if (!probe_step(sl))
				return 0;
		} else {
			if ((r = sl->cur) == NULL && (r = take_next(sl)) ==
			    NULL)
				return 0;
			s = sshcall_session(sl->sc);
			ch = open_direct(s, &r->to);
			rc = ch != NULL ? 0 : libssh2_session_last_errno(s);
			sshcall_done(sl->sc, sl, OP_OPEN, rc);
			if (ch == NULL && rc == LIBSSH2_ERROR_EAGAIN)
				return 0;
			open_finish(sl, r, ch, rc);
		}
		if (!sshcall_live(sl->sc))
			return -1;
	}
}
