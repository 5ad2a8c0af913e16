/* The one logging API: stderr in the foreground, syslog when asked. */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the threshold; messages above it are dropped. Also routes libevent's log. */
void	log_init(enum log_level level, int use_syslog);
struct event_base;
/*
 * The calling thread's lines wait in a buffer of its own and are written
 * together once per pass of base's loop (which the thread runs), and
 * before a fatal, a fork or the exit. stderr only: syslog takes each line
 * as it comes. Returns 0, or -1 when out of memory (lines then go out one
 * by one).
 */
int	log_batch(struct event_base *base);
/* Writes what the calling thread batched so far, batching on: before it
 * tells another process something its lines should precede. */
void	log_flush(void);
/* Writes what the calling thread batched and stops batching: before its
 * loop's base is freed, or the thread ends. */
void	log_batch_end(void);
/* Whether a crash writes the batched lines (not in sanitizer builds,
 * whose own handlers report it). */
int	log_catches_crashes(void);
/* Current threshold, so callers can skip building expensive messages. */
enum log_level log_get_level(void);

/* Warning with ": strerror(errno)" appended. */
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level (always shown) and exits with the sysexits.h code. */
void	fatal(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));
void	fatalx(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Copies len bytes that came from a peer into dst (NUL-terminated, at most
 * dstlen bytes) with every non-printable byte as \xNN, so logs stay one line
 * per event whatever a stranger sends. Returns dst.
 */
char	*log_escape(char *dst, size_t dstlen, const void *src, size_t len);

#endif
