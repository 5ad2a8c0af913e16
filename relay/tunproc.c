/*
 * The tunnels' processes: a keeper that only forks and restarts the worker,
 * so that every worker inherits the keeper's empty capability sets (a
 * process that has dropped CAP_SETPCAP can never empty a child's bounding
 * set again), and the channel between the worker and the relay process.
 * Messages are SOCK_SEQPACKET datagrams: "R" (every forward is up), a
 * question of one byte ("S" the status text, "M" the metrics, "J" the
 * JSON: tunproc.h) and "T", the question's byte and the answer.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/clock.h"
#include "relay/log.h"
#include "relay/tunproc.h"

#define MSG_MAX		65536
#define MAX_PENDING	48	/* --control clients and scrapes */
#define BACKOFF_MAX	60	/* seconds between restarts, at most */
/* The worker's heap: see worker_heap(). */
#define HEAP_TRIM	(8 << 20)	/* free memory kept at the top */
#define HEAP_TOP_PAD	(2 << 20)	/* asked for beyond each need */
#define HEAP_MMAP	(1 << 20)	/* smaller blocks come from the heap */

static const int	forwarded[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT,
			    SIGUSR1, TUNPROC_PARENT_GONE };
#define NFORWARDED	(sizeof(forwarded) / sizeof(forwarded[0]))

static void
forwarded_set(sigset_t *set)
{
	size_t	i;

	sigemptyset(set);
	for (i = 0; i < NFORWARDED; i++)
		sigaddset(set, forwarded[i]);
}

/*
 * libssh2 mallocs and frees every packet (32 KiB and more of a channel's
 * data), and a burst of them queues up to a channel's 2 MiB window. With
 * glibc's defaults the heap gives its top back to the kernel whenever more
 * than 128 KiB is free there and asks again for the next burst: raising the
 * thresholds spares the worker those brk calls and page faults, at the cost
 * of keeping a few MiB it once used.
 */
static void
worker_heap(void)
{
#ifdef M_TRIM_THRESHOLD
	if (mallopt(M_TRIM_THRESHOLD, HEAP_TRIM) == 0 ||
	    mallopt(M_TOP_PAD, HEAP_TOP_PAD) == 0 ||
	    mallopt(M_MMAP_THRESHOLD, HEAP_MMAP) == 0)
		log_debug("tunnel process: mallopt refused a threshold");
#endif
}

/* ---------------------------------------------------------------- keeper */

static volatile sig_atomic_t	keeper_stopping;
static volatile sig_atomic_t	keeper_worker;	/* its pid, or 0 */

/* Async-signal-safe: passes the signal on and remembers a stop. */
static void
keeper_on_signal(int sig)
{
	int	saved = errno;

	/* Each of a dying relay process's threads may send it: the worker
	 * gets one SIGTERM (a second would cut its drain short). */
	if (sig == TUNPROC_PARENT_GONE) {
		if (keeper_stopping)
			return;
		sig = SIGTERM;
	}
	if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
		keeper_stopping = 1;
	if (keeper_worker > 0)
		kill((pid_t)keeper_worker, sig);
	errno = saved;
}

static void
keeper_handlers(void (*handler)(int))
{
	struct sigaction	sa;
	size_t			i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	forwarded_set(&sa.sa_mask);
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
}

/*
 * Sleeps with the forwarded signals let in; a stop cuts it short. They are
 * let in only inside ppoll, atomically: a stop that came between the test
 * of keeper_stopping and the sleep would otherwise wait out the backoff.
 */
static void
keeper_sleep(int sec)
{
	struct timespec	now, end, left;
	sigset_t	open;
	size_t		i;

	sigprocmask(SIG_BLOCK, NULL, &open);
	for (i = 0; i < NFORWARDED; i++)
		sigdelset(&open, forwarded[i]);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += sec;
	while (!keeper_stopping) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			break;
		if (ppoll(NULL, 0, &left, &open) == 0)
			break;
	}
}

/*
 * Waits for the worker with the forwarded signals let in. The worker stays
 * a zombie (WNOWAIT) until they are blocked again and keeper_worker is
 * cleared: a signal passed on after the reaping could reach another process
 * that got the pid.
 */
