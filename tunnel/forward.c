/*
 * Forwards. -R asks the server to listen and accepts the channels it
 * opens; -L and -D listen here and open a channel per connection through
 * the open queue. libssh2 keeps one listen request in progress per
 * session, so -R requests are served one at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/listener.h"
#include "relay/log.h"
#include "relay/proxy_step.h"
#include "relay/service.h"
#include "tunnel/backoff.h"
#include "tunnel/budget.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/forward.h"
#include "tunnel/probe.h"
#include "tunnel/socks_conn.h"
#include "tunnel/sshcall.h"
#include "tunnel/tunnel.h"

/* libssh2 refuses channels beyond this many not yet accepted, and a burst
 * of connections arrives in one read: ssh has no such limit, so make it
 * generous (each waiting channel costs about a kilobyte). */
#define RFWD_QUEUE	4096
/* Seconds a --strip-proxy-header client has to send its header. */
#define STRIP_TIMEOUT	5

enum fwd_state { FWD_DOWN, FWD_REQUESTING, FWD_UP, FWD_WAITING };

struct fwd {
	struct fwds		*set;
	const struct forward_spec *spec;
	char			 name[320];	/* "-R 10080:127.0.0.1:80" */
	struct service		 svc;
	enum fwd_state		 state;
	LIBSSH2_LISTENER	*listener;	/* -R, once up */
	int			 bound_port;
	int			 ever_up;
	struct listener		*local;		/* -L and -D */
	struct socks_server	*socks;		/* -D */
	struct backoff		 backoff;
	struct event		 retry;
	/* -R: the last probe round's addresses and what each found. */
	size_t			 nprobed;
	char			 probed[2][ADDR_HOST_MAX + 1];
	enum probe_result	 found[2];
	char			 refusal[2][160];
};

struct fwds {
	struct fwds_env		 env;
	struct fwd		*v;
	size_t			 n;
	struct fwd		*listening;	/* its -R request is in libssh2 */
	int			 draining;	/* no new connections */
	int			 first;		/* the tunnel's first session */
	time_t			 held_until;	/* a lost session may hold our
						 * -R ports until then */
	int			 exit_code;
	struct probes		*probes;	/* --probe, or NULL */
};

static void	(*up_hook)(void);

void
fwds_set_up_hook(void (*hook)(void))
{
	up_hook = hook;
}

static struct fwd *
fwd_of(struct service *svc)
{
	return (struct fwd *)((char *)svc - offsetof(struct fwd, svc));
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
	return open_request(fwd_of(svc)->set->env.opens, to,
	    svc->connect_timeout, direct_done, c);
}

/* -D: the client hears the outcome before its connection starts. */
static void *
socks_open(struct service *svc, struct conn *c, const struct addr_spec *to)
{
	return open_request(fwd_of(svc)->set->env.opens, to,
	    svc->connect_timeout, socks_answer, c);
}

static void
direct_cancel(void *handle)
{
	open_cancel(handle);
}

static const struct service_ops direct_ops = {
	direct_open, direct_cancel, NULL
};

static const struct service_ops socks_ops = {
	socks_open, direct_cancel, NULL
};

static void
local_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct fwd	*f = arg;

	if (!service_admit(&f->svc, sa, salen))
		close(fd);
	else if (f->spec->kind == FWD_DYNAMIC)
		socks_accept(f->socks, fd, sa, salen);
	else
		conn_start_fd(&f->svc, fd, sa, salen);
}

/* --- -R --- */

