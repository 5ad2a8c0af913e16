/*
 * Forwards. -R asks the server to listen and accepts the channels it
 * opens; -L and -D listen here and open a channel per connection. libssh2
 * keeps one channel open and one listen request in progress per session,
 * so each kind is queued and served one at a time.
 */
#include <inttypes.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/listener.h"
#include "relay/log.h"
#include "relay/proxy_step.h"
#include "tunnel/tunnel.h"
#include "tunnel/tunnel_int.h"

/* libssh2 refuses channels beyond this many not yet accepted, and a burst
 * of connections arrives in one read: ssh has no such limit, so make it
 * generous (each waiting channel costs about a kilobyte). */
#define RFWD_QUEUE	4096
/* Seconds a --strip-proxy-header client has to send its header. */
#define STRIP_TIMEOUT	5

static void	(*up_hook)(void);

void
tunnel_set_up_hook(void (*hook)(void))
{
	up_hook = hook;
}

int
tunnel_ready(const struct tunnel *t)
{
	size_t	i;

	for (i = 0; i < t->nfwds; i++)
		if (t->fwds[i].spec->kind == FWD_REMOTE &&
		    t->fwds[i].state != FWD_UP)
			return 0;
	return t->state == T_UP;
}

/* --- the channel-open queue --- */

static void
open_free(struct open_req *r)
{
	TAILQ_REMOVE(&r->t->opens, r, entry);
	event_del(&r->timer);
	free(r);
}

static void
open_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct open_req	*r = arg;
	void		(*done)(struct endpoint *, const char *, void *) =
			    r->done;
	void		*darg = r->arg;

	open_cancel(r);
	done(NULL, "connect timeout", darg);
}

struct open_req *
open_request(struct tunnel *t, const struct addr_spec *to, int timeout_sec,
    void (*done)(struct endpoint *, const char *, void *), void *arg)
{
	struct timeval	 tv = { timeout_sec, 0 };
	struct open_req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->t = t;
	r->ping = to == NULL;
	if (to != NULL)
		r->to = *to;
	r->done = done;
	r->arg = arg;
	evtimer_assign(&r->timer, t->base, open_timeout, r);
	if (timeout_sec > 0)
		evtimer_add(&r->timer, &tv);
	TAILQ_INSERT_TAIL(&t->opens, r, entry);
	tunnel_kick(t);
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
		r->t->pinging = 0;
	open_free(r);
}

void
open_fail_all(struct tunnel *t, const char *why)
{
	struct open_req	*r;
	void		(*done)(struct endpoint *, const char *, void *);
	void		*arg;

	while ((r = TAILQ_FIRST(&t->opens)) != NULL) {
		done = r->abandoned ? NULL : r->done;
		arg = r->arg;
		open_free(r);
		if (done != NULL)
			done(NULL, why, arg);
	}
	t->pinging = 0;
}

