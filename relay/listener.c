/*
 * Listening sockets. Accepting runs in a bounded loop per wakeup. When the
 * process runs out of descriptors (EMFILE/ENFILE) the pending connection
 * cannot be taken, so a level-triggered listener would wake us again at
 * once: instead the listener is paused and re-armed from a timer, leaving
 * the clients waiting in the backlog until descriptors free up.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/listener.h"
#include "relay/log.h"
#include "relay/systemd.h"

#define LISTEN_BACKLOG	4096
#define ACCEPT_BATCH	64
#define MAX_SOCKETS	8
#define PAUSE_MSEC	200

struct listen_sock {
	int			 fd;
	struct event		 ev;
	struct listener		*owner;
	char			 name[ADDR_STR_MAX];
};

struct listener {
	struct addr_spec	 spec;
	listener_cb		*cb;
	void			*arg;
	struct event		 resume;
	int			 enabled;
	int			 paused;
	time_t			 warned;	/* last EMFILE warning */
	int			 reuseport;	/* SO_REUSEPORT on TCP sockets */
	int			 probe;		/* ...once a plain bind fits */
	int			 adopted;	/* systemd's sockets */
	int			 shared;	/* the fds are another's */
	int			 taken;		/* from a relay a reload replaced */
	size_t			 nsocks;
	struct listen_sock	 socks[MAX_SOCKETS];
	TAILQ_ENTRY(listener)	 parked_entry;	/* while parked */
	unsigned		 loop;		/* the loop it was parked from */
};

/*
 * Listeners parked by a reload, their sockets still listening, for the
 * relay that replaces theirs. Only the main thread, or a loop that it waits
 * for in workers_call, touches the list: never two threads at once.
 */
static TAILQ_HEAD(, listener)	parked = TAILQ_HEAD_INITIALIZER(parked);

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener	*l = arg;
	size_t		 i;

	l->paused = 0;
	if (l->enabled)
		for (i = 0; i < l->nsocks; i++)
			event_add(&l->socks[i].ev, NULL);
}

static void
pause_accepting(struct listener *l, int error)
{
	struct timeval	tv = { 0, PAUSE_MSEC * 1000 };
	time_t		now = time(NULL);
	size_t		i;

	/* Under a flood this repeats every pause: say it once in a while. */
	if (now - l->warned >= 10) {
		log_warnx("accept on %s: %s; pausing accepts",
		    l->socks[0].name, strerror(error));
		l->warned = now;
	}
	l->paused = 1;
	for (i = 0; i < l->nsocks; i++)
		event_del(&l->socks[i].ev);
	evtimer_add(&l->resume, &tv);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listen_sock	*s = arg;
	struct listener		*l = s->owner;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 fd, i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				pause_accepting(l, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("accept on %s", s->name);
			return;
		}
		l->cb(fd, (struct sockaddr *)&ss, len, l->arg);
		if (!l->enabled)
			return;
	}
}

const char *
listener_bind_hint(const struct addr_spec *spec)
{
	if (spec->kind == ADDR_INET && spec->port < 1024 && geteuid() != 0)
		return "; ports below 1024 need privilege: run as root (sudo), "
		    "give the binary the capability (sudo setcap "
		    "cap_net_bind_service+ep relayd) or start it from systemd "
		    "with AmbientCapabilities=CAP_NET_BIND_SERVICE";
	return "";
}

int
listener_exit_code(int error)
{
	switch (error) {
	case EACCES:
	case EPERM:
		return EX_NOPERM;
	case EADDRINUSE:
	case EADDRNOTAVAIL:
		return EX_UNAVAILABLE;
	default:
		return EX_OSERR;
	}
}

/*
 * Small writes leave at once. Set on the listening socket, which every
 * socket it accepts inherits (Linux copies the option on accept), so a
 * new connection costs no call for it.
 */
