/*
 * The poller (relay/poller.h). Its epoll set is one persistent read event
 * of the loop's libevent base: when that fires, the set's edges are taken
 * without waiting and each socket's callback runs for what it wants and is
 * ready for. Registering once and letting close() unregister saves the
 * epoll_ctl calls that adding and removing interest as it changes costs
 * (four to six per relayed connection); the price is one epoll_wait more
 * per loop pass that has sockets to report.
 *
 * Each descriptor has a slot, indexed by its number. The set's events
 * carry the number and the registration's generation, so an event of a
 * registration gone stale (its file still open in a forked child, which
 * keeps it in the set after our close) is recognised and dropped. A slot
 * still wanted and ready after its callback (a pump round ran out of
 * budget) goes on a run list, reported again after the other sockets.
 */
#include <sys/epoll.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/endpoint.h"
#include "relay/poller.h"

#define POLL_EVENTS	64	/* edges taken per wakeup; the rest wait */

struct slot {
	poller_cb	*cb;		/* NULL: no owner */
	void		*arg;
	uint32_t	 gen;		/* of the registration */
	int		 next;		/* on the run list */
	uint8_t		 want;		/* EP_READ, EP_WRITE */
	uint8_t		 ready;		/* since the last edge, not used up */
	uint8_t		 hup;		/* the peer's EOF has arrived */
	uint8_t		 queued;	/* on the run list */
	uint8_t		 offered;	/* registered, waiting for an owner */
};

struct poller {
	struct event_base	*base;
	struct event		 ev;	/* the set is readable */
	struct event		 later;	/* the run list, next pass */
	int			 epfd;
	unsigned		 forks;	/* fork_count when made */
	uint32_t		 gen;
	struct slot		*slots;
	int			 nslots;
	int			 head, tail;	/* the run list, -1: empty */
	struct poller		*next;
};

static pthread_mutex_t			 lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t			 once = PTHREAD_ONCE_INIT;
static struct poller			*pollers;
static unsigned				 fork_count;
/* The last poller asked for in this thread: the lookup's fast path. */
static _Thread_local struct event_base	*last_base;
static _Thread_local struct poller	*last;

static void	on_poll(evutil_socket_t, short, void *);
static void	on_later(evutil_socket_t, short, void *);

/* A forked child must not take its parent's edges from the shared set. */
static void
forked(void)
{
	fork_count++;
}

static void
watch_forks(void)
{
	pthread_atfork(NULL, NULL, forked);
}