static int
keeper_wait(pid_t pid, const sigset_t *set)
{
	siginfo_t	info;
	int		status;

	keeper_worker = pid;
	sigprocmask(SIG_UNBLOCK, set, NULL);
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == -1)
		if (errno != EINTR)
			_exit(EX_OSERR);
	sigprocmask(SIG_BLOCK, set, NULL);
	keeper_worker = 0;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			_exit(EX_OSERR);
	return status;
}

/*
 * Forks workers until one exits by itself (its exit code is the keeper's)
 * or a stop arrives. Returns only in a worker.
 */
static void
keeper_loop(const struct tunproc_hooks *h, const sigset_t *set)
{
	time_t		started;
	pid_t		pid;
	unsigned	number = 0;
	int		status, delay = 1;

	keeper_handlers(keeper_on_signal);
	for (;;) {
		started = mono_sec();
		number++;
		if ((pid = fork()) == 0) {
			keeper_handlers(SIG_DFL);
			worker_heap();
			h->worker(h->arg, number);
			return;
		}
		if (pid == -1) {
			log_warn("tunnel process: fork");
			status = SIGKILL;	/* as if it died: try again */
		} else
			status = keeper_wait(pid, set);
		if (keeper_stopping || (pid != -1 && WIFEXITED(status)))
			_exit(pid != -1 && WIFEXITED(status) ?
			    WEXITSTATUS(status) : 0);
		/* A worker that ran a while starts the backoff afresh. */
		if (mono_sec() - started >= BACKOFF_MAX)
			delay = 1;
		if (pid != -1)
			log_warnx("tunnel process %ld killed by signal %d; "
			    "starting it again in %d s", (long)pid,
			    WTERMSIG(status), delay);
		keeper_sleep(delay);
		if (keeper_stopping)
			_exit(0);
		delay = delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2;
	}
}

int
tunproc_fork(const struct tunproc_hooks *h, pid_t *keeper, int *fd)
{
	sigset_t	set;
	int		sv[2];
	pid_t		pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sv) == -1)
		return -1;
	/* Until each side watches them, signals wait instead of killing. */
	forwarded_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((pid = fork()) == -1) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid > 0) {
		close(sv[1]);
		*keeper = pid;
		*fd = sv[0];
		return 0;
	}
	close(sv[0]);
	*fd = sv[1];
	h->keeper(h->arg);
	keeper_loop(h, &set);
	return 1;
}

/* ---------------------------------------------------------------- relay side */

/* After a recv loop: whether the other side has closed for good. */
static int
channel_closed(ssize_t n)
{
	return n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR);
}

/* A question is given up ANSWER_MS after it was asked. */
#define ANSWER_MS	1000

struct pending {
	char		  kind;
	int		  sent;		/* the question went out */
	uint64_t	  asked;	/* mono_ms() */
	tunproc_answer	 *done;
	void		 *arg;
};

struct tunproc {
	pid_t		 pid;		/* the keeper, -1 once reaped */
	int		 fd;
	struct event	*ev;
	struct event	*timer;
	int		 ready;
	int		 stop_sent;
	void		(*on_ready)(void);
	struct pending	 pending[MAX_PENDING];
	size_t		 npending;
};

/* Answers the questions of kind (every one if kind is 0) with text, or
 * with why they have none. */
static void
answer_kind(struct tunproc *tp, char kind, const char *text, const char *why)
{
	struct pending	p;
	size_t		i = 0;

	while (i < tp->npending) {
		if (kind != 0 && tp->pending[i].kind != kind) {
			i++;
			continue;
		}
		p = tp->pending[i];
		tp->pending[i] = tp->pending[--tp->npending];
		p.done(p.arg, text, why);
	}
	if (tp->npending == 0)
		evtimer_del(tp->timer);
}

