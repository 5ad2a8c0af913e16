/* Start-up steps: the user to become, binding, detaching, the drop. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "caps/caps.h"
#include "caps/sandbox.h"
#include "daemon/daemon.h"
#include "relay/log.h"

/* A closed fd 0-2 would be handed to the first socket, and logs would then
 * be written into a connection. */
void
keep_std_fds_open(void)
{
	int	fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

/* Root picks the user to become now, so a typo fails before binding. */
int
lookup_user(const struct config *cfg, struct caps_user *u)
{
	char	err[256];

	if (geteuid() != 0) {
		if (cfg->user[0] == '\0')
			return 0;
		if (caps_lookup_user(cfg->user, u, err, sizeof(err)) == -1)
			fatalx(EX_NOUSER, "%s", err);
		if (u->uid != geteuid())
			fatalx(EX_NOPERM, "--user %s: only root can change "
			    "user", cfg->user);
		return 0;
	}
	if (caps_lookup_user(cfg->user[0] ? cfg->user : "nobody", u, err,
	    sizeof(err)) == -1)
		fatalx(EX_NOUSER, "%s", err);
	return 1;
}

void
daemonize(void)
{
	pid_t	pid;
	int	fd;

	if ((pid = fork()) == -1)
		fatal(EX_OSERR, "fork");
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		fatal(EX_OSERR, "setsid");
	if (chdir("/") == -1)
		fatal(EX_OSERR, "chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
}

void
write_pidfile(const char *path)
{
	char	buf[32];
	int	fd, n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1 || write(fd, buf, (size_t)n) != n)
		fatal(EX_CANTCREAT, "pid file %s", path);
	close(fd);
}

/* keep_bind: the relays keep CAP_NET_BIND_SERVICE, the tunnels nothing. */
void
drop_privileges(const struct daemon *d, int keep_bind)
{
	char	err[256], desc[256];

	if (d->from_root ? caps_drop_root(&d->user, keep_bind, err,
	    sizeof(err)) : caps_restrict(keep_bind, err, sizeof(err)))
		fatalx(EX_OSERR, "%s", err);
	caps_describe(desc, sizeof(desc));
	if (keep_bind)
		log_info("running as %s", desc);
	else
		log_info("tunnel keeper %ld running as %s", (long)getpid(),
		    desc);
}

/* From here on only the system calls on caps/sandbox.c's list work. */
void
enter_sandbox(const struct config *cfg)
{
	char	err[256];
	int	n;

	if (cfg->no_sandbox) {
		log_info("sandbox off (--no-sandbox)");
		return;
	}
	if ((n = sandbox_enter(err, sizeof(err))) == -1)
		fatalx(EX_OSERR, "%s", err);
	log_info("sandbox on: %d system calls allowed", n);
}

void
open_units(struct daemon *d)
{
	struct unit	*u;
	char		 err[512];
	size_t		 i;
	int		 kind, code = EX_OSERR;

	for (kind = 0; kind < UNIT_NKINDS; kind++)
		for (i = 0; i < unit_nconfs(&d->cfg, kind); i++) {
			if ((u = unit_new(d->base, &d->cfg, kind, i, err,
			    sizeof(err), &code)) == NULL)
				fatalx(code, "%s", err);
			TAILQ_INSERT_TAIL(&d->units, u, entry);
		}
}