static void
no_delay(int fd)
{
	int	one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A unix socket file left by a dead process is removed; a live one is not. */
static void
remove_stale_unix(const char *path)
{
	struct sockaddr_un	sun;
	struct stat		st;
	socklen_t		len;
	int			fd;

	if (lstat(path, &st) == -1 || !S_ISSOCK(st.st_mode))
		return;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	len = addr_unix_sockaddr(path, &sun);
	if (connect(fd, (struct sockaddr *)&sun, len) == -1 &&
	    errno == ECONNREFUSED)
		unlink(path);
	close(fd);
}

/*
 * SO_REUSEPORT would let a second relayd (or anything else bound the same
 * way by the same user) share the port silently: a plain bind of the
 * address first keeps "Address already in use" for a port that is taken.
 */
static int
port_is_free(int family, const struct sockaddr *sa, socklen_t salen,
    int v6only)
{
	int	fd, ok, saved, one = 1;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    sizeof(v6only));
	ok = bind(fd, sa, salen) == 0;
	saved = errno;
	close(fd);
	errno = saved;
	return ok;
}

static int
bind_one(struct listener *l, struct event_base *base, int family,
    const struct sockaddr *sa, socklen_t salen, int v6only, char *err,
    size_t errlen, int *exitcode)
{
	struct listen_sock	*s = &l->socks[l->nsocks];
	int			 fd, one = 1;

	addr_sa_format(sa, salen, s->name, sizeof(s->name));
	if (l->spec.kind == ADDR_INET && l->spec.host[0] == '\0')
		snprintf(s->name, sizeof(s->name), "*:%u", l->spec.port);
	if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	if (family != AF_UNIX) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		no_delay(fd);
	}
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    sizeof(v6only));
	if (family != AF_UNIX && l->reuseport) {
		if (l->probe && !port_is_free(family, sa, salen, v6only))
			goto fail;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
		    sizeof(one)) == -1)
			goto fail;
	}
	if (family == AF_UNIX)
		remove_stale_unix(l->spec.path);
	if (bind(fd, sa, salen) == -1 || listen(fd, LISTEN_BACKLOG) == -1)
		goto fail;
	s->fd = fd;
	s->owner = l;
	event_assign(&s->ev, base, fd, EV_READ | EV_PERSIST, on_accept, s);
	l->nsocks++;
	return 0;
fail:
	*exitcode = listener_exit_code(errno);
	snprintf(err, errlen, "cannot listen on %s: %s%s", s->name,
	    strerror(errno), errno == EACCES ? listener_bind_hint(&l->spec) :
	    "");
	if (fd != -1)
		close(fd);
	return -1;
}

/* No address: one dual-stack socket, or IPv4 alone where IPv6 is off. */
static int
bind_any(const struct addr_spec *spec, int socktype,
    listener_bind_addr *bind_addr, void *arg, char *err, size_t errlen,
    int *exitcode)
{
	struct sockaddr_in6	s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in	s4 = { .sin_family = AF_INET };
	int			fd;

	if ((fd = socket(AF_INET6, socktype, 0)) != -1) {
		close(fd);
		s6.sin6_port = htons(spec->port);
		s6.sin6_addr = in6addr_any;
		return bind_addr(AF_INET6, (struct sockaddr *)&s6, sizeof(s6),
		    1, arg, err, errlen, exitcode);
	}
	s4.sin_port = htons(spec->port);
	s4.sin_addr.s_addr = htonl(INADDR_ANY);
	return bind_addr(AF_INET, (struct sockaddr *)&s4, sizeof(s4), 1, arg,
	    err, errlen, exitcode);
}

