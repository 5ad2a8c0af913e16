/* Status: the text, SIGUSR1's log lines, the control socket, --status. */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "relay/addr.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/tunproc.h"

char *
status_text(const struct daemon *d)
{
	const struct unit	*u;
	char			*text = NULL;
	size_t			 len = 0, nold_r, nold_t;
	FILE			*fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	TAILQ_FOREACH(u, &d->units, entry)
		unit_write_status(u, fp);
	nold_r = units_count(&d->retired, UNIT_RELAY);
	nold_t = units_count(&d->retired, UNIT_TUNNEL);
	if (nold_r + nold_t > 0)
		fprintf(fp, "%zu relays and %zu tunnels finishing after a "
		    "reload\n", nold_r, nold_t);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

void
log_status(const struct daemon *d)
{
	char	*text, *line, *save = NULL;

	if ((text = status_text(d)) == NULL)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_info("status: %s", line);
	free(text);
}

/* A client of the control socket gets the status text, then EOF. */
static void
on_control(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct daemon	*d = arg;
	char		*text = status_text(d);

	if (d->tunproc != NULL) {	/* the tunnels' lines come from there */
		tunproc_status(d->tunproc, fd, text);
		return;
	}

	/* A few lines: the socket buffer takes them whole. */
	if (text != NULL && send(fd, text, strlen(text), MSG_NOSIGNAL |
	    MSG_DONTWAIT) == -1)
		log_debug("control: %s", strerror(errno));
	free(text);
	close(fd);
}

void
open_control(struct daemon *d)
{
	struct addr_spec	spec = { .kind = ADDR_UNIX };
	char			err[512];
	int			code;

	if (d->cfg.control == NULL)
		return;
	if (strlen(d->cfg.control) > ADDR_PATH_MAX)
		fatalx(EX_USAGE, "--control %s: path too long", d->cfg.control);
	strcpy(spec.path, d->cfg.control);
	if ((d->control = listener_bind(d->base, &spec, on_control, d, err,
	    sizeof(err), &code)) == NULL)
		fatalx(code, "%s", err);
	listener_enable(d->control);
}

void
print_status(const struct config *cfg)
{
	struct sockaddr_un	sun;
	char			buf[4096];
	ssize_t			n;
	int			fd;

	if (cfg->control == NULL)
		fatalx(EX_USAGE, "--status needs --control PATH (or control = "
		    "PATH in the config file)");
	if (strlen(cfg->control) > ADDR_PATH_MAX)
		fatalx(EX_USAGE, "--control %s: path too long", cfg->control);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, addr_unix_sockaddr(
	    cfg->control, &sun)) == -1)
		fatal(EX_UNAVAILABLE, "cannot reach relayd at %s",
		    cfg->control);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	exit(n == 0 ? 0 : EX_IOERR);
}
