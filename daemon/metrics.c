/*
 * --metrics: a small HTTP/1.1 server in the relay process's main loop,
 * after the privilege drop and inside the sandbox (it only accepts, reads
 * and writes). GET or HEAD /metrics gives the Prometheus text format,
 * /healthz 200 or 503 with a one-line reason. One request a connection;
 * at most SCRAPES_MAX at once (more are closed at accept), a head of at
 * most HTTP_HEAD_MAX bytes within HEAD_TIMEOUT, an answer taken within
 * WRITE_TIMEOUT: nothing a scraper does can hold more than that.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "relay/addr.h"
#include "relay/httphead.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/tunproc.h"

#define SCRAPES_MAX	16
#define HEAD_TIMEOUT	5	/* seconds */
#define WRITE_TIMEOUT	10

struct scrape {
	TAILQ_ENTRY(scrape)	 entry;
	struct metrics		*m;
	int			 fd;
	struct event		*ev;		/* reading, then writing */
	struct event		*timer;
	char			 in[HTTP_HEAD_MAX];
	size_t			 inlen;
	int			 head_only;	/* HEAD: no body */
	int			 health;	/* /healthz, not /metrics */
	char			*out;
	size_t			 outlen, outoff;
};

struct metrics {
	struct daemon		*d;
	struct listener		*l;
	TAILQ_HEAD(, scrape)	 scrapes;
	unsigned		 n;
};

static void
scrape_free(struct scrape *s)
{
	TAILQ_REMOVE(&s->m->scrapes, s, entry);
	s->m->n--;
	if (s->ev != NULL)	/* none when out of memory answering */
		event_free(s->ev);
	event_free(s->timer);
	close(s->fd);
	free(s->out);
	free(s);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	scrape_free(arg);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct scrape	*s = arg;
	ssize_t		 n;

	while (s->outoff < s->outlen) {
		n = send(s->fd, s->out + s->outoff, s->outlen - s->outoff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		s->outoff += (size_t)n;
	}
	scrape_free(s);
}

/* Sends status, its extra header lines and body, then closes. */
static void
respond(struct scrape *s, const char *status, const char *headers,
    const char *type, const char *body)
{
	struct timeval	tv = { WRITE_TIMEOUT, 0 };
	size_t		blen = strlen(body);
	int		n;

	n = asprintf(&s->out, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s", status,
	    type, blen, headers, s->head_only ? "" : body);
	if (n == -1) {
		s->out = NULL;
		scrape_free(s);
		return;
	}
	s->outlen = (size_t)n;
	event_free(s->ev);
	if ((s->ev = event_new(s->m->d->base, s->fd, EV_WRITE | EV_PERSIST,
	    on_write, s)) == NULL || event_add(s->ev, NULL) == -1 ||
	    evtimer_add(s->timer, &tv) == -1) {
		log_warnx("metrics: cannot answer: out of memory");
		scrape_free(s);
	}
}

static void
respond_text(struct scrape *s, const char *status, const char *text)
{
	respond(s, status, "", "text/plain; charset=utf-8", text);
}

/* The tunnels' part has come (text: its health line, then its metrics),
 * or why it has not. */
static void
on_tunnels(void *arg, const char *text, const char *why)
{
	struct scrape	*s = arg;
	const char	*body = "", *nl;
	char		*relays_why, *page, tun_why[512] = "";

	if (text == NULL && why == NULL) {	/* a --fork child's copy */
		scrape_free(s);
		return;
	}
	if (text != NULL && (nl = strchr(text, '\n')) != NULL) {
		if ((size_t)(nl - text) != 2 || strncmp(text, "ok", 2) != 0)
			snprintf(tun_why, sizeof(tun_why), "%.*s",
			    (int)(nl - text), text);
		body = nl + 1;
	} else if (text == NULL)
		snprintf(tun_why, sizeof(tun_why), "tunnels: %s", why);
	relays_why = relays_health(s->m->d);
	if (relays_why == NULL && tun_why[0] != '\0')
		relays_why = strdup(tun_why);
	if (s->health) {
		if (relays_why == NULL)
			respond_text(s, "200 OK", "ok\n");
		else if (asprintf(&page, "%s\n", relays_why) != -1) {
			respond_text(s, "503 Service Unavailable", page);
			free(page);
		} else
			respond_text(s, "503 Service Unavailable", "\n");
		free(relays_why);
		return;
	}
	page = metrics_relays_text(s->m->d, relays_why);
	free(relays_why);
	if (page == NULL || asprintf(&relays_why, "%s%s", page, body) == -1) {
		free(page);
		respond_text(s, "500 Internal Server Error", "out of memory\n");
		return;
	}
	free(page);
	respond(s, "200 OK", "", "text/plain; version=0.0.4; charset=utf-8",
	    relays_why);
	free(relays_why);
}

/* A whole head: what it asks for. */
static void
route(struct scrape *s, const struct http_head *h)
{
	int	get = strcmp(h->method, "GET") == 0;

	s->head_only = strcmp(h->method, "HEAD") == 0;
	if (strcmp(h->path, "/metrics") != 0 &&
	    strcmp(h->path, "/healthz") != 0) {
		respond_text(s, "404 Not Found", "not found: try /metrics or "
		    "/healthz\n");
		return;
	}
	if (!get && !s->head_only) {
		respond(s, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
		    "text/plain; charset=utf-8", "method not allowed\n");
		return;
	}
	s->health = strcmp(h->path, "/healthz") == 0;
	if (s->m->d->tunproc != NULL)
		tunproc_ask(s->m->d->tunproc, 'M', on_tunnels, s);
	else
		on_tunnels(s, "ok\n", NULL);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct scrape		*s = arg;
	struct http_head	 h;
	ssize_t			 n;
	long			 done;

	n = recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen,
	    MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		scrape_free(s);
		return;
	}
	s->inlen += (size_t)n;
	if ((done = http_head_parse(s->in, s->inlen, &h)) == 0)
		return;
	/* Nothing more is read; the head's timer becomes the answer's. */
	event_del(s->ev);
	evtimer_del(s->timer);
	if (done > 0)
		route(s, &h);
	else if (s->inlen >= sizeof(s->in))
		scrape_free(s);		/* too long: not worth an answer */
	else
		respond_text(s, "400 Bad Request", "bad request\n");
}