int
listener_bind_host(const struct addr_spec *spec, int socktype,
    listener_bind_addr *bind_addr, void *arg, char *err, size_t errlen,
    int *exitcode)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[8];
	int		 rc;

	if (spec->host[0] == '\0')
		return bind_any(spec, socktype, bind_addr, arg, err, errlen,
		    exitcode) == -1 ? -1 : 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_PASSIVE | (spec->numeric ? AI_NUMERICHOST : 0);
	snprintf(port, sizeof(port), "%u", spec->port);
	if ((rc = getaddrinfo(spec->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot listen on %s%s: %s",
		    socktype == SOCK_DGRAM ? "udp:" : "", spec->host,
		    gai_strerror(rc));
		*exitcode = EX_NOHOST;
		return -1;
	}
	rc = 0;
	for (ai = res; ai != NULL && rc == 0; ai = ai->ai_next)
		rc = bind_addr(ai->ai_family, ai->ai_addr, ai->ai_addrlen, 0,
		    arg, err, errlen, exitcode);
	freeaddrinfo(res);
	return rc == -1 ? -1 : 0;
}

struct bind_job {
	struct listener		*l;
	struct event_base	*base;
};

/* listener_bind_host's step for a TCP listener. */
static int
bind_tcp(int family, const struct sockaddr *sa, socklen_t salen, int any,
    void *arg, char *err, size_t errlen, int *exitcode)
{
	struct bind_job	*job = arg;

	if (job->l->nsocks == MAX_SOCKETS)
		return 1;
	return bind_one(job->l, job->base, family, sa, salen, !any, err,
	    errlen, exitcode);
}

static struct listener *
bind_listener(struct event_base *base, const struct addr_spec *spec,
    int reuseport, listener_cb *cb, void *arg, char *err, size_t errlen,
    int *exitcode)
{
	struct sockaddr_un	 sun;
	struct listener		*l;
	socklen_t		 len;
	int			 rc;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	l->spec = *spec;
	l->reuseport = l->probe = reuseport;
	l->cb = cb;
	l->arg = arg;
	evtimer_assign(&l->resume, base, on_resume, l);
	if (spec->kind == ADDR_UNIX) {
		len = addr_unix_sockaddr(spec->path, &sun);
		rc = bind_one(l, base, AF_UNIX, (struct sockaddr *)&sun, len, 0,
		    err, errlen, exitcode);
	} else
		rc = listener_bind_host(spec, SOCK_STREAM, bind_tcp,
		    &(struct bind_job){ l, base }, err, errlen, exitcode);
	if (rc == -1) {
		listener_free_in_child(l);
		return NULL;
	}
	return l;
}

struct listener *
listener_bind(struct event_base *base, const struct addr_spec *spec,
    listener_cb *cb, void *arg, char *err, size_t errlen, int *exitcode)
{
	return bind_listener(base, spec, 0, cb, arg, err, errlen, exitcode);
}

struct listener *
listener_bind_reuseport(struct event_base *base,
    const struct addr_spec *spec, listener_cb *cb, void *arg, char *err,
    size_t errlen, int *exitcode)
{
	return bind_listener(base, spec, 1, cb, arg, err, errlen, exitcode);
}

/* The clone watches src's socket i in its own loop; src keeps the fd. */
static void
share_one(struct listener *l, struct event_base *base,
    const struct listen_sock *src)
{
	struct listen_sock	*s = &l->socks[l->nsocks++];

	s->fd = src->fd;
	s->owner = l;
	memcpy(s->name, src->name, sizeof(s->name));
	event_assign(&s->ev, base, s->fd, EV_READ | EV_PERSIST, on_accept, s);
}