static void
on_message(evutil_socket_t fd, short what, void *arg)
{
	struct tunproc	*tp = arg;
	char		*buf;
	ssize_t		 n;

	if ((buf = malloc(MSG_MAX + 1)) == NULL)
		return;
	while ((n = recv(tp->fd, buf, MSG_MAX, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		if (buf[0] == 'R') {
			tp->ready = 1;
			tp->on_ready();
		} else if (buf[0] == 'T' && n >= 2)
			answer_kind(tp, buf[1], buf + 2, NULL);
	}
	free(buf);
	/* The tunnels' processes are gone: a closed socket stays readable. */
	if (channel_closed(n))
		event_del(tp->ev);
}

/* Waits for the oldest question's deadline. */
static void
arm_deadline(struct tunproc *tp)
{
	uint64_t	oldest = UINT64_MAX, now = mono_ms(), wait;
	struct timeval	tv;
	size_t		i;

	for (i = 0; i < tp->npending; i++)
		if (tp->pending[i].asked < oldest)
			oldest = tp->pending[i].asked;
	if (oldest == UINT64_MAX)
		return;
	wait = oldest + ANSWER_MS > now ? oldest + ANSWER_MS - now : 0;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000 * 1000);
	evtimer_add(tp->timer, &tv);
}

/* Only the questions asked ANSWER_MS ago are given up: one asked just
 * now, while an older one waited, keeps its own time. */
static void
on_status_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct tunproc	*tp = arg;
	struct pending	 p;
	uint64_t	 now = mono_ms();
	size_t		 i = 0;

	while (i < tp->npending) {
		if (now - tp->pending[i].asked < ANSWER_MS) {
			i++;
			continue;
		}
		p = tp->pending[i];
		tp->pending[i] = tp->pending[--tp->npending];
		p.done(p.arg, NULL, "not answering (restarting)");
	}
	arm_deadline(tp);
}

struct tunproc *
tunproc_new(struct event_base *base, pid_t keeper, int fd,
    void (*on_ready)(void))
{
	struct tunproc	*tp;

	if ((tp = calloc(1, sizeof(*tp))) == NULL)
		return NULL;
	tp->pid = keeper;
	tp->fd = fd;
	tp->on_ready = on_ready;
	tp->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_message, tp);
	tp->timer = evtimer_new(base, on_status_timeout, tp);
	if (tp->ev == NULL || tp->timer == NULL ||
	    event_add(tp->ev, NULL) == -1) {
		if (tp->ev != NULL)
			event_free(tp->ev);
		if (tp->timer != NULL)
			event_free(tp->timer);
		free(tp);
		return NULL;
	}
	return tp;
}

int
tunproc_ready(const struct tunproc *tp)
{
	return tp->ready;
}

void
tunproc_signal(struct tunproc *tp, int sig)
{
	if (sig == SIGHUP)
		tp->ready = 0;
	if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
		tp->stop_sent = 1;
	if (tp->pid > 0)
		kill(tp->pid, sig);
}

int
tunproc_reaped(struct tunproc *tp, pid_t pid, int status, int *code)
{
	if (pid != tp->pid)
		return 0;
	tp->pid = -1;
	if (WIFEXITED(status)) {
		*code = WEXITSTATUS(status);
		return 1;
	}
	log_warnx("tunnel keeper %ld killed by signal %d: stopping", (long)pid,
	    WTERMSIG(status));
	*code = EX_SOFTWARE;
	return 1;
}

void
tunproc_ask(struct tunproc *tp, char kind, tunproc_answer *done, void *arg)
{
	struct pending	*p;
	size_t		 i;
	int		 sent = 0;

	if (tp->npending == MAX_PENDING || tp->pid <= 0) {
		done(arg, NULL, "not running");
		return;
	}
	for (i = 0; i < tp->npending; i++)
		sent |= tp->pending[i].kind == kind && tp->pending[i].sent;
	p = &tp->pending[tp->npending++];
	p->kind = kind;
	p->done = done;
	p->arg = arg;
	p->sent = 1;
	p->asked = mono_ms();
	if (!evtimer_pending(tp->timer, NULL))
		arm_deadline(tp);
	if (sent)
		return;		/* its answer will do for both */
	if (send(tp->fd, &kind, 1, MSG_DONTWAIT) == -1)
		answer_kind(tp, kind, NULL, "not answering (restarting)");
}

