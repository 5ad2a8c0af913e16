/*
 * Relays: listeners whose connections go to one target, served in this
 * event loop or, with --fork, each in a child process of its own.
 */
#include <sys/queue.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/iplimit.h"
#include "relay/resolve.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/proxy_step.h"
#include "relay/relay.h"
#include "relay/service.h"
#include "relay/systemd.h"
#include "relay/tls.h"
#include "relay/udp.h"

struct relay {
	struct service		 svc;
	TAILQ_ENTRY(relay)	 entry;
	struct relay_conf	*conf;		/* our own copy */
	struct listener		**listeners;
	size_t			 nlisteners;
	struct tls_server	*tls;		/* for tls: listeners */
	struct tls_client	*tls_to;	/* for a tls: target */
	struct udp_relay	*udp;	/* UDP: in place of listeners */
};

struct child {
	TAILQ_ENTRY(child)	 entry;
	pid_t			 pid;
	struct relay		*relay;
};

static int			 in_child;
static void			(*forked_hook)(void);
static TAILQ_HEAD(, relay)	 relays = TAILQ_HEAD_INITIALIZER(relays);
static TAILQ_HEAD(, child)	 children = TAILQ_HEAD_INITIALIZER(children);

/* A --fork child exits once its one connection is done. */
static void
on_conn_closed(struct service *svc)
{
	if (in_child && svc->active == 0)
		event_base_loopbreak(svc->base);
}

static const struct service_ops relay_ops = { NULL, NULL, on_conn_closed };

/* Closes the parent's listeners once the accept callback has returned. */
static void
close_listeners_in_child(evutil_socket_t fd, short what, void *arg)
{
	struct relay	*r;
	size_t		 i;

	TAILQ_FOREACH(r, &relays, entry) {
		for (i = 0; i < r->nlisteners; i++)
			listener_free_in_child(r->listeners[i]);
		r->nlisteners = 0;
	}
}

/* The child drops everything of the parent's but this one connection. */
static void
become_child(struct relay *serving)
{
	struct timeval	 now = { 0, 0 };
	struct relay	*r;
	struct child	*ch;
	size_t		 i;

	in_child = 1;
	if (event_reinit(serving->svc.base) == -1)
		fatalx(71, "event_reinit failed in --fork child");
	resolve_after_fork();
	TAILQ_FOREACH(r, &relays, entry) {
		for (i = 0; i < r->nlisteners; i++)
			listener_disable(r->listeners[i]);
		r->svc.active = 0;
		udp_relay_forget(r->udp);
		r->udp = NULL;
	}
	event_base_once(serving->svc.base, -1, EV_TIMEOUT,
	    close_listeners_in_child, NULL, &now);
	while ((ch = TAILQ_FIRST(&children)) != NULL) {
		TAILQ_REMOVE(&children, ch, entry);
		free(ch);
	}
	if (forked_hook != NULL)
		forked_hook();
}

void
relay_set_forked_hook(void (*hook)(void))
{
	forked_hook = hook;
}

/* Starts serving an accepted socket, as TLS on a tls: listener. */
static void
serve(struct relay *r, int fd, const struct sockaddr *sa, socklen_t salen,
    int tls)
{
	struct endpoint	*ep;
	char		 name[ADDR_STR_MAX];

	if (!tls) {
		conn_start_fd(&r->svc, fd, sa, salen);
		return;
	}
	if ((ep = tls_endpoint_accept(r->svc.base, fd, r->tls)) == NULL) {
		addr_sa_format(sa, salen, name, sizeof(name));
		log_warnx("%s: cannot start TLS: out of memory", name);
		close(fd);
		return;
	}
	conn_start_socket(&r->svc, ep, fd, sa, salen);
}

static void
fork_conn(struct relay *r, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	struct child	*ch;
	pid_t		 pid;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		log_warnx("cannot serve a connection: out of memory");
		close(fd);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("cannot serve a connection: fork");
		free(ch);
		close(fd);
		return;
	}
	if (pid == 0) {
		free(ch);
		become_child(r);
		serve(r, fd, sa, salen, tls);
		return;
	}
	close(fd);
	conn_skip_id();
	ch->pid = pid;
	ch->relay = r;
	TAILQ_INSERT_TAIL(&children, ch, entry);
	r->svc.active++;
	r->svc.total++;
	log_debug("connection served by process %ld", (long)pid);
}

