/*
 * Relays: listeners whose connections go to one target, served in every
 * event loop (--workers: each loop has its own listeners and connections,
 * and a connection stays in the loop that accepted it) or, with --fork,
 * each in a child process of its own.
 */
#include <sys/queue.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/iplimit.h"
#include "relay/resolve.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/pipepool.h"
#include "relay/proxy_step.h"
#include "relay/relay.h"
#include "relay/route_step.h"
#include "relay/service.h"
#include "relay/systemd.h"
#include "relay/tls.h"
#include "relay/udp.h"
#include "relay/workers.h"

/* One loop's part of a relay (--workers): its own listeners and
 * connections, touched only from that loop's thread. */
struct shard {
	struct service		 svc;
	struct relay		*relay;
	unsigned		 loop;
	struct listener		**listeners;
	size_t			 nlisteners;
};

struct relay {
	TAILQ_ENTRY(relay)	 entry;
	struct relay_conf	*conf;		/* our own copy */
	struct shard		*shards;	/* one per loop; one with --fork */
	unsigned		 nshards;
	struct tls_server	*tls;		/* for tls: listeners */
	struct tls_client	*tls_to;	/* for a tls: target */
	struct route_table	*routes;	/* --route, or NULL */
	struct udp_relay	*udp;	/* UDP: in place of listeners */
	struct iplimit		*iplimit;	/* shared by the shards, or NULL */
	int			 sysd;		/* listens on systemd's sockets */
	struct refusals		 refusal_log;	/* shared by the shards' logs */
	/* Over every loop: what --max-conns limits and a drain waits for. */
	_Atomic unsigned	 active;
	_Atomic unsigned	 held;		/* what --max-held limits */
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

/* A connection closed in sh's loop: its --max-conns slot is free again.
 * A --fork child exits once its one connection is done. */
static void
on_conn_closed(struct service *svc)
{
	service_release(svc);
	if (in_child && svc->active == 0)
		event_base_loopbreak(svc->base);
}

static const struct service_ops relay_ops = { NULL, NULL, on_conn_closed };

/* Closes the parent's listeners once the accept callback has returned. */
static void
close_listeners_in_child(evutil_socket_t fd, short what, void *arg)
{
	struct relay	*r;
	struct shard	*sh;
	size_t		 i;

	TAILQ_FOREACH(r, &relays, entry) {
		sh = &r->shards[0];
		for (i = 0; i < sh->nlisteners; i++)
			listener_free_in_child(sh->listeners[i]);
		sh->nlisteners = 0;
	}
}

/* The child drops everything of the parent's but this one connection.
 * --fork runs with one loop, so every relay has the one shard. */
static void
become_child(struct relay *serving)
{
	struct timeval	 now = { 0, 0 };
	struct relay	*r;
	struct child	*ch;
	size_t		 i;

	in_child = 1;
	if (event_reinit(serving->shards[0].svc.base) == -1)
		fatalx(EX_OSERR, "event_reinit failed in --fork child");
	resolve_after_fork();
	pipepool_drain();
	TAILQ_FOREACH(r, &relays, entry) {
		for (i = 0; i < r->shards[0].nlisteners; i++)
			listener_disable(r->shards[0].listeners[i]);
		r->shards[0].svc.active = 0;
		atomic_store(&r->active, r == serving ? 1 : 0);
		udp_relay_forget(r->udp);
		r->udp = NULL;
	}
	event_base_once(serving->shards[0].svc.base, -1, EV_TIMEOUT,
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
serve(struct shard *sh, int fd, const struct sockaddr *sa, socklen_t salen,
    int tls)
{
	struct endpoint	*ep;
	char		 name[ADDR_STR_MAX];

	if (!tls) {
		conn_start_fd(&sh->svc, fd, sa, salen);
		return;
	}
	if ((ep = tls_endpoint_accept(sh->svc.base, fd, sh->relay->tls)) ==
	    NULL) {
		addr_sa_format(sa, salen, name, sizeof(name));
		log_warnx("%s: cannot start TLS: out of memory", name);
		close(fd);
		return;
	}
	conn_start_socket(&sh->svc, ep, fd, sa, salen);
}

static void
fork_conn(struct shard *sh, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	struct relay	*r = sh->relay;
	struct child	*ch;
	pid_t		 pid;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		log_warnx("cannot serve a connection: out of memory");
		service_release(&sh->svc);
		close(fd);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("cannot serve a connection: fork");
		service_release(&sh->svc);
		free(ch);
		close(fd);
		return;
	}
	if (pid == 0) {
		free(ch);
		become_child(r);
		serve(sh, fd, sa, salen, tls);
		return;
	}
	close(fd);
	conn_skip_id();
	ch->pid = pid;
	ch->relay = r;
	TAILQ_INSERT_TAIL(&children, ch, entry);
	sh->svc.active++;
	sh->svc.total++;
	log_debug("connection served by process %ld", (long)pid);
}

/* A --max-conns slot (counted over every loop) is taken at admission,
 * before the connection exists, and given back when it closes. */
static void
accept_conn(struct shard *sh, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	uint64_t	 total = sh->svc.total;

	if (!service_admit(&sh->svc, sa, salen))
		close(fd);
	else if (sh->relay->conf->fork_mode)
		fork_conn(sh, fd, sa, salen, tls);
	else {
		serve(sh, fd, sa, salen, tls);
		/* Not even started (out of memory): it will never close. */
		if (sh->svc.total == total)
			service_release(&sh->svc);
	}
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
    struct tls_client **client, int checking, char *err, size_t errlen)
{
	char	 cert[4096], key[4096], *certs[1] = { cert }, *keys[1] = { key };

	/* ACME's pair lives in --acme-dir (acme/store.h names it); --check
	 * before the first start finds none yet. */
	if (conf->acme_dir != NULL) {
		snprintf(cert, sizeof(cert), "%s/cert.pem", conf->acme_dir);
		snprintf(key, sizeof(key), "%s/key.pem", conf->acme_dir);
		if ((!checking || access(cert, F_OK) == 0) && (*server = tls_server_new(certs, keys, 1, conf->alpn, err,
		    errlen)) == NULL)
			return -1;
	}
	if (conf->ncerts > 0 && (*server = tls_server_new(conf->certs,
	    conf->keys, conf->ncerts, conf->alpn, err, errlen)) == NULL)
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

	rc = load_tls(conf, &server, &client, 1, err, errlen);
	tls_server_free(server);
	tls_client_free(client);
	return rc;
}

/* --ca again, for --to tls: and for every route to a tls: target (the
 * system store is read once). Returns how many contexts took it, or -1
 * with err. */
static int
reload_ca(struct relay *r, char *err, size_t errlen)
{
	int	n = 0, routed = 0;

	if (r->conf->ca == NULL)
		return 0;
	if (r->tls_to != NULL) {
		if (tls_client_reload(r->tls_to, err, errlen) == -1)
			return -1;
		n++;
	}
	if (r->routes != NULL && (routed = route_table_reload_tls(r->routes,
	    err, errlen)) == -1)
		return -1;
	return n + routed;
}

void
relay_reload_tls(struct relay *r)
{
	const char	*name = r->conf->name[0] ? r->conf->name : "-";
	char		 err[512];
	int		 n;

	if (r->tls != NULL) {
		if (tls_server_reload(r->tls, err, sizeof(err)) == -1)
			log_warnx("relay %s: keeping the certificates loaded "
			    "before: %s", name, err);
		else
			log_info("relay %s: certificates reloaded", name);
	}
	if ((n = reload_ca(r, err, sizeof(err))) == -1)
		log_warnx("relay %s: keeping the CA certificates loaded "
		    "before: %s", name, err);
	else if (n > 0)
		log_info("relay %s: CA certificates reloaded", name);
}

/*
 * Whether conf's connections may spread over the loops. --fork: children
 * of a process with several loops would inherit them. UDP flows stay in
 * the main loop. TLS relays too, for now: a certificate reload replaces
 * contexts that handshakes in other threads would be reading.
 */
static int
spreads(const struct relay_conf *conf)
{
	size_t	i;

	if (conf->fork_mode || conf->to.udp || conf->to.tls ||
	    conf->ncerts > 0)
		return 0;
	for (i = 0; i < conf->nroutes; i++)
		if (conf->routes[i].to.tls)
			return 0;
	for (i = 0; i < conf->nlisten; i++)
		if (conf->listen[i].tls)
			return 0;
	return 1;
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
		ch->relay->shards[0].svc.active--;
		service_release(&ch->relay->shards[0].svc);
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

/* What the main thread asks a loop to do with its shard. */
struct shard_job {
	struct shard	*sh;
	char		*err;
	size_t		 errlen;
	int		*exitcode;
	int		 rc;
	struct service_counts counts;
	uint64_t	*routed;	/* summed over the loops */
};

/*
 * Listener i of sh: the one a reload's predecessor parked for its address
 * (listener.c says why), else systemd's sockets (fds, in loop 0), a clone
 * of shard 0's (later loops) or a new bind. NULL with the job's message.
 */
static struct listener *
open_listener(struct shard_job *job, size_t i, const int *fds, size_t nfds,
    listener_cb *cb)
{
	struct shard		*sh = job->sh, *first = &sh->relay->shards[0];
	const struct relay_conf	*conf = sh->relay->conf;
	struct event_base	*base = sh->svc.base;
	struct listener		*l;

	if (!sh->relay->sysd && (l = listener_take(base, &conf->listen[i],
	    sh->loop, sh->relay->nshards == 1, cb, sh)) != NULL)
		return l;
	if (sh->loop > 0)
		return listener_clone(base, first->listeners[i], cb, sh,
		    job->err, job->errlen, job->exitcode);
	if (nfds > 0) {
		*job->exitcode = EX_OSERR;
		return listener_adopt(base, fds, nfds, cb, sh, job->err,
		    job->errlen);
	}
	return (sh->relay->nshards > 1 ? listener_bind_reuseport :
	    listener_bind)(base, &conf->listen[i], cb, sh, job->err,
	    job->errlen, job->exitcode);
}

/* Shard 0 binds (or takes systemd's sockets); later ones clone them. */
static void
shard_open(void *arg)
{
	struct shard_job	*job = arg;
	struct shard		*sh = job->sh, *first = &sh->relay->shards[0];
	const struct relay_conf	*conf = sh->relay->conf;
	struct listener		*l;
	listener_cb		*cb;
	size_t			 i, n = conf->nlisten, nfds = 0;
	int			 fds[8];

	/* Sockets systemd bound for a relay of this name replace its own. */
	if (sh->loop == 0 && conf->name[0] != '\0')
		nfds = sysd_sockets(conf->name, fds, sizeof(fds) /
		    sizeof(fds[0]));
	if (sh->loop == 0)
		sh->relay->sysd = nfds > 0;
	if (sh->loop > 0)
		n = first->nlisteners;
	else if (nfds > 0)
		n = 1;
	job->rc = -1;
	if (n == 0) {
		snprintf(job->err, job->errlen, "no listen line, and systemd "
		    "passed no socket named %s", conf->name);
		*job->exitcode = EX_CONFIG;
		return;
	}
	for (i = 0; i < n; i++) {
		/* A TLS relay has the one shard: clones are plain TCP. */
		cb = sh->loop == 0 && conf->nlisten > 0 &&
		    conf->listen[nfds > 0 ? 0 : i].tls ? on_accept_tls :
		    on_accept;
		if ((l = open_listener(job, i, fds, nfds, cb)) == NULL)
			return;
		sh->listeners[sh->nlisteners++] = l;
	}
	job->rc = 0;
}

/* One loop's service: the relay's settings, its slots and limits shared
 * by every loop. Returns -1 when out of memory. */
static int
shard_init(struct relay *r, struct shard *sh, unsigned loop,
    struct event_base *base)
{
	const struct relay_conf	*conf = r->conf;

	service_init(&sh->svc, base, &relay_ops);
	sh->svc.to = &conf->to;
	sh->svc.connect_timeout = conf->connect_timeout;
	sh->svc.idle_timeout = conf->idle_timeout;
	sh->svc.max_conns = conf->max_conns;
	sh->svc.conn_slots = &r->active;
	sh->svc.acl = conf->acl;
	sh->svc.nacl = conf->nacl;
	sh->svc.step = conf->accept_proxy ? &proxy_step :
	    conf->acme_dir != NULL ? &acme_route_step :
	    r->routes != NULL ? &route_step : NULL;
	sh->svc.routes = r->routes;
	sh->svc.handshake_timeout = conf->handshake_timeout;
	sh->svc.send_proxy = conf->send_proxy;
	sh->svc.tls_to = r->tls_to;
	sh->svc.connect_retry = conf->connect_retry;
	sh->svc.max_held = conf->max_held;
	sh->svc.held_slots = &r->held;
	sh->svc.iplimit = r->iplimit;
	sh->svc.refusal_log = &r->refusal_log;
	sh->relay = r;
	sh->loop = loop;
	if ((sh->listeners = calloc(conf->nlisten > 0 ? conf->nlisten : 1,
	    sizeof(*sh->listeners))) == NULL)
		return -1;
	if (r->routes != NULL && (sh->svc.routed = calloc(conf->nroutes + 1,
	    sizeof(*sh->svc.routed))) == NULL)
		return -1;
	return 0;
}

/* relay_new's way out when memory ran out. */
static struct relay *
relay_oom(struct relay *r, char *err, size_t errlen, int *exitcode)
{
	relay_free(r);
	snprintf(err, errlen, "out of memory");
	*exitcode = EX_OSERR;
	return NULL;
}

struct relay *
relay_new(struct event_base *base, const struct relay_conf *conf, char *err,
    size_t errlen, int *exitcode)
{
	struct shard_job	 job = { NULL, err, errlen, exitcode, 0, { 0 }, NULL };
	struct relay		*r;
	struct shard		*sh;
	unsigned		 i;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->conf = relay_conf_dup(conf)) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	conf = r->conf;
	r->nshards = spreads(conf) ? workers_count() : 1;
	TAILQ_INSERT_TAIL(&relays, r, entry);
	if (load_tls(conf, &r->tls, &r->tls_to, 0, err, errlen) == -1 ||
	    (conf->nroutes > 0 && (r->routes = route_table_new(conf->routes,
	    conf->nroutes, conf->has_to, conf->ca, conf->verify_name, err,
	    errlen)) == NULL)) {
		*exitcode = EX_NOINPUT;
		relay_free(r);
		return NULL;
	}
	if ((r->shards = calloc(r->nshards, sizeof(*r->shards))) == NULL) {
		r->nshards = 0;
		return relay_oom(r, err, errlen, exitcode);
	}
	/* UDP has no per-address limits (the config refuses them). */
	if (!conf->to.udp && (conf->max_conns_per_ip > 0 || conf->rate > 0) &&
	    (r->iplimit = iplimit_new(conf->max_conns_per_ip, conf->rate,
	    IPLIMIT_ENTRIES)) == NULL)
		return relay_oom(r, err, errlen, exitcode);
	for (i = 0; i < r->nshards; i++) {
		sh = &r->shards[i];
		if (shard_init(r, sh, i, i == 0 ? base : workers_base(i)) == -1)
			return relay_oom(r, err, errlen, exitcode);
		if (i == 0 && conf->to.udp) {
			if ((r->udp = udp_relay_new(base, conf, err, errlen,
			    exitcode)) == NULL) {
				relay_free(r);
				return NULL;
			}
			return r;
		}
		job.sh = sh;
		workers_call(i, shard_open, &job);
		if (job.rc == -1) {
			relay_free(r);
			return NULL;
		}
	}
	return r;
}

static void
shard_enable(void *arg)
{
	struct shard	*sh = arg;
	size_t		 i, j;

	for (i = 0; i < sh->nlisteners; i++) {
		for (j = 0; sh->loop == 0 &&
		    j < listener_nsockets(sh->listeners[i]); j++)
			log_info("listening on %s",
			    listener_name(sh->listeners[i], j));
		listener_enable(sh->listeners[i]);
	}
}

void
relay_start(struct relay *r)
{
	unsigned	i;

	if (r->udp != NULL)
		udp_relay_start(r->udp);
	for (i = 0; i < r->nshards; i++)
		workers_call(i, shard_enable, &r->shards[i]);
}

static void
shard_disable(void *arg)
{
	struct shard	*sh = arg;
	size_t		 i;

	for (i = 0; i < sh->nlisteners; i++)
		listener_disable(sh->listeners[i]);
}

void
relay_stop_accepting(struct relay *r)
{
	unsigned	i;

	if (r->udp != NULL)
		udp_relay_stop(r->udp);
	for (i = 0; i < r->nshards; i++)
		workers_call(i, shard_disable, &r->shards[i]);
}

/* inherited: the unix socket files belong to another process. */
static void
close_listeners(struct shard *sh, int inherited)
{
	size_t	i;

	for (i = 0; i < sh->nlisteners; i++) {
		if (inherited)
			listener_free_in_child(sh->listeners[i]);
		else
			listener_free(sh->listeners[i]);
	}
	sh->nlisteners = 0;
}

static void
shard_close_listeners(void *arg)
{
	close_listeners(arg, in_child);
}

static void
shard_park_listeners(void *arg)
{
	struct shard	*sh = arg;
	size_t		 i;

	for (i = 0; i < sh->nlisteners; i++)
		listener_park(sh->listeners[i], sh->loop);
	sh->nlisteners = 0;
}

void
relay_park_listeners(struct relay *r)
{
	unsigned	i;

	/* A flow cannot outlive its socket: the replies leave from it. */
	udp_relay_free(r->udp, "reload");
	r->udp = NULL;
	/* Clones first: they may watch shard 0's sockets. */
	for (i = r->nshards; i-- > 0;)
		workers_call(i, shard_park_listeners, &r->shards[i]);
}

/* listener_close_parked's keep: whether a relay of the config in arg
 * listens on spec's address. */
static int
listened_on(const struct addr_spec *spec, const void *arg)
{
	const struct config	*cfg = arg;
	size_t			 i, j;

	for (i = 0; i < cfg->nrelays; i++)
		for (j = 0; j < cfg->relays[i]->nlisten; j++)
			if (listener_same_address(spec,
			    &cfg->relays[i]->listen[j]))
				return 1;
	return 0;
}

void
relay_close_parked(const struct config *keep)
{
	listener_close_parked(keep != NULL ? listened_on : NULL, keep);
}

/* Adds the shard's counts to the job's. */
static void
shard_count(void *arg)
{
	struct shard_job	*job = arg;
	const struct service	*svc = &job->sh->svc;
	size_t			 i;

	service_count(svc, &job->counts);
	for (i = 0; job->routed != NULL && svc->routes != NULL &&
	    i <= svc->routes->n; i++)
		job->routed[i] += svc->routed[i];
}

/* "routes for relay web: blog.example.org=3 *.example.org=1 default=0" */
static void
write_routes(const struct relay *r, const uint64_t *routed, FILE *fp)
{
	size_t	i;

	fprintf(fp, "routes for relay %s:", r->conf->name[0] ?
	    r->conf->name : "-");
	for (i = 0; i < r->conf->nroutes; i++)
		fprintf(fp, " %s=%" PRIu64, r->conf->routes[i].name, routed[i]);
	fprintf(fp, " %s=%" PRIu64 "\n", r->conf->has_to ? "default" :
	    "unrouted", routed[i]);
}

size_t
relay_addrs(const struct relay *r, char *buf, size_t len)
{
	const struct shard	*first = &r->shards[0];
	size_t			 i, j, n = 0, off = 0;

	buf[0] = '\0';
	if (r->udp != NULL) {
		udp_relay_addrs(r->udp, buf, len);
		return buf[0] != '\0';
	}
	for (i = 0; i < first->nlisteners; i++)
		for (j = 0; j < listener_nsockets(first->listeners[i]) &&
		    off < len; j++, n++)
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			    off ? " " : "", listener_name(first->listeners[i],
			    j));
	return n;
}

void
relay_get_stats(const struct relay *r, struct relay_stats *st)
{
	struct shard_job	job = { 0 };
	char			addrs[512];
	unsigned		i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < r->nshards; i++) {
		job.sh = &r->shards[i];
		workers_call(i, shard_count, &job);
	}
	st->counts = job.counts;
	st->udp = r->conf->to.udp;
	if (r->udp != NULL)
		udp_relay_count(r->udp, &st->udp_counts);
	st->nsockets = relay_addrs(r, addrs, sizeof(addrs));
}