static void
answer(int client, char *head, const char *tail)
{
	/* A few lines: the socket buffer takes them whole. */
	if ((head != NULL && send(client, head, strlen(head), MSG_NOSIGNAL |
	    MSG_DONTWAIT) == -1) || send(client, tail, strlen(tail),
	    MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
		log_debug("control: %s", strerror(errno));
	free(head);
	close(client);
}

struct status_req {
	int	 client;
	char	*head;
};

static void
status_answer(void *arg, const char *text, const char *why)
{
	struct status_req	*req = arg;
	char			 tail[128];

	if (text == NULL && why == NULL) {	/* forgotten */
		close(req->client);
		free(req->head);
	} else if (text == NULL) {
		snprintf(tail, sizeof(tail), "tunnels: %s\n", why);
		answer(req->client, req->head, tail);
	} else
		answer(req->client, req->head, text);
	free(req);
}

void
tunproc_status(struct tunproc *tp, int client, char *head)
{
	struct status_req	*req;

	if ((req = malloc(sizeof(*req))) == NULL) {
		answer(client, head, "tunnels: out of memory\n");
		return;
	}
	req->client = client;
	req->head = head;
	tunproc_ask(tp, 'S', status_answer, req);
}

void
tunproc_forget(struct tunproc *tp)
{
	answer_kind(tp, 0, NULL, NULL);
	event_free(tp->ev);
	event_free(tp->timer);
	close(tp->fd);
	free(tp);
}

int
tunproc_finish(struct tunproc *tp, int timeout)
{
	struct timespec	 tick = { 0, 20 * 1000 * 1000 };
	time_t		 deadline = mono_sec() + timeout;
	int		 status, code = 0;

	answer_kind(tp, 0, NULL, "stopping");
	if (tp->pid > 0 && !tp->stop_sent)
		kill(tp->pid, SIGTERM);
	while (tp->pid > 0) {
		if (waitpid(tp->pid, &status, WNOHANG) == tp->pid) {
			tunproc_reaped(tp, tp->pid, status, &code);
			break;
		}
		if (mono_sec() >= deadline) {
			log_warnx("tunnel process still running: killed");
			kill(tp->pid, SIGKILL);
			waitpid(tp->pid, &status, 0);
			break;
		}
		nanosleep(&tick, NULL);
	}
	tunproc_forget(tp);
	return code;
}

/* ---------------------------------------------------------------- worker side */

struct tunchan {
	int		 fd;
	struct event	*ev;
	char		*(*answer)(void *, char);
	void		*arg;
};

static void
on_request(evutil_socket_t fd, short what, void *arg)
{
	struct tunchan	*tc = arg;
	char		 req, *text, *msg;
	size_t		 len;
	ssize_t		 n;

	while ((n = recv(tc->fd, &req, 1, MSG_DONTWAIT)) > 0) {
		if (req != 'S' && req != 'M' && req != 'J')
			continue;
		text = tc->answer(tc->arg, req);
		len = text != NULL ? strlen(text) : 0;
		if (len > MSG_MAX - 2)
			len = MSG_MAX - 2;
		if ((msg = malloc(len + 2)) != NULL) {
			msg[0] = 'T';
			msg[1] = req;
			memcpy(msg + 2, text != NULL ? text : "", len);
			if (send(tc->fd, msg, len + 2, MSG_DONTWAIT) == -1)
				log_debug("status to the relay process: %s",
				    strerror(errno));
			free(msg);
		}
		free(text);
	}
	/* The relay process is gone (a drain may go on): stop watching. */
	if (channel_closed(n))
		event_del(tc->ev);
}

struct tunchan *
tunchan_new(struct event_base *base, int fd, char *(*answer_fn)(void *, char),
    void *arg)
{
	struct tunchan	*tc;

	if ((tc = calloc(1, sizeof(*tc))) == NULL)
		return NULL;
	tc->fd = fd;
	tc->answer = answer_fn;
	tc->arg = arg;
	if ((tc->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_request,
	    tc)) == NULL || event_add(tc->ev, NULL) == -1) {
		if (tc->ev != NULL)
			event_free(tc->ev);
		free(tc);
		return NULL;
	}
	return tc;
}

void
tunchan_ready(struct tunchan *tc)
{
	if (send(tc->fd, "R", 1, MSG_DONTWAIT) == -1)
		log_debug("readiness to the relay process: %s",
		    strerror(errno));
}

void
tunchan_free(struct tunchan *tc)
{
	if (tc == NULL)
		return;
	event_free(tc->ev);
	close(tc->fd);
	free(tc);
}