static void
accept_conn(struct relay *r, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	if (!service_admit(&r->svc, sa, salen))
		close(fd);
	else if (r->conf->fork_mode)
		fork_conn(r, fd, sa, salen, tls);
	else
		serve(r, fd, sa, salen, tls);
}

static void
on_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	accept_conn(arg, fd, sa, salen, 0);
}

static void
on_accept_tls(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	accept_conn(arg, fd, sa, salen, 1);
}

/* Reads certificates, keys and CAs now, while files root alone can read
 * are still readable. Returns -1 with err; the caller frees what is set. */
static int
load_tls(const struct relay_conf *conf, struct tls_server **server,
    struct tls_client **client, char *err, size_t errlen)
{
	if (conf->ncerts > 0 && (*server = tls_server_new(conf->certs,
	    conf->keys, conf->ncerts, err, errlen)) == NULL)
		return -1;
	if (conf->to.tls && (*client = tls_client_new(conf->ca,
	    conf->verify_name != NULL ? conf->verify_name : conf->to.host,
	    err, errlen)) == NULL)
		return -1;
	return 0;
}

int
relay_check_tls(const struct relay_conf *conf, char *err, size_t errlen)
{
	struct tls_server	*server = NULL;
	struct tls_client	*client = NULL;
	int			 rc;

	rc = load_tls(conf, &server, &client, err, errlen);
	tls_server_free(server);
	tls_client_free(client);
	return rc;
}

void
relay_reload_tls(struct relay *r)
{
	const char	*name = r->conf->name[0] ? r->conf->name : "-";
	char		 err[512];

	if (r->tls != NULL) {
		if (tls_server_reload(r->tls, err, sizeof(err)) == -1)
			log_warnx("relay %s: keeping the certificates loaded "
			    "before: %s", name, err);
		else
			log_info("relay %s: certificates reloaded", name);
	}
	if (r->tls_to != NULL && r->conf->ca != NULL) {
		if (tls_client_reload(r->tls_to, err, sizeof(err)) == -1)
			log_warnx("relay %s: keeping the CA certificates "
			    "loaded before: %s", name, err);
		else
			log_info("relay %s: CA certificates reloaded", name);
	}
}

void
relay_reap_children(void (*other)(pid_t, int))
{
	struct child	*ch;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH(ch, &children, entry)
			if (ch->pid == pid)
				break;
		if (ch == NULL) {
			if (other != NULL)
				other(pid, status);
			continue;
		}
		ch->relay->svc.active--;
		TAILQ_REMOVE(&children, ch, entry);
		free(ch);
		if (WIFSIGNALED(status))
			log_warnx("process %ld killed by signal %d",
			    (long)pid, WTERMSIG(status));
	}
}

void
relay_kill_children(void)
{
	struct child	*ch;

	TAILQ_FOREACH(ch, &children, entry)
		kill(ch->pid, SIGTERM);
}

struct relay *
relay_new(struct event_base *base, const struct relay_conf *conf, char *err,
    size_t errlen, int *exitcode)
{
	struct relay	*r;
	size_t		 i, nfds;
	int		 fds[8];

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->listeners = calloc(conf->nlisten, sizeof(*r->listeners))) ==
	    NULL || (r->conf = relay_conf_dup(conf)) == NULL) {
		if (r != NULL)
			free(r->listeners);
		free(r);
		snprintf(err, errlen, "out of memory");
		*exitcode = 71;
		return NULL;
	}
	conf = r->conf;
	service_init(&r->svc, base, &relay_ops);
	r->svc.to = &conf->to;
	r->svc.connect_timeout = conf->connect_timeout;
	r->svc.idle_timeout = conf->idle_timeout;
	r->svc.max_conns = conf->max_conns;
	r->svc.acl = conf->acl;
	r->svc.nacl = conf->nacl;
	r->svc.step = conf->accept_proxy ? &proxy_step : NULL;
	r->svc.handshake_timeout = conf->handshake_timeout;
	r->svc.send_proxy = conf->send_proxy;
	TAILQ_INSERT_TAIL(&relays, r, entry);
	if (load_tls(conf, &r->tls, &r->tls_to, err, errlen) == -1) {
		*exitcode = 66;		/* EX_NOINPUT */
		relay_free(r);
		return NULL;
	}
	r->svc.tls_to = r->tls_to;
	if (conf->to.udp) {
		if ((r->udp = udp_relay_new(base, conf, err, errlen,
		    exitcode)) == NULL) {
			relay_free(r);
			return NULL;
		}
		return r;
	}
	if ((conf->max_conns_per_ip > 0 || conf->rate > 0) &&
	    (r->svc.iplimit = iplimit_new(conf->max_conns_per_ip, conf->rate,
	    IPLIMIT_ENTRIES)) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = 71;
		relay_free(r);
		return NULL;
	}
	/* Sockets systemd bound for a relay of this name replace its own. */
	if (conf->name[0] != '\0' && (nfds = sysd_sockets(conf->name, fds,
	    sizeof(fds) / sizeof(fds[0]))) > 0) {
		if ((r->listeners[0] = listener_adopt(base, fds, nfds,
		    conf->listen[0].tls ? on_accept_tls : on_accept, r, err,
		    errlen)) == NULL) {
			*exitcode = 71;
			relay_free(r);
			return NULL;
		}
		r->nlisteners = 1;
		return r;
	}
	for (i = 0; i < conf->nlisten; i++) {
		r->listeners[i] = listener_bind(base, &conf->listen[i],
		    conf->listen[i].tls ? on_accept_tls : on_accept, r, err,
		    errlen, exitcode);
		if (r->listeners[i] == NULL) {
			relay_free(r);
			return NULL;
		}
		r->nlisteners++;
	}
	return r;
}

