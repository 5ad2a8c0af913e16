/*
 * Status: the text, SIGUSR1's log lines, the control socket, --status and
 * --status --json. A client of the control socket may first send "json"
 * (or "status") and a newline, or shut its side down; one that says
 * nothing gets the text after REQUEST_WAIT_MS.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "relay/addr.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/tunproc.h"

#define REQUEST_WAIT_MS	300

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

/* A client that asked for the status text gets it, then EOF. */
static void
send_text(struct daemon *d, int fd)
{
	char	*text = status_text(d);

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

struct json_req {
	struct daemon	*d;
	int		 fd;
};

/* The tunnels' part has come (its health line, then its JSON array), or
 * why it has not: the whole document goes out. */
static void
on_tunnels_json(void *arg, const char *text, const char *why)
{
	struct json_req	*req = arg;
	const char	*nl, *tunnels = NULL;
	char		*health, *doc, tun_why[512] = "";
	size_t		 len, off = 0;
	ssize_t		 n;

	if (text != NULL && (nl = strchr(text, '\n')) != NULL) {
		if (nl - text != 2 || strncmp(text, "ok", 2) != 0)
			snprintf(tun_why, sizeof(tun_why), "%.*s",
			    (int)(nl - text), text);
		tunnels = nl + 1;
	} else if (text != NULL || why != NULL)
		snprintf(tun_why, sizeof(tun_why), "tunnels: %s", text != NULL ?
		    "no answer" : why);
	if (text == NULL && why == NULL)
		doc = NULL;		/* a --fork child's copy */
	else {
		if ((health = relays_health(req->d)) == NULL &&
		    tun_why[0] != '\0')
			health = strdup(tun_why);
		doc = status_json(req->d, tunnels, health);
		free(health);
	}
	/* Larger than the few status lines: written with a short wait. */
	len = doc != NULL ? strlen(doc) : 0;
	while (off < len && (n = send(req->fd, doc + off, len - off,
	    MSG_NOSIGNAL)) > 0)
		off += (size_t)n;
	free(doc);
	close(req->fd);
	free(req);
}

static void
send_json(struct daemon *d, int fd)
{
	struct timeval	 tv = { 2, 0 };
	struct json_req	*req;

	/* Blocking, for at most that long: the control socket is the
	 * administrator's, and a document rarely exceeds its buffer. */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((req = malloc(sizeof(*req))) == NULL) {
		close(fd);
		return;
	}
	req->d = d;
	req->fd = fd;
	if (d->tunproc != NULL)
		tunproc_ask(d->tunproc, 'J', on_tunnels_json, req);
	else
		on_tunnels_json(req, "ok\n[]", NULL);
}

struct ctl_client {
	struct daemon	*d;
	int		 fd;
	struct event	*ev;
	char		 buf[16];
	size_t		 len;
};

/* The client's request line, its EOF, or the wait's end. */
static void
on_request(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client	*c = arg;
	struct timeval		 tv = { 0, REQUEST_WAIT_MS * 1000 };
	ssize_t			 n = 0;
	int			 json;

	if (what & EV_READ) {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
		    MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			event_add(c->ev, &tv);
			return;
		}
		if (n > 0)
			c->len += (size_t)n;
		c->buf[c->len] = '\0';
		if (n > 0 && strchr(c->buf, '\n') == NULL &&
		    c->len < sizeof(c->buf) - 1) {
			event_add(c->ev, &tv);
			return;
		}
	}
	json = strncmp(c->buf, "json", 4) == 0;
	event_free(c->ev);
	if (json)
		send_json(c->d, c->fd);
	else
		send_text(c->d, c->fd);
	free(c);
}

static void
on_control(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct daemon		*d = arg;
	struct timeval		 tv = { 0, REQUEST_WAIT_MS * 1000 };
	struct ctl_client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		send_text(d, fd);
		return;
	}
	c->d = d;
	c->fd = fd;
	if ((c->ev = event_new(d->base, fd, EV_READ, on_request, c)) == NULL ||
	    event_add(c->ev, &tv) == -1) {
		if (c->ev != NULL)
			event_free(c->ev);
		free(c);
		send_text(d, fd);
	}
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
	const char		*req;
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
	req = cfg->json ? "json\n" : "status\n";
	if (write(fd, req, strlen(req)) == -1 || shutdown(fd, SHUT_WR) == -1)
		fatal(EX_UNAVAILABLE, "cannot ask relayd at %s", cfg->control);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	exit(n == 0 ? 0 : EX_IOERR);
}
