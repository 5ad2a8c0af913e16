/*
 * End-to-end probes of -R forwards. A token is random, so that neither a
 * visitor nor a peer can make one pass for another: "RELAYD-PROBE ",
 * 32 hex digits, CRLF. While a token may come back (its open is at the
 * server, or the token left less than AWAIT_SEC ago), every channel the
 * server opens for a forward is looked at before its target is dialled:
 * its first bytes are read (up to the token's length, for at most
 * CATCH_MS), and a visitor's are put back in front of the rest.
 */
#include <sys/queue.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>

#include "relay/addr.h"
#include "relay/log.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/probe.h"

#define TOKEN_PREFIX	"RELAYD-PROBE "
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)
#define TOKEN_LEN	(TOKEN_PREFIX_LEN + 32 + 2)
#define CATCH_MS	1000	/* a visitor that says nothing waits this */
#define AWAIT_SEC	5	/* a token is awaited this long after it left */

struct probe {
	TAILQ_ENTRY(probe)	 entry;
	struct probes		*set;
	char			 token[TOKEN_LEN + 1];
	struct open_req		*open;		/* while the open is pending */
	struct endpoint		*ep;		/* our end, once open */
	size_t			 written;
	struct timespec		 opened;	/* its token left then */
	enum probe_result	 result;
	enum probe_result	*slot;
	char			*why;		/* of a refused open */
	size_t			 whylen;
};

struct catch {
	TAILQ_ENTRY(catch)	 entry;
	struct probes		*set;
	struct endpoint		*ep;
	uint8_t			 buf[TOKEN_LEN];
	size_t			 have;
	struct event		 deadline;
	void			(*visitor)(struct endpoint *, void *);
	void			*arg;
};

struct probes {
	struct event_base	*base;
	struct opens		*opens;
	const char		*name;
	TAILQ_HEAD(, probe)	 probes;
	TAILQ_HEAD(, catch)	 catches;
};

struct probes *
probes_new(struct event_base *base, struct opens *opens, const char *name)
{
	struct probes	*set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->base = base;
	set->opens = opens;
	set->name = name;
	TAILQ_INIT(&set->probes);
	TAILQ_INIT(&set->catches);
	return set;
}

/* --- the probe's own end --- */

static void
write_token(struct probe *p)
{
	ssize_t	n;

	while (p->written < TOKEN_LEN) {
		n = p->ep->ops->write(p->ep, p->token + p->written,
		    TOKEN_LEN - p->written);
		if (n <= 0) {
			endpoint_want(p->ep, n == -1 && errno == EAGAIN ?
			    EP_WRITE : 0);
			return;
		}
		p->written += (size_t)n;
	}
	endpoint_want(p->ep, 0);	/* the answer comes as a channel */
}

static void
on_probe_ready(struct endpoint *ep, int what, void *arg)
{
	struct probe	*p = arg;

	if (what & EP_LOST) {
		p->ep = NULL;		/* the session is gone with it */
		ep->ops->free(ep);
	} else if (what & EP_WRITE)
		write_token(p);
}

static void
on_opened(struct endpoint *ep, const char *why, void *arg)
{
	struct probe	*p = arg;

	p->open = NULL;
	if (ep == NULL) {
		/* The server's refusal says nothing listens there; a lost
		 * session or a spent budget says nothing. */
		if (strncmp(why, "connect failed: ", 16) == 0)
			p->result = PROBE_REFUSED;
		snprintf(p->why, p->whylen, "%s", why);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &p->opened);
	p->ep = ep;
	ep->cb = on_probe_ready;
	ep->cbarg = p;
	write_token(p);
}

static void
make_token(char *token)
{
	unsigned char	r[16];
	size_t		i;
	int		n;

	if (RAND_bytes(r, sizeof(r)) != 1)
		log_warnx("no random bytes for a probe token");
	n = snprintf(token, TOKEN_LEN + 1, "%s", TOKEN_PREFIX);
	for (i = 0; i < sizeof(r); i++)
		n += snprintf(token + n, TOKEN_LEN + 1 - (size_t)n, "%02x",
		    r[i]);
	snprintf(token + n, TOKEN_LEN + 1 - (size_t)n, "\r\n");
}

int
probes_send(struct probes *set, const char *host, int port,
    enum probe_result *slot, char *why, size_t whylen)
{
	struct addr_spec	 to;
	struct in6_addr		 any;
	struct probe		*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	memset(&to, 0, sizeof(to));
	to.kind = ADDR_INET;
	snprintf(to.host, sizeof(to.host), "%s", host);
	to.port = (uint16_t)port;
	to.numeric = inet_pton(AF_INET, host, &any) == 1 ||
	    inet_pton(AF_INET6, host, &any) == 1;
	p->set = set;
	p->result = PROBE_PENDING;
	p->slot = slot;
	p->why = why;
	p->whylen = whylen;
	why[0] = '\0';
	make_token(p->token);
	TAILQ_INSERT_TAIL(&set->probes, p, entry);
	/* Ahead of the queue: a probe does not wait behind slow opens. */
	if ((p->open = open_request_first(set->opens, &to, 0, on_opened,
	    p)) == NULL) {
		TAILQ_REMOVE(&set->probes, p, entry);
		free(p);
		return -1;
	}
	return 0;
}