static void
remote_retry(evutil_socket_t fd, short what, void *arg)
{
	struct fwd	*f = arg;

	/* Waiting forwards go down with their session. */
	if (f->state == FWD_WAITING) {
		f->state = FWD_REQUESTING;
		sshcall_kick(f->set->env.sc);
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

/* Whether a lost session the server has not noticed may still hold our
 * ports: they are released the moment sshd gives that session up. */
static int
old_session_may_hold(const struct fwds *set)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < set->held_until;
}

static void
remote_refused(struct fwd *f)
{
	struct fwds	*set = f->set;
	const char	*tname = set->env.name;
	struct timeval	 tv;
	char		 msg[256];
	double		 delay;

	ssh_error(sshcall_session(set->env.sc), msg, sizeof(msg));
	if (set->env.conf->exit_on_forward_failure && set->first &&
	    !f->ever_up) {
		log_warnx("tunnel %s: forward %s refused by the server: %s",
		    tname, f->name, msg);
		set->exit_code = EX_UNAVAILABLE;
		sshcall_stop(set->env.sc);
		event_base_loopbreak(set->env.base);
		return;
	}
	if (old_session_may_hold(set)) {
		delay = 1.0;
		log_warnx("tunnel %s: forward %s refused by the server (%s), "
		    "perhaps still held by the lost session; next attempt in "
		    "%g s", tname, f->name, msg, delay);
	} else {
		delay = backoff_next(&f->backoff, BACKOFF_REFUSED, 0.5);
		log_warnx("tunnel %s: forward %s refused by the server (%s); "
		    "next attempt in %g s", tname, f->name, msg, delay);
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
	struct sshcall	*sc = f->set->env.sc;
	LIBSSH2_SESSION	*s = sshcall_session(sc);
	LIBSSH2_LISTENER *l;
	int		 bound = 0, rc;

	if (!sshcall_may(sc, f, OP_LISTEN))
		return 1;
	l = libssh2_channel_forward_listen_ex(s, remote_bind_host(f->spec),
	    f->spec->listen.port, &bound, RFWD_QUEUE);
	rc = l != NULL ? 0 : libssh2_session_last_errno(s);
	sshcall_done(sc, f, OP_LISTEN, rc);
	if (l == NULL && rc == LIBSSH2_ERROR_EAGAIN) {
		f->set->listening = f;
		return 1;
	}
	f->set->listening = NULL;
	if (l == NULL && rc != LIBSSH2_ERROR_REQUEST_DENIED) {
		sshcall_fail(sc, "forward request failed");
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
	log_info("tunnel %s: forward %s up on port %d", f->set->env.name,
	    f->name, f->bound_port);
	if (up_hook != NULL)
		up_hook();
	return 0;
}

/* A visitor of the server: the channel's connection to the target. */
static void
remote_visitor(struct endpoint *ep, void *arg)
{
	struct fwd	*f = arg;
	char		 name[64];

	snprintf(name, sizeof(name), "remote:%d", f->bound_port);
	conn_start(&f->svc, ep, name, NULL);
}

static int
remote_accept(struct fwd *f)
{
	struct sshcall	*sc = f->set->env.sc;
	LIBSSH2_CHANNEL	*ch;
	struct endpoint	*ep;
	int		 rc;

	for (;;) {
		if (!sshcall_may(sc, f, OP_ACCEPT))
			return 0;
		ch = libssh2_channel_forward_accept(f->listener);
		rc = ch != NULL ? 0 : libssh2_session_last_errno(
		    sshcall_session(sc));
		sshcall_done(sc, f, OP_ACCEPT, rc);
		if (ch == NULL)
			return 0;
		if ((ep = chan_new(f->set->env.set, ch)) == NULL) {
			sshcall_fail(sc, "out of memory");
			return -1;
		}
		/* Over budget: closed at once, the server's client sees
		 * its connection end. */
		if (!budget_admit(f->set->env.budget)) {
			ep->ops->free(ep);
			continue;
		}
		if (f->set->probes != NULL && probes_awaited(f->set->probes))
			probes_catch(f->set->probes, ep, remote_visitor, f);
		else
			remote_visitor(ep, f);
		if (!sshcall_live(sc))
			return -1;
	}
}

int
fwds_service(struct fwds *set)
{
	struct fwd	*f;
	size_t		 i;
	int		 requesting;

	/* libssh2 keeps one listen request per session: the one in
	 * progress is repeated until it completes, before any other. */
	requesting = set->listening != NULL && remote_request(set->listening);
	for (i = 0; i < set->n; i++) {
		f = &set->v[i];
		if (f->state == FWD_REQUESTING && !requesting &&
		    set->listening == NULL)
			requesting = remote_request(f);
		if (!sshcall_live(set->env.sc))
			return -1;
		if (f->state == FWD_UP && f->listener != NULL &&
		    !set->draining && remote_accept(f) == -1)
			return -1;
	}
	return 0;
}

void
fwds_session_up(struct fwds *set, int first, time_t held_until)
{
	size_t	i;

	set->first = first;
	set->held_until = held_until;
	for (i = 0; i < set->n; i++) {
		if (set->v[i].spec->kind == FWD_REMOTE) {
			set->v[i].state = FWD_REQUESTING;
			set->v[i].bound_port = 0;
		}
	}
	if (up_hook != NULL)
		up_hook();	/* -L and -D are up with the session */
}

void
fwds_session_down(struct fwds *set)
{
	size_t	i;

	/* The listeners die with the session that owns them, and a probe
	 * round with them. */
	set->listening = NULL;
	fwds_probe_forget(set);
	for (i = 0; i < set->n; i++) {
		if (set->v[i].spec->kind != FWD_REMOTE)
			continue;
		set->v[i].listener = NULL;
		set->v[i].state = FWD_DOWN;
		event_del(&set->v[i].retry);
	}
}

/* --- probes (--probe) --- */

/* Where a visitor of the server reaches the forward: without an address
 * (or "localhost", or "*") sshd listens on both loopbacks and grants the
 * forward if either works, so both are probed. */
static size_t
probe_addresses(const struct fwd *f, char out[2][ADDR_HOST_MAX + 1])
{
	const char	*h = f->spec->listen.host;

	if (h[0] == '\0' || strcmp(h, "*") == 0 ||
	    strcasecmp(h, "localhost") == 0) {
		snprintf(out[0], sizeof(out[0]), "127.0.0.1");
		snprintf(out[1], sizeof(out[1]), "::1");
		return 2;
	}
	snprintf(out[0], sizeof(out[0]), "%s", h);
	return 1;
}

/* The last round's verdict on f: 1 came back, 0 not known, -1 failed
 * (why says how). */
static int
probe_verdict(const struct fwd *f, char *why, size_t len)
{
	size_t	i, refused = 0, ok = 0;

	for (i = 0; i < f->nprobed; i++) {
		if (f->found[i] == PROBE_ELSEWHERE) {
			snprintf(why, len, "forward %s: port %d on %s answers, "
			    "but not through this tunnel (another process or "
			    "a stale session holds it)", f->name, f->bound_port,
			    f->probed[i]);
			return -1;
		}
		refused += f->found[i] == PROBE_REFUSED;
		ok += f->found[i] == PROBE_OK;
	}
	if (f->nprobed > 0 && refused == f->nprobed) {
		snprintf(why, len, "forward %s: nothing listens on port %d "
		    "(%s)", f->name, f->bound_port, f->refusal[0]);
		return -1;
	}
	return ok > 0 ? 1 : 0;
}

int
fwds_probe_round(struct fwds *set, char *why, size_t len)
{
	struct fwd	*f;
	size_t		 i, j;
	int		 verdict = 0, v;

	if (set->probes == NULL)
		return 0;
	probes_end(set->probes);
	for (i = 0; i < set->n; i++) {
		f = &set->v[i];
		if ((v = probe_verdict(f, why, len)) == -1)
			verdict = -1;
		else if (v == 1 && verdict == 0)
			verdict = 1;
		f->nprobed = 0;
		if (f->spec->kind != FWD_REMOTE || f->state != FWD_UP)
			continue;
		f->nprobed = probe_addresses(f, f->probed);
		for (j = 0; j < f->nprobed; j++)
			if (probes_send(set->probes, f->probed[j],
			    f->bound_port, &f->found[j], f->refusal[j],
			    sizeof(f->refusal[j])) == -1)
				f->nprobed = j;
	}
	return verdict;
}

void
fwds_probe_forget(struct fwds *set)
{
	size_t	i;

	if (set->probes == NULL)
		return;
	probes_end(set->probes);
	for (i = 0; i < set->n; i++)
		set->v[i].nprobed = 0;
}

int
fwds_exit_code(const struct fwds *set)
{
	return set->exit_code;
}

/* --- set-up --- */

static void
setup_service(struct fwds *set, struct fwd *f)
{
	const struct forward_spec *spec = f->spec;

	service_init(&f->svc, set->env.base, spec->kind == FWD_REMOTE ? NULL :
	    spec->kind == FWD_DYNAMIC ? &socks_ops : &direct_ops);
	f->svc.tag = f->name;
	f->svc.to = &spec->to;
	f->svc.screens = spec->kind == FWD_DYNAMIC;
	if (spec->kind == FWD_REMOTE) {
		/* The local server restarting: the channel waits for it. */
		f->svc.connect_retry = set->env.conf->connect_retry;
		f->svc.max_held = CONF_MAX_HELD;
	}
	if (set->env.conf->strip_proxy && spec->kind != FWD_DYNAMIC) {
		f->svc.step = &proxy_step;
		f->svc.handshake_timeout = STRIP_TIMEOUT;
	}
}

static int
setup_one(struct fwds *set, struct fwd *f, const struct forward_spec *spec,
    char *err, size_t errlen, int *exitcode)
{
	size_t	j;

	f->set = set;
	f->spec = spec;
	forward_format(spec, f->name, sizeof(f->name));
	setup_service(set, f);
	evtimer_assign(&f->retry, set->env.base, remote_retry, f);
	if (spec->kind == FWD_REMOTE)
		return 0;
	if (spec->kind == FWD_DYNAMIC && (f->socks = socks_server_new(
	    set->env.base, &f->svc)) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return -1;
	}
	if ((f->local = listener_bind(set->env.base, &spec->listen,
	    local_accept, f, err, errlen, exitcode)) == NULL)
		return -1;
	for (j = 0; j < listener_nsockets(f->local); j++)
		log_info("tunnel %s: forward %s up on %s", set->env.name,
		    f->name, listener_name(f->local, j));
	listener_enable(f->local);
	return 0;
}

struct fwds *
fwds_new(const struct fwds_env *env, char *err, size_t errlen,
    int *exitcode)
{
	struct fwds	*set;
	size_t		 i;

	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (set->v = calloc(env->conf->nfwd, sizeof(*set->v))) == NULL) {
		free(set);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	set->env = *env;
	if (env->conf->probe > 0 && (set->probes = probes_new(env->base,
	    env->opens, env->name)) == NULL) {
		fwds_free(set);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	for (i = 0; i < env->conf->nfwd; i++) {
		/* Counted before set-up: a half set-up one is freed too. */
		set->n++;
		if (setup_one(set, &set->v[i], &env->conf->fwd[i], err,
		    errlen, exitcode) == -1) {
			fwds_free(set);
			return NULL;
		}
	}
	return set;
}

/* --- what the tunnel tells of its forwards --- */

int
fwds_ready(const struct fwds *set)
{
	size_t	i;

	for (i = 0; i < set->n; i++)
		if (set->v[i].spec->kind == FWD_REMOTE &&
		    set->v[i].state != FWD_UP)
			return 0;
	return 1;
}

size_t
fwds_count(const struct fwds *set)
{
	return set->n;
}

unsigned
fwds_active(const struct fwds *set)
{
	unsigned	n = 0;
	size_t		i;

	for (i = 0; i < set->n; i++)
		n += set->v[i].svc.active;
	return n;
}

/* -R is up once the server listens for it; -L and -D while they listen
 * here and the session they need is up. */
void
fwds_stats(const struct fwds *set, size_t i, int up, struct forward_stats *st)
{
	const struct fwd	*f = &set->v[i];

	memset(st, 0, sizeof(*st));
	st->name = f->name;
	if (f->spec->kind == FWD_REMOTE) {
		st->up = up && f->state == FWD_UP;
		st->port = st->up ? f->bound_port : 0;
	} else
		st->up = up && f->local != NULL;
	service_count(&f->svc, &st->counts);
}

void
fwds_write_status(const struct fwds *set, FILE *fp, const char *name)
{
	const struct fwd	*f;
	char			 conns[512];
	size_t			 i;

	for (i = 0; i < set->n; i++) {
		f = &set->v[i];
		service_describe(&f->svc, conns, sizeof(conns));
		if (f->spec->kind == FWD_REMOTE && f->state == FWD_UP)
			fprintf(fp, "tunnel %s forward %s: up on port %d; %s\n",
			    name, f->name, f->bound_port, conns);
		else
			fprintf(fp, "tunnel %s forward %s: %s; %s\n", name,
			    f->name, f->spec->kind == FWD_REMOTE ? "not up" :
			    "listening", conns);
	}
}

void
fwds_stop_accepting(struct fwds *set)
{
	size_t	i;

	set->draining = 1;
	for (i = 0; i < set->n; i++)
		if (set->v[i].local != NULL)
			listener_disable(set->v[i].local);
}

void
fwds_close_listeners(struct fwds *set)
{
	size_t	i;

	/* The tunnels' keeper keeps a copy of the listeners bound at start,
	 * for the workers it restarts: close alone would not free the port. */
	for (i = 0; i < set->n; i++) {
		listener_unlisten(set->v[i].local);
		listener_free(set->v[i].local);
		set->v[i].local = NULL;
	}
}

void
fwds_free(struct fwds *set)
{
	size_t	i;

	if (set == NULL)
		return;
	probes_free(set->probes);
	for (i = 0; i < set->n; i++) {
		socks_server_free(set->v[i].socks);
		service_close_all(&set->v[i].svc, "shutdown");
		event_del(&set->v[i].retry);
		listener_free(set->v[i].local);
	}
	free(set->v);
	free(set);
}
