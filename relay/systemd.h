/* What systemd gives and wants: sockets, readiness, status, watchdog.
 * Every call is harmless when relayd was not started by systemd. */
#ifndef RELAY_SYSTEMD_H
#define RELAY_SYSTEMD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Sockets passed by socket activation whose FileDescriptorName is name
 * (at most max, in fds); they are made non-blocking. Call it for each
 * relay: the sockets are taken once, at the first call.
 */
size_t	sysd_sockets(const char *name, int *fds, size_t max);
/* Gives a socket sysd_sockets returned back, for the next relay of its
 * name to take (a reload's); sysd_close_unused_sockets closes it if none
 * does. */
void	sysd_return_socket(int fd);
/* Closes passed sockets no relay took, so they do not linger. */
void	sysd_close_unused_sockets(void);
/* READY=1 with a STATUS= line. */
void	sysd_ready(const char *status);
void	sysd_status(const char *status);
void	sysd_reloading(void);
void	sysd_stopping(void);
/* The watchdog interval in microseconds, or 0 when there is none. */
uint64_t sysd_watchdog_usec(void);
void	sysd_watchdog_ping(void);

#endif