static void
probe_free(struct probe *p)
{
	TAILQ_REMOVE(&p->set->probes, p, entry);
	if (p->open != NULL)
		open_cancel(p->open);
	if (p->ep != NULL)
		p->ep->ops->free(p->ep);
	free(p);
}

void
probes_end(struct probes *set)
{
	struct probe	*p;

	while ((p = TAILQ_FIRST(&set->probes)) != NULL) {
		if (p->result == PROBE_PENDING && p->ep != NULL)
			p->result = PROBE_ELSEWHERE;
		*p->slot = p->result;
		probe_free(p);
	}
}

int
probes_awaited(const struct probes *set)
{
	const struct probe	*p;
	struct timespec		 now;

	/* The server's channel for a probe may come before the answer to
	 * the probe's own open, in the same read. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	TAILQ_FOREACH(p, &set->probes, entry)
		if (p->result == PROBE_PENDING && ((p->open != NULL &&
		    open_sent(p->open)) || (p->ep != NULL &&
		    now.tv_sec - p->opened.tv_sec < AWAIT_SEC)))
			return 1;
	return 0;
}

/* --- channels that may be a probe's --- */

static void
catch_free(struct catch *c)
{
	TAILQ_REMOVE(&c->set->catches, c, entry);
	event_del(&c->deadline);
	free(c);
}

/* Not a probe: the visitor's connection goes on, its bytes put back. */
static void
hand_over(struct catch *c)
{
	struct endpoint	*ep = c->ep;
	void		(*visitor)(struct endpoint *, void *) = c->visitor;
	void		*arg = c->arg;
	const char	*name = c->set->name;
	int		 kept = chan_unread(ep, c->buf, c->have);

	log_debug("tunnel %s: not a probe: a visitor (%zu bytes looked at)",
	    name, c->have);
	catch_free(c);
	if (kept == -1) {
		log_warnx("tunnel %s: out of memory: a forwarded connection "
		    "closed", name);
		ep->ops->free(ep);
		return;
	}
	visitor(ep, arg);
}

static struct probe *
probe_of(struct probes *set, const uint8_t *token)
{
	struct probe	*p;

	TAILQ_FOREACH(p, &set->probes, entry)
		if (memcmp(p->token, token, TOKEN_LEN) == 0)
			return p;
	return NULL;
}

static void
on_catch_ready(struct endpoint *ep, int what, void *arg)
{
	struct catch	*c = arg;
	struct probe	*p;
	size_t		 cmp;
	ssize_t		 n;

	n = ep->ops->read(ep, c->buf + c->have, TOKEN_LEN - c->have);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n == -1) {
		catch_free(c);
		ep->ops->free(ep);	/* the session is gone */
		return;
	}
	c->have += (size_t)n;
	cmp = c->have < TOKEN_PREFIX_LEN ? c->have : TOKEN_PREFIX_LEN;
	if (n == 0 || memcmp(c->buf, TOKEN_PREFIX, cmp) != 0) {
		hand_over(c);
		return;
	}
	if (c->have < TOKEN_LEN)
		return;
	if ((p = probe_of(c->set, c->buf)) == NULL) {
		hand_over(c);
		return;
	}
	p->result = PROBE_OK;
	log_debug("tunnel %s: probe came back", c->set->name);
	catch_free(c);
	ep->ops->free(ep);
}

static void
on_catch_deadline(evutil_socket_t fd, short what, void *arg)
{
	hand_over(arg);
}

void
probes_catch(struct probes *set, struct endpoint *ep,
    void (*visitor)(struct endpoint *, void *), void *arg)
{
	struct timeval	 tv = { 0, CATCH_MS * 1000 };
	struct catch	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		visitor(ep, arg);
		return;
	}
	c->set = set;
	c->ep = ep;
	c->visitor = visitor;
	c->arg = arg;
	TAILQ_INSERT_TAIL(&set->catches, c, entry);
	evtimer_assign(&c->deadline, set->base, on_catch_deadline, c);
	evtimer_add(&c->deadline, &tv);
	ep->cb = on_catch_ready;
	ep->cbarg = c;
	endpoint_want(ep, EP_READ);
}

void
probes_free(struct probes *set)
{
	struct catch	*c;
	struct probe	*p;

	if (set == NULL)
		return;
	while ((p = TAILQ_FIRST(&set->probes)) != NULL)
		probe_free(p);
	while ((c = TAILQ_FIRST(&set->catches)) != NULL) {
		c->ep->ops->free(c->ep);
		catch_free(c);
	}
	free(set);
}