/* Binds again, with SO_REUSEPORT, the address src's socket i has. */
static int
rebind_one(struct listener *l, struct event_base *base,
    const struct listen_sock *src, char *err, size_t errlen, int *exitcode)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss), olen = sizeof(int);
	int			v6only = 0;

	if (getsockname(src->fd, (struct sockaddr *)&ss, &len) == -1) {
		*exitcode = EX_OSERR;
		snprintf(err, errlen, "%s: getsockname: %s", src->name,
		    strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		getsockopt(src->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen);
	return bind_one(l, base, ss.ss_family, (struct sockaddr *)&ss, len,
	    v6only, err, errlen, exitcode);
}

struct listener *
listener_clone(struct event_base *base, const struct listener *src,
    listener_cb *cb, void *arg, char *err, size_t errlen, int *exitcode)
{
	struct listener	*l;
	size_t		 i;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	l->spec = src->spec;
	l->cb = cb;
	l->arg = arg;
	l->reuseport = 1;
	/* A unix path or an inherited socket cannot be bound twice, nor one
	 * taken over from a relay that a reload replaced: it may lack
	 * SO_REUSEPORT (that relay ran in one loop), and a reuseport group
	 * takes only sockets of the user that began it, root before the
	 * drop. */
	l->shared = src->spec.kind == ADDR_UNIX || src->adopted || src->taken;
	evtimer_assign(&l->resume, base, on_resume, l);
	for (i = 0; i < src->nsocks; i++) {
		if (l->shared)
			share_one(l, base, &src->socks[i]);
		else if (rebind_one(l, base, &src->socks[i], err, errlen,
		    exitcode) == -1) {
			listener_free_in_child(l);
			return NULL;
		}
	}
	return l;
}

struct listener *
listener_adopt(struct event_base *base, const int *fds, size_t nfds,
    listener_cb *cb, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	struct listen_sock	*s;
	struct listener		*l;
	socklen_t		 len;
	size_t			 i;

	if (nfds > MAX_SOCKETS || (l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, nfds > MAX_SOCKETS ? "more than %d "
		    "sockets for one listener" : "out of memory", MAX_SOCKETS);
		return NULL;
	}
	l->cb = cb;
	l->arg = arg;
	/* Not ours to unlink: a unix socket file stays systemd's. */
	l->spec.kind = ADDR_INET;
	l->adopted = 1;
	evtimer_assign(&l->resume, base, on_resume, l);
	for (i = 0; i < nfds; i++) {
		s = &l->socks[l->nsocks++];
		s->fd = fds[i];
		s->owner = l;
		len = sizeof(ss);
		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) == 0) {
			addr_sa_format((struct sockaddr *)&ss, len, s->name,
			    sizeof(s->name));
			if (ss.ss_family != AF_UNIX)
				no_delay(fds[i]);
		} else
			snprintf(s->name, sizeof(s->name), "fd %d", fds[i]);
		event_assign(&s->ev, base, fds[i], EV_READ | EV_PERSIST,
		    on_accept, s);
	}
	return l;
}

void
listener_enable(struct listener *l)
{
	size_t	i;

	l->enabled = 1;
	if (!l->paused)
		for (i = 0; i < l->nsocks; i++)
			event_add(&l->socks[i].ev, NULL);
}

void
listener_disable(struct listener *l)
{
	size_t	i;

	l->enabled = 0;
	for (i = 0; i < l->nsocks; i++)
		event_del(&l->socks[i].ev);
}

void
listener_free_in_child(struct listener *l)
{
	size_t	i;

	if (l == NULL)
		return;
	listener_disable(l);
	event_del(&l->resume);
	for (i = 0; i < l->nsocks && !l->shared; i++)
		close(l->socks[i].fd);
	free(l);
}

void
listener_unlisten(struct listener *l)
{
	size_t	i;

	if (l == NULL)
		return;
	/* On a listening socket shutdown() acts on the socket, not on this
	 * descriptor: a copy left in another process stops listening too. */
	for (i = 0; i < l->nsocks; i++)
		if (shutdown(l->socks[i].fd, SHUT_RDWR) == -1)
			log_debug("cannot stop listening on %s: %s",
			    l->socks[i].name, strerror(errno));
}

void
listener_free(struct listener *l)
{
	size_t	i;

	if (l == NULL)
		return;
	if (l->spec.kind == ADDR_UNIX && l->nsocks > 0 && !l->shared &&
	    unlink(l->spec.path) == -1)
		log_debug("cannot remove %s: %s", l->spec.path,
		    strerror(errno));
	/* systemd's sockets cannot be bound again: a relay that a reload
	 * replaces hands them on to its successor. */
	if (l->adopted && !l->shared) {
		listener_disable(l);
		event_del(&l->resume);
		for (i = 0; i < l->nsocks; i++)
			sysd_return_socket(l->socks[i].fd);
		free(l);
		return;
	}
	listener_free_in_child(l);
}