void
relay_write_status(const struct relay *r, FILE *fp)
{
	struct shard_job	 job = { 0 };
	uint64_t		*routed = NULL;
	uint64_t		 before;
	const char		*name = r->conf->name[0] ? r->conf->name : "-";
	char			 addrs[512], conns[512], loops[1024] = "";
	size_t			 i, n, loff = 0;

	n = relay_addrs(r, addrs, sizeof(addrs));
	if (r->routes != NULL &&
	    (routed = calloc(r->conf->nroutes + 1, sizeof(*routed))) == NULL) {
		fprintf(fp, "relay %s: out of memory\n", name);
		return;
	}
	job.routed = routed;
	for (i = 0; i < r->nshards; i++) {
		before = job.counts.total;
		job.sh = &r->shards[i];
		workers_call((unsigned)i, shard_count, &job);
		if (loff < sizeof(loops))
			loff += (size_t)snprintf(loops + loff, sizeof(loops) -
			    loff, " %" PRIu64, job.counts.total - before);
	}
	service_counts_describe(&job.counts, conns, sizeof(conns));
	if (r->udp != NULL)
		udp_relay_describe(r->udp, conns, sizeof(conns));
	fprintf(fp, "relay %s: listening on %s; %s\n", name, n ? addrs :
	    "nothing", conns);
	if (r->nshards > 1)
		fprintf(fp, "accepted per loop for relay %s:%s\n", name, loops);
	if (r->routes != NULL)
		write_routes(r, routed, fp);
	free(routed);
}

