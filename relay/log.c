/*
 * Logging: one line per event, "relayd: message", to stderr or syslog.
 * Several loops (--workers) log at once: each line goes out in one
 * write(2), so lines never interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/log.h"

/* A reload changes them while other loops log. */
static _Atomic enum log_level	 threshold = LOG_LVL_INFO;
static _Atomic int		 to_syslog;

static void	vlog(enum log_level, const char *, va_list, int)
		    __attribute__((format(printf, 2, 0)));

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
	threshold = level;
	if (use_syslog && !to_syslog)
		openlog("relayd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = use_syslog;
	event_set_log_callback(libevent_log);
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
	ssize_t	 w;
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
		w = write(STDERR_FILENO, line, len);
		(void)w;	/* a failed log write has nowhere to go */
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
	exit(code);
}

void
fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, 0);
	va_end(ap);
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
