/*
 * Worker loops. The main thread hands a function to a worker by pointing
 * the worker's call slot at it and activating a pre-made event in the
 * worker's base (libevent's pthread locking makes event_active safe from
 * another thread and wakes the loop); it then waits on a condition
 * variable until the function has run. Nothing is allocated per call, so
 * a call cannot fail, and a worker never waits for the main thread, so
 * the two cannot deadlock.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "relay/bufpool.h"
#include "relay/log.h"
#include "relay/pipepool.h"
#include "relay/poller.h"
#include "relay/resolve.h"
#include "relay/workers.h"

struct call {
	void	(*fn)(void *);
	void	 *arg;
	int	  done;
};

struct worker {
	struct event_base	*base;
	struct event		*call_ev;
	pthread_t		 thread;
	int			 running;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct call		*pending;
};

static struct worker		 workers[WORKERS_MAX];
static unsigned			 nworkers;
static _Thread_local int	 in_worker;

int
workers_config_forks(const struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nrelays; i++)
		if (cfg->relays[i]->fork_mode)
			return 1;
	return 0;
}

unsigned
workers_wanted(const struct config *cfg)
{
	long	n;

	if (cfg->workers > 0)
		return cfg->workers;
	if (workers_config_forks(cfg))
		return 1;
	if ((n = sysconf(_SC_NPROCESSORS_ONLN)) < 1)
		return 1;
	return n > WORKERS_MAX ? WORKERS_MAX : (unsigned)n;
}

static void
run_call(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct call	*c;

	pthread_mutex_lock(&w->lock);
	c = w->pending;
	w->pending = NULL;
	pthread_mutex_unlock(&w->lock);
	c->fn(c->arg);
	pthread_mutex_lock(&w->lock);
	c->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void
free_loops(void)
{
	unsigned	i;

	for (i = 0; i < nworkers; i++) {
		if (workers[i].call_ev != NULL)
			event_free(workers[i].call_ev);
		poller_free(workers[i].base);
		event_base_free(workers[i].base);
		pthread_mutex_destroy(&workers[i].lock);
		pthread_cond_destroy(&workers[i].cond);
		memset(&workers[i], 0, sizeof(workers[i]));
	}
	nworkers = 0;
}

struct event_base *
workers_init(unsigned n, char *err, size_t errlen)
{
	struct worker	*w;

	/* Locking costs a little on every event: only when it is needed. */
	if (n > 1 && evthread_use_pthreads() == -1) {
		snprintf(err, errlen, "cannot enable libevent's thread support");
		return NULL;
	}
	for (nworkers = 0; nworkers < n; nworkers++) {
		w = &workers[nworkers];
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		/* The poller now, not at the first connection: a loop's
		 * descriptors are all there before it serves. */
		if ((w->base = event_base_new()) == NULL || (n > 1 &&
		    (w->call_ev = event_new(w->base, -1, 0, run_call, w)) ==
		    NULL) || poller_get(w->base) == NULL) {
			if (w->base != NULL)
				nworkers++;
			free_loops();
			snprintf(err, errlen, "cannot create event loop %u",
			    nworkers + 1);
			return NULL;
		}
	}
	return workers[0].base;
}

int
workers_reinit(void)
{
	unsigned	i;

	for (i = 0; i < nworkers; i++)
		if (event_reinit(workers[i].base) == -1)
			return -1;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;

	in_worker = 1;
	(void)log_batch(w->base);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* What this thread cached for itself. */
	log_batch_end();
	resolve_shutdown();
	bufpool_drain();
	pipepool_drain();
	return NULL;
}

int
workers_run(char *err, size_t errlen)
{
	static const int	 sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT,
				    SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE, SIGALRM };
	sigset_t		 block, old;
	unsigned		 i;
	size_t			 j;
	int			 rc = 0;

	/* Signals are the main loop's business: workers never take them. */
	sigemptyset(&block);
	for (j = 0; j < sizeof(sigs) / sizeof(sigs[0]); j++)
		sigaddset(&block, sigs[j]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 1; i < nworkers && rc == 0; i++) {
		if ((rc = pthread_create(&workers[i].thread, NULL, worker_main,
		    &workers[i])) != 0)
			snprintf(err, errlen, "cannot start worker thread %u: "
			    "%s", i, strerror(rc));
		else
			workers[i].running = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0 ? 0 : -1;
}

unsigned
workers_count(void)
{
	return nworkers > 0 ? nworkers : 1;
}

struct event_base *
workers_base(unsigned i)
{
	return workers[i].base;
}

int
workers_on_main(void)
{
	return !in_worker;
}

void
workers_call(unsigned i, void (*fn)(void *), void *arg)
{
	struct worker	*w = &workers[i];
	struct call	 c = { fn, arg, 0 };

	if (i == 0 || !w->running) {
		fn(arg);
		return;
	}
	pthread_mutex_lock(&w->lock);
	w->pending = &c;
	pthread_mutex_unlock(&w->lock);
	event_active(w->call_ev, EV_TIMEOUT, 0);
	pthread_mutex_lock(&w->lock);
	while (!c.done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void
stop_loop(void *arg)
{
	event_base_loopbreak(arg);
}

void
workers_shutdown(void)
{
	unsigned	i;

	for (i = 1; i < nworkers; i++) {
		if (!workers[i].running)
			continue;
		workers_call(i, stop_loop, workers[i].base);
		pthread_join(workers[i].thread, NULL);
		workers[i].running = 0;
	}
	free_loops();
}