const struct relay_conf *
relay_conf(const struct relay *r)
{
	return r->conf;
}

unsigned
relay_active(const struct relay *r)
{
	return atomic_load(&r->active);
}

/* Stops accepting, closes every connection ("end=shutdown") and the
 * listeners, in the shard's own loop. */
static void
shard_free(void *arg)
{
	struct shard	*sh = arg;

	shard_disable(sh);
	service_close_all(&sh->svc, "shutdown");
	shard_close_listeners(sh);
}

/* The same where the files are another process's. */
static void
shard_free_inherited(void *arg)
{
	struct shard	*sh = arg;

	shard_disable(sh);
	service_close_all(&sh->svc, "shutdown");
	close_listeners(sh, 1);
}

static void
free_relay(struct relay *r, void (*free_shard)(void *))
{
	unsigned	i;

	if (r == NULL)
		return;
	udp_relay_free(r->udp, "shutdown");
	for (i = r->shards != NULL ? r->nshards : 0; i-- > 0;) {
		if (r->shards[i].listeners == NULL)
			continue;	/* relay_new failed before it */
		workers_call(i, free_shard, &r->shards[i]);
		free(r->shards[i].listeners);
		free(r->shards[i].svc.routed);
	}
	TAILQ_REMOVE(&relays, r, entry);
	iplimit_free(r->iplimit);
	tls_server_free(r->tls);
	tls_client_free(r->tls_to);
	route_table_free(r->routes);
	free(r->shards);
	relay_conf_free(r->conf);
	free(r);
}

void
relay_free(struct relay *r)
{
	free_relay(r, shard_free);
}

void
relay_free_inherited(struct relay *r)
{
	free_relay(r, shard_free_inherited);
}