static int
arm(struct poller *p)
{
	if ((p->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	event_assign(&p->ev, p->base, p->epfd, EV_READ | EV_PERSIST, on_poll,
	    p);
	evtimer_assign(&p->later, p->base, on_later, p);
	if (event_add(&p->ev, NULL) == -1) {
		close(p->epfd);
		p->epfd = -1;
		errno = ENOMEM;
		return -1;
	}
	p->forks = fork_count;
	return 0;
}

/* In a forked child: a set of its own, without the parent's sockets. */
static int
renew(struct poller *p)
{
	int	i;

	event_del(&p->ev);
	event_del(&p->later);
	if (p->epfd != -1)
		close(p->epfd);
	for (i = 0; i < p->nslots; i++)
		memset(&p->slots[i], 0, sizeof(p->slots[i]));
	p->head = p->tail = -1;
	return arm(p);
}

struct poller *
poller_get(struct event_base *base)
{
	struct poller	*p;

	if (last_base != base) {
		pthread_once(&once, watch_forks);
		pthread_mutex_lock(&lock);
		for (p = pollers; p != NULL && p->base != base; p = p->next)
			;
		if (p == NULL && (p = calloc(1, sizeof(*p))) != NULL) {
			p->base = base;
			p->head = p->tail = -1;
			if (arm(p) == -1) {
				free(p);
				p = NULL;
			} else {
				p->next = pollers;
				pollers = p;
			}
		}
		pthread_mutex_unlock(&lock);
		if (p == NULL)
			return NULL;
		last_base = base;
		last = p;
	}
	p = last;
	if (p->forks != fork_count && renew(p) == -1)
		return NULL;
	return p;
}

void
poller_free(struct event_base *base)
{
	struct poller	**pp, *p;

	pthread_mutex_lock(&lock);
	for (pp = &pollers; *pp != NULL && (*pp)->base != base;
	    pp = &(*pp)->next)
		;
	if ((p = *pp) != NULL)
		*pp = p->next;
	pthread_mutex_unlock(&lock);
	if (last_base == base)
		last_base = NULL;
	if (p == NULL)
		return;
	event_del(&p->ev);
	event_del(&p->later);
	if (p->epfd != -1)
		close(p->epfd);
	free(p->slots);
	free(p);
}

static int
grow(struct poller *p, int fd)
{
	struct slot	*s;
	int		 n = p->nslots > 0 ? p->nslots : 64;

	while (n <= fd)
		n *= 2;
	if ((s = reallocarray(p->slots, (size_t)n, sizeof(*s))) == NULL)
		return -1;
	memset(s + p->nslots, 0, (size_t)(n - p->nslots) * sizeof(*s));
	p->slots = s;
	p->nslots = n;
	return 0;
}

static struct slot *
slot_of(struct poller *p, int fd, int owned)
{
	struct slot	*s;

	if (fd < 0 || fd >= p->nslots)
		return NULL;
	s = &p->slots[fd];
	return owned && s->cb == NULL ? NULL : s;
}

/* Puts fd on the run list if it is wanted for what it is ready for. */
static void
queue(struct poller *p, int fd)
{
	static const struct timeval	 now = { 0, 0 };
	struct slot			*s = &p->slots[fd];

	if (s->cb == NULL || s->queued || !(s->want & s->ready))
		return;
	s->queued = 1;
	s->next = -1;
	if (p->tail == -1) {
		p->head = fd;
		/* After the loop's other events: the timer fires once the
		 * loop has polled again, without waiting. */
		if (!evtimer_pending(&p->later, NULL))
			evtimer_add(&p->later, &now);
	} else
		p->slots[p->tail].next = fd;
	p->tail = fd;
}

static void
report(struct poller *p, int fd)
{
	struct slot	*s = &p->slots[fd];
	int		 what = s->want & s->ready;

	if (s->cb == NULL || what == 0)
		return;
	if ((what & EP_READ) && s->hup)
		what |= EP_HUP;
	s->cb(fd, what, s->arg);
	/* Not used up (the callback took its share): again, later. */
	queue(p, fd);
}

/* Reports the run list as it is now; what the callbacks queue waits. */
static void
run(struct poller *p)
{
	int	fd = p->head, next;

	p->head = p->tail = -1;
	while (fd != -1) {
		next = p->slots[fd].next;
		p->slots[fd].queued = 0;
		report(p, fd);
		fd = next;
	}
}

static void
edge(struct poller *p, const struct epoll_event *ev)
{
	int		 fd = (int)(uint32_t)ev->data.u64;
	uint32_t	 gen = (uint32_t)(ev->data.u64 >> 32);
	struct slot	*s = slot_of(p, fd, 0);

	if (s == NULL || (s->cb == NULL && !s->offered) || s->gen != gen)
		return;		/* forgotten */
	if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		s->ready |= EP_READ;
	if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		s->ready |= EP_WRITE;
	if (ev->events & (EPOLLRDHUP | EPOLLHUP))
		s->hup = 1;
	if (!s->queued)
		report(p, fd);
}

static void
on_poll(evutil_socket_t epfd, short what, void *arg)
{
	struct poller		*p = arg;
	struct epoll_event	 evs[POLL_EVENTS];
	int			 i, n;

	if (p->forks != fork_count) {
		(void)renew(p);
		return;
	}
	if ((n = epoll_wait(p->epfd, evs, POLL_EVENTS, 0)) > 0)
		for (i = 0; i < n; i++)
			edge(p, &evs[i]);
	/* What the edges' callbacks wanted and found ready, this pass. */
	run(p);
}

static void
on_later(evutil_socket_t unused, short what, void *arg)
{
	run(arg);
}

int
poller_add(struct poller *p, int fd, poller_cb *cb, void *arg)
{
	struct epoll_event	 ev;
	struct slot		*s;

	if (fd >= p->nslots && grow(p, fd) == -1)
		return -1;
	s = &p->slots[fd];
	if (!s->offered) {
		if (++p->gen == 0)
			p->gen = 1;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.u64 = (uint64_t)p->gen << 32 | (uint32_t)fd;
		/* EEXIST: a registration whose owner never forgot it. */
		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == -1 &&
		    (errno != EEXIST ||
		    epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == -1))
			return -1;
		s->gen = p->gen;
		s->ready = s->hup = 0;
	}
	s->offered = 0;
	s->cb = cb;
	s->arg = arg;
	s->want = 0;
	return 0;
}

void
poller_offer(struct poller *p, int fd)
{
	struct slot	*s = slot_of(p, fd, 1);

	if (s != NULL) {
		s->cb = NULL;
		s->want = 0;
		s->offered = 1;
	}
}

void
poller_retract(struct poller *p, int fd)
{
	struct slot	*s = slot_of(p, fd, 0);

	if (s != NULL && s->offered) {
		/* fd may be closed by now: then there is nothing to take. */
		(void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
		s->offered = 0;
		s->ready = s->hup = 0;
	}
}

void
poller_want(struct poller *p, int fd, int what)
{
	struct slot	*s = slot_of(p, fd, 1);

	if (s != NULL) {
		s->want = (uint8_t)what;
		queue(p, fd);
	}
}

void
poller_drained(struct poller *p, int fd, int what)
{
	struct slot	*s = slot_of(p, fd, 1);

	/* Once the peer's EOF has arrived a short read leaves it to be
	 * read, and no edge will tell of it again. */
	if (s != NULL && s->hup)
		what &= ~EP_READ;
	if (s != NULL)
		s->ready &= (uint8_t)~what;
}

void
poller_forget(struct poller *p, int fd)
{
	struct slot	*s = slot_of(p, fd, 0);

	/* The run list's links stay: a walk may be passing through. */
	if (s != NULL) {
		s->cb = NULL;
		s->want = s->ready = s->hup = 0;
		s->offered = 0;
	}
}
