/*
 * The process's own figures for --metrics, read inside the sandbox: CPU
 * time from the clock (getrusage is not on the allow-list), resident
 * memory from /proc/self/statm (readable by all even once the process is
 * no longer dumpable), open descriptors from /proc/self/fd or, where that
 * directory is closed to us after the privilege drop, by asking poll()
 * which descriptors exist.
 */
#include <sys/resource.h>
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

static double	started;	/* wall clock seconds */

void
procstat_init(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_REALTIME, &now);
	started = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Descriptors in use: the entries of /proc/self/fd but its own, or -1. */
static long
fds_listed(void)
{
	DIR		*dir;
	struct dirent	*e;
	long		 n = 0;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;
}

/* The same by poll(): a closed descriptor comes back POLLNVAL. */
static long
fds_polled(long max)
{
	struct pollfd	 p[1024];
	long		 fd, n = 0;
	size_t		 i, k;

	for (fd = 0; fd < max; fd += (long)k) {
		k = (size_t)(max - fd) < 1024 ? (size_t)(max - fd) : 1024;
		for (i = 0; i < k; i++)
			p[i] = (struct pollfd){ (int)(fd + (long)i), 0, 0 };
		if (poll(p, k, 0) == -1)
			return -1;
		for (i = 0; i < k; i++)
			n += !(p[i].revents & POLLNVAL);
	}
	return n;
}

void
procstat_read(struct procstat *ps)
{
	struct timespec	 cpu;
	struct rlimit	 rl;
	unsigned long	 size, resident;
	FILE		*fp;

	memset(ps, 0, sizeof(*ps));
	ps->start_time = started;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0)
		ps->cpu_seconds = (double)cpu.tv_sec + (double)cpu.tv_nsec /
		    1e9;
	ps->rss_bytes = -1;
	if ((fp = fopen("/proc/self/statm", "re")) != NULL) {
		if (fscanf(fp, "%lu %lu", &size, &resident) == 2)
			ps->rss_bytes = (long long)resident *
			    sysconf(_SC_PAGESIZE);
		fclose(fp);
	}
	ps->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : -1;
	if ((ps->open_fds = fds_listed()) == -1 && ps->max_fds > 0)
		ps->open_fds = fds_polled(ps->max_fds);
}
