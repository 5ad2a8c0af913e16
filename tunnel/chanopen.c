/*
 * The channel-open queue: libssh2 keeps one channel open in progress per
 * session, so opens are queued and served one at a time, each reporting
 * its channel or why there is none. Probes (keepalives) take the same
 * slot: an unknown channel type, refused at once by the server.
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

/* A request that needs the session's one channel-open slot. */
struct open_req {
	TAILQ_ENTRY(open_req)	 entry;
	struct opens		*q;
	struct addr_spec	 to;
	int			 ping;		/* a keepalive probe, no channel */
	int			 in_progress;	/* libssh2 holds its open state */
	struct timespec		 since;		/* when it was first sent */
	int			 abandoned;	/* nobody waits for it any more */
	struct event		 timer;
	open_done_fn		*done;
	void			*arg;
};

struct opens {
	struct event_base	*base;
	struct sshcall		*sc;
	struct chans		*set;
	struct budget		*budget;
	TAILQ_HEAD(, open_req)	 queue;
	int			 pinging;	/* a probe is queued */
};

struct opens *
opens_new(struct event_base *base, struct sshcall *sc, struct chans *set,
    struct budget *budget)
{
	struct opens	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->base = base;
	q->sc = sc;
	q->set = set;
	q->budget = budget;
	TAILQ_INIT(&q->queue);
	return q;
}

void
opens_free(struct opens *q)
{
	free(q);
}

static void
open_free(struct open_req *r)
{
	TAILQ_REMOVE(&r->q->queue, r, entry);
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

struct open_req *
open_request(struct opens *q, const struct addr_spec *to, int timeout_sec,
    open_done_fn *done, void *arg)
{
	struct timeval	 tv = { timeout_sec, 0 };
	struct open_req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->q = q;
	r->ping = to == NULL;
	if (to != NULL)
		r->to = *to;
	r->done = done;
	r->arg = arg;
	evtimer_assign(&r->timer, q->base, open_timeout, r);
	if (timeout_sec > 0)
		evtimer_add(&r->timer, &tv);
	TAILQ_INSERT_TAIL(&q->queue, r, entry);
	sshcall_kick(q->sc);
	return r;
}

void
open_cancel(struct open_req *r)
{
	/* libssh2 is in the middle of opening it: let that finish, then
	 * close what it gives, or the next open would receive it. */
	if (r->in_progress) {
		r->abandoned = 1;
		r->done = NULL;
		event_del(&r->timer);
		return;
	}
	if (r->ping)
		r->q->pinging = 0;
	open_free(r);
}

void
opens_fail_all(struct opens *q, const char *why)
{
	struct open_req	*r;
	open_done_fn	*done;
	void		*arg;

	while ((r = TAILQ_FIRST(&q->queue)) != NULL) {
		done = r->abandoned ? NULL : r->done;
		arg = r->arg;
		open_free(r);
		if (done != NULL)
			done(NULL, why, arg);
	}
	q->pinging = 0;
}

void
opens_session_lost(struct opens *q)
{
	struct open_req	*r, *next;
	open_done_fn	*done;
	void		*arg;

	/* Opens not yet sent wait for the next session; one the server was
	 * already working on is not repeated behind its back. */
	for (r = TAILQ_FIRST(&q->queue); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (r->in_progress && !r->ping && !r->abandoned) {
			done = r->done;
			arg = r->arg;
			r->in_progress = 0;
			open_cancel(r);
			done(NULL, "tunnel lost", arg);
			continue;
		}
		r->in_progress = 0;
		if (r->ping || r->abandoned)
			open_cancel(r);
	}
	q->pinging = 0;
}

int
opens_probe(struct opens *q)
{
	if (q->pinging || open_request(q, NULL, 0, NULL, NULL) == NULL)
		return 0;
	q->pinging = 1;
	return 1;
}

int
opens_probing(const struct opens *q)
{
	return q->pinging;
}

long
opens_slot_held(const struct opens *q)
{
	struct open_req	*r = TAILQ_FIRST(&q->queue);
	struct timespec	 now;

	if (r == NULL || r->ping || !r->in_progress)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - r->since.tv_sec);
}

/* Delivers the outcome of the open at the head of the queue. */
static void
open_finish(struct opens *q, struct open_req *r, LIBSSH2_CHANNEL *ch,
    int rc)
{
	open_done_fn	*done = r->abandoned ? NULL : r->done;
	void		*arg = r->arg;
	struct endpoint	*ep = NULL;
	char		 why[300], msg[256];

	if (r->ping) {
		q->pinging = 0;
		if (ch == NULL && rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
			sshcall_fail(q->sc, "keepalive probe failed");
		done = NULL;
	}
	open_free(r);
	if (ch != NULL && (ep = chan_new(q->set, ch)) == NULL) {
		/* No memory for our side: let the session go. */
		sshcall_fail(q->sc, "out of memory");
		rc = LIBSSH2_ERROR_ALLOC;
		ch = NULL;
	}
	if (ep != NULL && done == NULL) {
		ep->ops->free(ep);	/* nobody wants it any more */
		return;
	}
	if (done == NULL)
		return;
	if (ep != NULL) {
		done(ep, NULL, arg);
		return;
	}
	snprintf(why, sizeof(why), "connect failed: %s",
	    ssh_error(sshcall_session(q->sc), msg, sizeof(msg)));
	if (rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
		sshcall_fail(q->sc, "channel open failed");
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

/* A channel open not yet begun, refused while the budget is spent. */
static void
open_refuse(struct open_req *r)
{
	open_done_fn	*done = r->done;
	void		*arg = r->arg;

	open_free(r);
	done(NULL, "refused: the tunnel's memory budget is spent", arg);
}

int
opens_service(struct opens *q)
{
	LIBSSH2_SESSION	*s;
	struct open_req	*r;
	LIBSSH2_CHANNEL	*ch;
	int		 rc;

	while ((r = TAILQ_FIRST(&q->queue)) != NULL) {
		if (!sshcall_may(q->sc, r, OP_OPEN))
			return 0;
		if (!r->ping && !r->in_progress && !budget_admit(q->budget)) {
			open_refuse(r);
			continue;
		}
		s = sshcall_session(q->sc);
		ch = r->ping ? open_probe(s) : open_direct(s, &r->to);
		rc = ch != NULL ? 0 : libssh2_session_last_errno(s);
		sshcall_done(q->sc, r, OP_OPEN, rc);
		if (ch == NULL && rc == LIBSSH2_ERROR_EAGAIN) {
			if (!r->in_progress)
				clock_gettime(CLOCK_MONOTONIC, &r->since);
			r->in_progress = 1;
			return 0;
		}
		open_finish(q, r, ch, rc);
		if (!sshcall_live(q->sc))
			return -1;
	}
	return 0;
}