void
relay_start(struct relay *r)
{
	size_t	i, j;

	if (r->udp != NULL)
		udp_relay_start(r->udp);
	for (i = 0; i < r->nlisteners; i++) {
		for (j = 0; j < listener_nsockets(r->listeners[i]); j++)
			log_info("listening on %s",
			    listener_name(r->listeners[i], j));
		listener_enable(r->listeners[i]);
	}
}

void
relay_stop_accepting(struct relay *r)
{
	size_t	i;

	if (r->udp != NULL)
		udp_relay_stop(r->udp);
	for (i = 0; i < r->nlisteners; i++)
		listener_disable(r->listeners[i]);
}

void
relay_close_listeners(struct relay *r)
{
	size_t	i;

	/* A flow cannot outlive its socket: the replies leave from it. */
	udp_relay_free(r->udp, "reload");
	r->udp = NULL;
	for (i = 0; i < r->nlisteners; i++)
		listener_free(r->listeners[i]);
	r->nlisteners = 0;
}

void
relay_write_status(const struct relay *r, FILE *fp)
{
	char	addrs[512] = "", conns[256];
	size_t	i, j, off = 0;

	for (i = 0; i < r->nlisteners; i++)
		for (j = 0; j < listener_nsockets(r->listeners[i]) &&
		    off < sizeof(addrs); j++)
			off += (size_t)snprintf(addrs + off, sizeof(addrs) - off,
			    "%s%s", off ? " " : "",
			    listener_name(r->listeners[i], j));
	if (r->udp != NULL) {
		udp_relay_addrs(r->udp, addrs, sizeof(addrs));
		off = strlen(addrs);
		udp_relay_describe(r->udp, conns, sizeof(conns));
	} else
		service_describe(&r->svc, conns, sizeof(conns));
	fprintf(fp, "relay %s: listening on %s; %s\n", r->conf->name[0] ?
	    r->conf->name : "-", off ? addrs : "nothing", conns);
}

const struct relay_conf *
relay_conf(const struct relay *r)
{
	return r->conf;
}

unsigned
relay_active(const struct relay *r)
{
	return r->svc.active;
}

/* Stops accepting and closes every connection ("end=shutdown"). */
static void
relay_stop(struct relay *r)
{
	relay_stop_accepting(r);
	service_close_all(&r->svc, "shutdown");
}

/* inherited: the unix socket files belong to another process. */
static void
free_relay(struct relay *r, int inherited)
{
	size_t	i;

	if (r == NULL)
		return;
	relay_stop(r);
	udp_relay_free(r->udp, "shutdown");
	for (i = 0; i < r->nlisteners; i++) {
		if (inherited)
			listener_free_in_child(r->listeners[i]);
		else
			listener_free(r->listeners[i]);
	}
	TAILQ_REMOVE(&relays, r, entry);
	iplimit_free(r->svc.iplimit);
	tls_server_free(r->tls);
	tls_client_free(r->tls_to);
	free(r->listeners);
	relay_conf_free(r->conf);
	free(r);
}

void
relay_free(struct relay *r)
{
	free_relay(r, in_child);
}

void
relay_free_inherited(struct relay *r)
{
	free_relay(r, 1);
}