/* Delivers the outcome of the open at the head of the queue. */
static void
open_finish(struct tunnel *t, struct open_req *r, LIBSSH2_CHANNEL *ch,
    int rc)
{
	void		(*done)(struct endpoint *, const char *, void *) =
			    r->abandoned ? NULL : r->done;
	void		*arg = r->arg;
	struct chan	*c = NULL;
	char		 why[300], msg[256];

	if (r->ping) {
		t->pinging = 0;
		if (ch == NULL && rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
			tunnel_fail(t, "keepalive probe failed");
		done = NULL;
	}
	open_free(r);
	if (ch != NULL && (c = chan_new(t, ch)) == NULL) {
		/* No memory for our side: let the session go. */
		tunnel_fail(t, "out of memory");
		rc = LIBSSH2_ERROR_ALLOC;
		ch = NULL;
	}
	if (c != NULL && done == NULL) {
		c->ep.ops->free(&c->ep);	/* nobody wants it any more */
		return;
	}
	if (done == NULL)
		return;
	if (c != NULL) {
		done(&c->ep, NULL, arg);
		return;
	}
	snprintf(why, sizeof(why), "connect failed: %s",
	    ssh_error(t->s, msg, sizeof(msg)));
	if (rc != LIBSSH2_ERROR_CHANNEL_FAILURE)
		tunnel_fail(t, "channel open failed");
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

/* A channel open not yet begun, refused while the budget is spent. */
static void
open_refuse(struct open_req *r)
{
	void		(*done)(struct endpoint *, const char *, void *) =
			    r->done;
	void		*arg = r->arg;

	open_free(r);
	done(NULL, "refused: the tunnel's memory budget is spent", arg);
}

int
open_service(struct tunnel *t)
{
	struct open_req	*r;
	LIBSSH2_CHANNEL	*ch;
	const char	 probe[] = "keepalive@relayd";
	int		 rc;

	while ((r = TAILQ_FIRST(&t->opens)) != NULL) {
		if (!tunnel_may_call(t, r, OP_OPEN))
			return 0;
		if (!r->ping && !r->in_progress && !budget_admit(t)) {
			open_refuse(r);
			continue;
		}
		/* A probe: an unknown channel type, refused at once by the
		 * server, whose answer libssh2 consumes properly. */
		if (r->ping)
			ch = libssh2_channel_open_ex(t->s, probe,
			    sizeof(probe) - 1, LIBSSH2_CHANNEL_WINDOW_DEFAULT,
			    LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
		else
			ch = open_direct(t->s, &r->to);
		rc = ch != NULL ? 0 : libssh2_session_last_errno(t->s);
		tunnel_called(t, r, OP_OPEN, rc);
		if (ch == NULL && rc == LIBSSH2_ERROR_EAGAIN) {
			if (!r->in_progress)
				clock_gettime(CLOCK_MONOTONIC, &r->since);
			r->in_progress = 1;
			return 0;
		}
		open_finish(t, r, ch, rc);
		if (t->state != T_UP || t->fail_why[0] != '\0')
			return -1;
	}
	return 0;
}

/* --- -L and -D: the opened channel becomes the connection's target --- */

static void
direct_done(struct endpoint *ep, const char *why, void *arg)
{
	if (ep != NULL)
		conn_target_ready(arg, ep);
	else
		conn_target_failed(arg, why);
}

static void *
direct_open(struct service *svc, struct conn *c, const struct addr_spec *to)
{
	struct fwd	*f = (struct fwd *)((char *)svc -
			    offsetof(struct fwd, svc));

	return open_request(f->t, to, svc->connect_timeout, direct_done, c);
}

static void
direct_cancel(void *handle)
{
	open_cancel(handle);
}

static const struct service_ops direct_ops = {
	direct_open, direct_cancel, NULL
};

static void
local_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct fwd	*f = arg;

	if (!service_admit(&f->svc, sa, salen))
		close(fd);
	else if (f->spec->kind == FWD_DYNAMIC)
		socks_accept(f, fd, sa, salen);
	else
		conn_start_fd(&f->svc, fd, sa, salen);
}

/* --- -R --- */

static void
remote_retry(evutil_socket_t fd, short what, void *arg)
{
	struct fwd	*f = arg;

	if (f->state == FWD_WAITING && f->t->state == T_UP) {
		f->state = FWD_REQUESTING;
		tunnel_kick(f->t);
	}
}

static const char *
remote_bind_host(const struct forward_spec *spec)
{
	/* As ssh: no address is "localhost", "*" is every address. */
	if (spec->listen.host[0] == '\0')
		return "localhost";
	if (strcmp(spec->listen.host, "*") == 0)
		return "";
	return spec->listen.host;
}

static void
remote_refused(struct fwd *f)
{
	struct tunnel	*t = f->t;
	struct timeval	 tv;
	char		 msg[256];
	double		 delay;

	ssh_error(t->s, msg, sizeof(msg));
	if (t->conf->exit_on_forward_failure && t->sessions == 1 &&
	    !f->ever_up) {
		log_warnx("tunnel %s: forward %s refused by the server: %s",
		    t->name, f->name, msg);
		t->exit_code = 69;
		event_base_loopbreak(t->base);
		return;
	}
	/* The session we lost unnoticed by the server may still hold the
	 * port: it is released the moment sshd gives that session up. */
	if (recheck_old_session_may_hold(t)) {
		delay = 1.0;
		log_warnx("tunnel %s: forward %s refused by the server (%s), "
		    "perhaps still held by the lost session; next attempt in "
		    "%g s", t->name, f->name, msg, delay);
	} else {
		delay = backoff_next(&f->backoff, BACKOFF_REFUSED, 0.5);
		log_warnx("tunnel %s: forward %s refused by the server (%s); "
		    "next attempt in %g s", t->name, f->name, msg, delay);
	}
	f->state = FWD_WAITING;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(&f->retry, &tv);
}

/* Returns 1 while the request is still in progress. */
static int
remote_request(struct fwd *f)
{
	struct tunnel	*t = f->t;
	LIBSSH2_LISTENER *l;
	int		 bound = 0, rc;

	if (!tunnel_may_call(t, f, OP_LISTEN))
		return 1;
	l = libssh2_channel_forward_listen_ex(t->s, remote_bind_host(f->spec),
	    f->spec->listen.port, &bound, RFWD_QUEUE);
	rc = l != NULL ? 0 : libssh2_session_last_errno(t->s);
	tunnel_called(t, f, OP_LISTEN, rc);
	if (l == NULL && rc == LIBSSH2_ERROR_EAGAIN) {
		t->listening = f;
		return 1;
	}
	t->listening = NULL;
	if (l == NULL && rc != LIBSSH2_ERROR_REQUEST_DENIED) {
		tunnel_fail(t, "forward request failed");
		return 0;
	}
	if (l == NULL) {
		remote_refused(f);
		return 0;
	}
	f->listener = l;
	f->bound_port = f->spec->listen.port ? f->spec->listen.port : bound;
	f->state = FWD_UP;
	f->ever_up = 1;
	backoff_reset(&f->backoff);
	log_info("tunnel %s: forward %s up on port %d", t->name, f->name,
	    f->bound_port);
	if (up_hook != NULL)
		up_hook();
	return 0;
}

static int
remote_accept(struct fwd *f)
{
	struct tunnel	*t = f->t;
	LIBSSH2_CHANNEL	*ch;
	struct chan	*c;
	char		 name[64];
	int		 rc;

	for (;;) {
		if (!tunnel_may_call(t, f, OP_ACCEPT))
			return 0;
		ch = libssh2_channel_forward_accept(f->listener);
		rc = ch != NULL ? 0 : libssh2_session_last_errno(t->s);
		tunnel_called(t, f, OP_ACCEPT, rc);
		if (ch == NULL)
			return 0;
		if ((c = chan_new(t, ch)) == NULL) {
			tunnel_fail(t, "out of memory");
			return -1;
		}
		/* Over budget: closed at once, the server's client sees
		 * its connection end. */
		if (!budget_admit(t)) {
			c->ep.ops->free(&c->ep);
			continue;
		}
		snprintf(name, sizeof(name), "remote:%d", f->bound_port);
		conn_start(&f->svc, &c->ep, name, NULL);
		if (t->state != T_UP || t->fail_why[0] != '\0')
			return -1;
	}
}

int
fwd_service(struct tunnel *t)
{
	struct fwd	*f;
	size_t		 i;
	int		 requesting;

	/* libssh2 keeps one listen request per session: the one in
	 * progress is repeated until it completes, before any other. */
	requesting = t->listening != NULL && remote_request(t->listening);
	for (i = 0; i < t->nfwds; i++) {
		f = &t->fwds[i];
		if (f->state == FWD_REQUESTING && !requesting &&
		    t->listening == NULL)
			requesting = remote_request(f);
		if (t->exit_code != 0 || t->fail_why[0] != '\0')
			return -1;
		if (f->state == FWD_UP && f->listener != NULL &&
		    !t->draining && remote_accept(f) == -1)
			return -1;
	}
	return 0;
}

void
fwd_session_up(struct tunnel *t)
{
	size_t	i;

	for (i = 0; i < t->nfwds; i++) {
		if (t->fwds[i].spec->kind == FWD_REMOTE) {
			t->fwds[i].state = FWD_REQUESTING;
			t->fwds[i].bound_port = 0;
		}
	}
	if (up_hook != NULL)
		up_hook();	/* -L and -D are up with the session */
}

void
fwd_session_down(struct tunnel *t)
{
	size_t	i;

	/* The listeners die with the session that owns them. */
	t->listening = NULL;
	for (i = 0; i < t->nfwds; i++) {
		if (t->fwds[i].spec->kind != FWD_REMOTE)
			continue;
		t->fwds[i].listener = NULL;
		t->fwds[i].state = FWD_DOWN;
		event_del(&t->fwds[i].retry);
	}
}

/* --- set-up --- */

static int
setup_one(struct tunnel *t, struct fwd *f, const struct forward_spec *spec,
    char *err, size_t errlen, int *exitcode)
{
	size_t	j;

	f->t = t;
	f->spec = spec;
	TAILQ_INIT(&f->handshakes);
	forward_format(spec, f->name, sizeof(f->name));
	service_init(&f->svc, t->base, spec->kind == FWD_REMOTE ? NULL :
	    spec->kind == FWD_DYNAMIC ? &socks_ops : &direct_ops);
	f->svc.tag = f->name;
	f->svc.to = &spec->to;
	f->svc.screens = spec->kind == FWD_DYNAMIC;
	if (spec->kind == FWD_REMOTE) {
		/* The local server restarting: the channel waits for it. */
		f->svc.connect_retry = t->conf->connect_retry;
		f->svc.max_held = CONF_MAX_HELD;
	}
	if (t->conf->strip_proxy && spec->kind != FWD_DYNAMIC) {
		f->svc.step = &proxy_step;
		f->svc.handshake_timeout = STRIP_TIMEOUT;
	}
	evtimer_assign(&f->retry, t->base, remote_retry, f);
	if (spec->kind == FWD_REMOTE)
		return 0;
	if ((f->local = listener_bind(t->base, &spec->listen, local_accept, f,
	    err, errlen, exitcode)) == NULL)
		return -1;
	for (j = 0; j < listener_nsockets(f->local); j++)
		log_info("tunnel %s: forward %s up on %s", t->name, f->name,
		    listener_name(f->local, j));
	listener_enable(f->local);
	return 0;
}

int
fwd_setup(struct tunnel *t, char *err, size_t errlen, int *exitcode)
{
	size_t	i;

	if ((t->fwds = calloc(t->conf->nfwd, sizeof(*t->fwds))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = 71;
		return -1;
	}
	for (i = 0; i < t->conf->nfwd; i++) {
		if (setup_one(t, &t->fwds[i], &t->conf->fwd[i], err, errlen,
		    exitcode) == -1)
			return -1;
		t->nfwds++;
	}
	return 0;
}

void
tunnel_write_status(const struct tunnel *t, FILE *fp)
{
	static const char *const states[] = { "down", "connecting",
	    "handshaking", "authenticating", "up" };
	const char	*name = t->conf->name[0] ? t->conf->name : "-";
	char		 conns[512];
	size_t		 i;

	fprintf(fp, "tunnel %s %s: %s, %u reconnects, %" PRIu64 " packets "
	    "sent in %" PRIu64 " writes\n", name, t->name, states[t->state],
	    t->sessions > 1 ? t->sessions - 1 : 0, t->packets_out,
	    t->sends_out);
	if (t->last_loss[0] != '\0')
		fprintf(fp, "tunnel %s last loss: %s (%lld s ago)\n", name,
		    t->last_loss, (long long)(time(NULL) - t->last_loss_at));
	for (i = 0; i < t->nfwds; i++) {
		service_describe(&t->fwds[i].svc, conns, sizeof(conns));
		if (t->fwds[i].spec->kind == FWD_REMOTE &&
		    t->fwds[i].state == FWD_UP)
			fprintf(fp, "tunnel %s forward %s: up on port %d; %s\n",
			    name, t->fwds[i].name, t->fwds[i].bound_port, conns);
		else
			fprintf(fp, "tunnel %s forward %s: %s; %s\n", name,
			    t->fwds[i].name, t->fwds[i].spec->kind ==
			    FWD_REMOTE ? "not up" : "listening", conns);
	}
}

unsigned
tunnel_active(const struct tunnel *t)
{
	unsigned	n = 0;
	size_t		i;

	for (i = 0; i < t->nfwds; i++)
		n += t->fwds[i].svc.active;
	return n;
}

void
tunnel_stop_accepting(struct tunnel *t)
{
	size_t	i;

	t->draining = 1;
	for (i = 0; i < t->nfwds; i++)
		if (t->fwds[i].local != NULL)
			listener_disable(t->fwds[i].local);
}

void
tunnel_close_listeners(struct tunnel *t)
{
	size_t	i;

	/* The tunnels' keeper keeps a copy of the listeners bound at start,
	 * for the workers it restarts: close alone would not free the port. */
	for (i = 0; i < t->nfwds; i++) {
		listener_unlisten(t->fwds[i].local);
		listener_free(t->fwds[i].local);
		t->fwds[i].local = NULL;
	}
}

void
fwd_free_all(struct tunnel *t)
{
	size_t	i;

	for (i = 0; i < t->nfwds; i++) {
		socks_free_all(&t->fwds[i]);
		service_close_all(&t->fwds[i].svc, "shutdown");
		event_del(&t->fwds[i].retry);
		listener_free(t->fwds[i].local);
	}
	free(t->fwds);
	t->fwds = NULL;
	t->nfwds = 0;
}