static void
on_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct timeval	 tv = { HEAD_TIMEOUT, 0 };
	struct metrics	*m = arg;
	struct scrape	*s;

	if (m->n >= SCRAPES_MAX || (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	s->m = m;
	s->fd = fd;
	TAILQ_INSERT_TAIL(&m->scrapes, s, entry);
	m->n++;
	s->ev = event_new(m->d->base, fd, EV_READ | EV_PERSIST, on_read, s);
	s->timer = evtimer_new(m->d->base, on_timeout, s);
	if (s->ev == NULL || s->timer == NULL || event_add(s->ev, NULL) ==
	    -1 || evtimer_add(s->timer, &tv) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		if (s->timer != NULL)
			event_free(s->timer);
		TAILQ_REMOVE(&m->scrapes, s, entry);
		m->n--;
		close(fd);
		free(s);
	}
}

/* --metrics's address: PORT alone is 127.0.0.1:PORT. */
static void
metrics_spec(const char *v, struct addr_spec *spec)
{
	char	err[256];

	if (addr_parse_listen(v, spec, err, sizeof(err)) == -1)
		fatalx(EX_USAGE, "--metrics %s: %s", v, err);
	if (spec->kind == ADDR_INET && strchr(v, ':') == NULL) {
		strcpy(spec->host, "127.0.0.1");
		spec->numeric = 1;
	}
}

void
open_metrics(struct daemon *d)
{
	struct addr_spec	 spec;
	struct metrics		*m;
	char			 err[512];
	size_t			 i;
	int			 code;

	procstat_init();
	if (d->cfg.metrics == NULL)
		return;
	metrics_spec(d->cfg.metrics, &spec);
	if ((m = calloc(1, sizeof(*m))) == NULL)
		fatalx(EX_OSERR, "out of memory");
	m->d = d;
	TAILQ_INIT(&m->scrapes);
	if ((m->l = listener_bind(d->base, &spec, on_accept, m, err,
	    sizeof(err), &code)) == NULL)
		fatalx(code, "--metrics: %s", err);
	for (i = 0; i < listener_nsockets(m->l); i++)
		log_info("metrics on http://%s/metrics", listener_name(m->l,
		    i));
	listener_enable(m->l);
	d->metrics = m;
}

void
metrics_close(struct daemon *d, int in_child)
{
	struct metrics	*m = d->metrics;

	if (m == NULL)
		return;
	while (!TAILQ_EMPTY(&m->scrapes))
		scrape_free(TAILQ_FIRST(&m->scrapes));
	if (in_child)
		listener_free_in_child(m->l);
	else
		listener_free(m->l);
	free(m);
	d->metrics = NULL;
}