/*
 * A reload hands listening sockets over instead of closing and binding
 * them again. Closing a listening socket resets the connections in its
 * accept queue, and until the new one listens the port refuses clients;
 * a new SO_REUSEPORT socket next to the old one would not help, since the
 * kernel spreads new connections over every socket of the group, the old
 * one's queue included, and a unix path cannot be bound twice at all. A
 * parked socket stays open and listening: the kernel goes on completing
 * handshakes into its queue, and the successor accepts them all as soon
 * as it is enabled. No socket closes, so no client can be refused.
 */
void
listener_park(struct listener *l, unsigned loop)
{
	if (l == NULL)
		return;
	/* A clone watching another's sockets has none of its own; systemd's
	 * go back to systemd, for the next relay of their name. */
	if (l->shared || l->adopted || l->nsocks == 0) {
		listener_free(l);
		return;
	}
	listener_disable(l);
	event_del(&l->resume);
	l->paused = 0;
	l->loop = loop;
	TAILQ_INSERT_TAIL(&parked, l, parked_entry);
}

int
listener_same_address(const struct addr_spec *a, const struct addr_spec *b)
{
	if (a->kind != b->kind || a->udp != b->udp)
		return 0;
	if (a->kind == ADDR_UNIX)
		return strcmp(a->path, b->path) == 0;
	return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

/* Moves what room allows of the sockets parked for l's address from other
 * loops into l (a relay that spread over loops replaced by one that does
 * not); what is left is closed with the rest. */
static void
take_other_loops(struct listener *l)
{
	struct listener	*p, *next;

	for (p = TAILQ_FIRST(&parked); p != NULL; p = next) {
		next = TAILQ_NEXT(p, parked_entry);
		if (!listener_same_address(&p->spec, &l->spec))
			continue;
		while (p->nsocks > 0 && l->nsocks < MAX_SOCKETS)
			l->socks[l->nsocks++] = p->socks[--p->nsocks];
		if (p->nsocks == 0) {
			TAILQ_REMOVE(&parked, p, parked_entry);
			free(p);
		}
	}
}

struct listener *
listener_take(struct event_base *base, const struct addr_spec *spec,
    unsigned loop, int any_loop, listener_cb *cb, void *arg)
{
	struct listener	*l, *found = NULL;
	size_t		 i;

	TAILQ_FOREACH(l, &parked, parked_entry)
		if (listener_same_address(&l->spec, spec) &&
		    (l->loop == loop || (any_loop && found == NULL))) {
			found = l;
			if (l->loop == loop)
				break;
		}
	if ((l = found) == NULL)
		return NULL;
	TAILQ_REMOVE(&parked, l, parked_entry);
	if (any_loop)
		take_other_loops(l);
	l->spec = *spec;
	l->cb = cb;
	l->arg = arg;
	l->taken = 1;
	evtimer_assign(&l->resume, base, on_resume, l);
	for (i = 0; i < l->nsocks; i++) {
		l->socks[i].owner = l;
		event_assign(&l->socks[i].ev, base, l->socks[i].fd,
		    EV_READ | EV_PERSIST, on_accept, &l->socks[i]);
	}
	return l;
}

void
listener_close_parked(int (*keep)(const struct addr_spec *, const void *),
    const void *arg)
{
	struct listener	*l, *next;

	for (l = TAILQ_FIRST(&parked); l != NULL; l = next) {
		next = TAILQ_NEXT(l, parked_entry);
		if (keep != NULL && keep(&l->spec, arg))
			continue;
		TAILQ_REMOVE(&parked, l, parked_entry);
		listener_free(l);
	}
}

size_t
listener_nsockets(const struct listener *l)
{
	return l->nsocks;
}

const char *
listener_name(const struct listener *l, size_t i)
{
	return l->socks[i].name;
}
