/*
 * Relays: accept, enforce --max-conns, and either serve the connection in
 * this event loop or, with --fork, in a child process of its own.
 */
#include <sys/queue.h>
#include <sys/wait.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/dial.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/relay.h"
#include "relay/relay_priv.h"

struct child {
	TAILQ_ENTRY(child)	 entry;
	pid_t			 pid;
	struct relay		*relay;
};

int				 relay_in_child;
static TAILQ_HEAD(, relay)	 relays = TAILQ_HEAD_INITIALIZER(relays);
static TAILQ_HEAD(, child)	 children = TAILQ_HEAD_INITIALIZER(children);

static void
reject(struct relay *r, int fd, const struct sockaddr *sa, socklen_t salen)
{
	char	name[ADDR_STR_MAX];

	close(fd);
	r->rejected++;
	addr_sa_format(sa, salen, name, sizeof(name));
	log_warnx("rejected %s: max-conns %u reached (%" PRIu64 " rejected)",
	    name, r->conf->max_conns, r->rejected);
}

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

	relay_in_child = 1;
	if (event_reinit(serving->base) == -1)
		fatalx(71, "event_reinit failed in --fork child");
	dial_after_fork();
	TAILQ_FOREACH(r, &relays, entry) {
		for (i = 0; i < r->nlisteners; i++)
			listener_disable(r->listeners[i]);
		r->active = 0;
	}
	event_base_once(serving->base, -1, EV_TIMEOUT,
	    close_listeners_in_child, NULL, &now);
	while ((ch = TAILQ_FIRST(&children)) != NULL) {
		TAILQ_REMOVE(&children, ch, entry);
		free(ch);
	}
}

static void
fork_conn(struct relay *r, int fd, const struct sockaddr *sa,
    socklen_t salen, uint64_t id)
{
	struct child	*ch;
	pid_t		 pid;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		log_warnx("conn %" PRIu64 ": out of memory", id);
		close(fd);
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("conn %" PRIu64 ": fork", id);
		free(ch);
		close(fd);
		return;
	}
	if (pid == 0) {
		free(ch);
		become_child(r);
		conn_new(r, fd, sa, salen, id);
		return;
	}
	close(fd);
	ch->pid = pid;
	ch->relay = r;
	TAILQ_INSERT_TAIL(&children, ch, entry);
	r->active++;
	log_debug("conn %" PRIu64 " served by process %ld", id, (long)pid);
}

static void
on_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct relay	*r = arg;

	if (r->conf->max_conns > 0 && r->active >= r->conf->max_conns) {
		reject(r, fd, sa, salen);
		return;
	}
	r->total++;
	if (r->conf->fork_mode)
		fork_conn(r, fd, sa, salen, ++r->next_id);
	else
		conn_new(r, fd, sa, salen, ++r->next_id);
}

void
relay_child_done(struct relay *r)
{
	event_base_loopbreak(r->base);
}

void
relay_reap_children(void)
{
	struct child	*ch, *next;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (ch = TAILQ_FIRST(&children); ch != NULL; ch = next) {
			next = TAILQ_NEXT(ch, entry);
			if (ch->pid != pid)
				continue;
			ch->relay->active--;
			TAILQ_REMOVE(&children, ch, entry);
			free(ch);
			break;
		}
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
	size_t		 i;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->listeners = calloc(conf->nlisten, sizeof(*r->listeners))) ==
	    NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		*exitcode = 71;
		return NULL;
	}
	r->conf = conf;
	r->base = base;
	TAILQ_INIT(&r->conns);
	addr_spec_format(&conf->to, r->target, sizeof(r->target));
	TAILQ_INSERT_TAIL(&relays, r, entry);
	for (i = 0; i < conf->nlisten; i++) {
		r->listeners[i] = listener_bind(base, &conf->listen[i],
		    on_accept, r, err, errlen, exitcode);
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
	char	names[512];
	size_t	i;

	for (i = 0; i < r->nlisteners; i++) {
		listener_describe(r->listeners[i], names, sizeof(names));
		log_info("listening on %s", names);
		listener_enable(r->listeners[i]);
	}
}

void
relay_stop(struct relay *r)
{
	struct conn	*c;
	size_t		 i;

	for (i = 0; i < r->nlisteners; i++)
		listener_disable(r->listeners[i]);
	while ((c = TAILQ_FIRST(&r->conns)) != NULL)
		conn_close(c, "shutdown");
}

void
relay_free(struct relay *r)
{
	size_t	i;

	if (r == NULL)
		return;
	relay_stop(r);
	for (i = 0; i < r->nlisteners; i++)
		listener_free(r->listeners[i]);
	TAILQ_REMOVE(&relays, r, entry);
	free(r->listeners);
	free(r);
}
