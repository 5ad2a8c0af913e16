/*
 * Logging: one line per event, "relayd: message", to stderr or syslog.
 * Several loops (--workers) log at once: lines go out whole, in writes of
 * at most PIPE_BUF bytes, so they never interleave. An event loop's thread
 * may batch its lines (log_batch): they are written once per pass of the
 * loop, in one write(2) instead of one per line, and before a fatal, a
 * fork, the exit or a crash.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/log.h"

/* Sanitizers report a crash from handlers of their own: left alone. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED	1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED	0
#endif

/* A reload changes them while other loops log. */
static _Atomic enum log_level	 threshold = LOG_LVL_INFO;
static _Atomic int		 to_syslog;

static void	vlog(enum log_level, const char *, va_list, int)
		    __attribute__((format(printf, 2, 0)));

/* A batching thread's lines not yet written. All batches are listed, so
 * a fatal in one thread writes the others' lines too; each has its lock,
 * which only a flush from another thread ever contends for. */
struct batch {
	pthread_mutex_t		 lock;
	struct event		*flush;	/* activated when the first line waits */
	size_t			 len;
	char			 buf[PIPE_BUF];
	struct batch		*next;
};

static pthread_mutex_t		 batches_lock = PTHREAD_MUTEX_INITIALIZER;
static struct batch		*batches;
static _Thread_local struct batch *own;

/* One write of whole lines; a short write is finished, an error dropped
 * (a failed log write has nowhere to go). */
static void
write_all(const char *p, size_t len)
{
	ssize_t	w;

	while (len > 0) {
		if ((w = write(STDERR_FILENO, p, len)) == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

static void
batch_flush(struct batch *b)
{
	int	saved = errno;

	pthread_mutex_lock(&b->lock);
	write_all(b->buf, b->len);
	b->len = 0;
	pthread_mutex_unlock(&b->lock);
	errno = saved;
}

/* Each batch, the caller's first: what the dying thread said last is
 * written after what it said before. */
static void
flush_all(void)
{
	struct batch	*b;

	if (own != NULL)
		batch_flush(own);
	pthread_mutex_lock(&batches_lock);
	for (b = batches; b != NULL; b = b->next)
		if (b != own)
			batch_flush(b);
	pthread_mutex_unlock(&batches_lock);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	batch_flush(arg);
}

void
log_flush(void)
{
	if (own != NULL)
		batch_flush(own);
}

/* Before a fork: the child would write the parent's lines again. */
static void
before_fork(void)
{
	if (own != NULL)
		batch_flush(own);
}

/* The child has only the forking thread: the other batches, and locks
 * their threads may have held, stay behind. */
static void
in_child(void)
{
	pthread_mutex_init(&batches_lock, NULL);
	batches = own;
	if (own != NULL) {
		pthread_mutex_init(&own->lock, NULL);
		own->next = NULL;
	}
}

/*
 * A crash (SIGSEGV, SIGABRT...) writes the lines every batch holds, then
 * dies of the same signal. Only write(2) is called; a batch whose lock is
 * held (its thread crashed while adding to it, or is flushing) is
 * skipped rather than waited for. Sanitizer builds keep their own
 * handlers, which report the crash.
 */
#if !SANITIZED
static void
on_crash(int sig)
{
	struct batch	*b;
	int		 saved = errno;

	for (b = batches; b != NULL; b = b->next)
		if (pthread_mutex_trylock(&b->lock) == 0) {
			write_all(b->buf, b->len);
			b->len = 0;
			pthread_mutex_unlock(&b->lock);
		}
	errno = saved;
	raise(sig);		/* the handler was reset: dies of it */
}
#endif

static void
catch_crashes(void)
{
#if !SANITIZED
	static const int	 sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE,
				    SIGABRT };
	struct sigaction	 sa;
	size_t			 i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_crash;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
#endif
}

int
log_catches_crashes(void)
{
	return !SANITIZED;
}

static void
register_hooks(void)
{
	atexit(flush_all);
	pthread_atfork(before_fork, NULL, in_child);
}

int
log_batch(struct event_base *base)
{
	static pthread_once_t	 once = PTHREAD_ONCE_INIT;
	struct batch		*b;

	if (own != NULL)
		return 0;
	pthread_once(&once, register_hooks);
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	/* Activated, never added: it runs after the events of the pass that
	 * logged, before the loop waits again. */
	if ((b->flush = event_new(base, -1, 0, on_flush, b)) == NULL) {
		free(b);
		return -1;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_lock(&batches_lock);
	b->next = batches;
	batches = b;
	pthread_mutex_unlock(&batches_lock);
	own = b;
	return 0;
}

void
log_batch_end(void)
{
	struct batch	**bp, *b = own;

	if (b == NULL)
		return;
	batch_flush(b);
	pthread_mutex_lock(&batches_lock);
	for (bp = &batches; *bp != b; bp = &(*bp)->next)
		;
	*bp = b->next;
	pthread_mutex_unlock(&batches_lock);
	own = NULL;
	event_free(b->flush);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Writes one line (with its newline), or queues it in the thread's
 * batch. */
static void
emit(const char *line, size_t len)
{
	struct batch	*b = own;

	if (b == NULL) {
		write_all(line, len);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (b->len + len > sizeof(b->buf)) {
		write_all(b->buf, b->len);
		b->len = 0;
	}
	if (b->len == 0)
		event_active(b->flush, EV_TIMEOUT, 0);
	memcpy(b->buf + b->len, line, len);
	b->len += len;
	pthread_mutex_unlock(&b->lock);
}

static void
libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

void
log_init(enum log_level level, int use_syslog)
{
	/* Lines batched for stderr go there before syslog takes over. */
	if (use_syslog && !to_syslog)
		flush_all();
	threshold = level;
	if (use_syslog && !to_syslog)
		openlog("relayd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = use_syslog;
	event_set_log_callback(libevent_log);
	catch_crashes();
}

enum log_level
log_get_level(void)
{
	return threshold;
}

static void
vlog(enum log_level level, const char *fmt, va_list ap, int with_errno)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char prefix[] = "relayd: ";
	char	 line[1040], *msg = line + sizeof(prefix) - 1, ebuf[128];
	size_t	 room = sizeof(line) - sizeof(prefix) - 1, len;
	int	 saved = errno, n;

	if (level > threshold)
		return;
	memcpy(line, prefix, sizeof(prefix) - 1);
	n = vsnprintf(msg, room, fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < room)
		snprintf(msg + n, room - (size_t)n, ": %s",
		    strerror_r(saved, ebuf, sizeof(ebuf)));
	if (to_syslog)
		syslog(prio[level], "%s", msg);
	else {
		len = strlen(line);
		line[len++] = '\n';
		emit(line, len);
	}
	errno = saved;
}

#define LOGFN(name, level, with_errno)			\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	vlog(level, fmt, ap, with_errno);		\
	va_end(ap);					\
}
LOGFN(log_warn, LOG_LVL_WARN, 1)
LOGFN(log_warnx, LOG_LVL_WARN, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, 1);
	va_end(ap);
	flush_all();
	exit(code);
}

void
fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, 0);
	va_end(ap);
	flush_all();
	exit(code);
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t len)
{
	const unsigned char	*s = src;
	size_t			 o = 0, i;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < len; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = s[i];
		} else {
			if (o + 4 >= dstlen)
				break;
			snprintf(dst + o, 5, "\\x%02x", s[i]);
			o += 4;
		}
	}
	dst[o] = '\0';
	return dst;
}
