/*
 * Lookups run in glibc's getaddrinfo_a worker threads. Each finished
 * request is announced by writing its pointer into a pipe (a pointer is
 * far below PIPE_BUF, so the write is atomic), and the loop side reads
 * the pipe and calls back. Nothing but that write happens off the loop.
 * Each loop's thread (--workers) has its own pipe, so an answer comes
 * back to the loop that asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/log.h"
#include "relay/resolve.h"

struct resolve {
	struct gaicb	 cb;
	struct addrinfo	 hints;
	struct sigevent	 sev;
	resolve_cb	*done;
	void		*arg;
	int		 abandoned;	/* cancelled while a worker had it */
	int		 notify;	/* the asking loop's pipe */
	char		*host;
	char		*port;
};

static _Thread_local int		 notify_fd[2] = { -1, -1 };
static _Thread_local struct event	*notify_ev;

static void
resolve_free(struct resolve *r)
{
	if (r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	free(r->host);
	free(r->port);
	free(r);
}

/* Runs in a resolver thread. */
static void
announce(union sigval sv)
{
	struct resolve	*r = sv.sival_ptr;
	ssize_t		 n;

	do
		n = write(r->notify, &r, sizeof(r));
	while (n == -1 && errno == EINTR);
}

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct resolve	*r;
	struct addrinfo	*res;
	int		 rc;

	while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		if (r->abandoned) {
			resolve_free(r);
			continue;
		}
		rc = gai_error(&r->cb);
		res = r->cb.ar_result;
		r->cb.ar_result = NULL;
		r->done(rc, rc == 0 ? res : NULL, r->arg);
		if (rc != 0 && res != NULL)
			freeaddrinfo(res);
		resolve_free(r);
	}
}

static int
notify_setup(struct event_base *base)
{
	if (notify_ev != NULL)
		return 0;
	/* The reading end is non-blocking; the writers may block briefly. */
	if (pipe2(notify_fd, O_CLOEXEC) == -1)
		return -1;
	fcntl(notify_fd[0], F_SETFL, O_NONBLOCK);
	notify_ev = event_new(base, notify_fd[0], EV_READ | EV_PERSIST,
	    on_notify, NULL);
	if (notify_ev == NULL || event_add(notify_ev, NULL) == -1) {
		resolve_shutdown();
		return -1;
	}
	return 0;
}

struct resolve *
resolve_start(struct event_base *base, const char *host, const char *port,
    resolve_cb *done, void *arg)
{
	struct gaicb	*list[1];
	struct resolve	*r;

	if (notify_setup(base) == -1 || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->host = strdup(host)) == NULL ||
	    (r->port = strdup(port)) == NULL) {
		resolve_free(r);
		return NULL;
	}
	r->done = done;
	r->arg = arg;
	r->notify = notify_fd[1];
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->hints.ai_protocol = IPPROTO_TCP;
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->port;
	r->cb.ar_request = &r->hints;
	r->sev.sigev_notify = SIGEV_THREAD;
	r->sev.sigev_value.sival_ptr = r;
	r->sev.sigev_notify_function = announce;
	list[0] = &r->cb;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev) != 0) {
		resolve_free(r);
		return NULL;
	}
	return r;
}

void
resolve_cancel(struct resolve *r)
{
	/* Still queued: gone for good. Otherwise a worker has it and will
	 * announce it; free it then. */
	if (gai_cancel(&r->cb) == EAI_CANCELED)
		resolve_free(r);
	else
		r->abandoned = 1;
}

void
resolve_after_fork(void)
{
	if (notify_ev != NULL)
		event_free(notify_ev);
	notify_ev = NULL;
	if (notify_fd[0] != -1)
		close(notify_fd[0]);
	if (notify_fd[1] != -1)
		close(notify_fd[1]);
	notify_fd[0] = notify_fd[1] = -1;
}

void
resolve_shutdown(void)
{
	resolve_after_fork();
}
