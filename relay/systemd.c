/* systemd glue, with libsystemd's sd_notify and sd_listen_fds_with_names. */
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "relay/log.h"
#include "relay/systemd.h"

static int	 nfds = -1;	/* -1: not yet asked */
static char	**names;
static int	*taken;		/* 1: a relay's, 2: closed */

static void
fetch(void)
{
	int	i;

	if (nfds != -1)
		return;
	/* unset_environment: children (--fork) must not see them. */
	if ((nfds = sd_listen_fds_with_names(1, &names)) <= 0 ||
	    (taken = calloc((size_t)nfds, sizeof(*taken))) == NULL) {
		nfds = 0;
		return;
	}
	for (i = 0; i < nfds; i++)
		log_debug("systemd passed socket %d named %s",
		    SD_LISTEN_FDS_START + i, names && names[i] ? names[i] : "?");
}

size_t
sysd_sockets(const char *name, int *fds, size_t max)
{
	size_t	n = 0;
	int	i, fd;

	fetch();
	for (i = 0; i < nfds && n < max; i++) {
		fd = SD_LISTEN_FDS_START + i;
		if (taken[i] || names == NULL || names[i] == NULL ||
		    strcmp(names[i], name) != 0)
			continue;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_warnx("systemd socket %s (fd %d) is not a "
			    "listening stream socket; ignored", name, fd);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		taken[i] = 1;
		fds[n++] = fd;
	}
	return n;
}

void
sysd_return_socket(int fd)
{
	int	i = fd - SD_LISTEN_FDS_START;

	if (i >= 0 && i < nfds && taken[i] == 1) {
		taken[i] = 0;
		return;
	}
	close(fd);
}

void
sysd_close_unused_sockets(void)
{
	int	i;

	for (i = 0; i < nfds; i++) {
		if (taken[i])
			continue;
		log_warnx("systemd passed socket %s, but no [relay %s] takes "
		    "it", names && names[i] ? names[i] : "?",
		    names && names[i] ? names[i] : "?");
		close(SD_LISTEN_FDS_START + i);
		taken[i] = 2;
	}
}

void
sysd_ready(const char *status)
{
	log_flush();	/* what was said before readiness is seen first */
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void
sysd_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

void
sysd_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

void
sysd_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

uint64_t
sysd_watchdog_usec(void)
{
	uint64_t	usec = 0;

	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void
sysd_watchdog_ping(void)
{
	sd_notify(0, "WATCHDOG=1");
}
