/*
 * --route: a connection's first bytes are read (as far as a ClientHello or
 * a request head goes, at most PEEK_MAX, within --handshake-timeout),
 * the name they carry picks the target, and the bytes read go to that
 * target ahead of the pump, untouched: TLS is not terminated, HTTP not
 * rewritten, and the route stays for the whole connection.
 *
 * On a tls: listener, which terminates TLS, nothing is peeked: the step
 * drives the handshake itself, since the name the client asked for (the
 * one that picked the certificate) is known only at its end, and that
 * name picks the route. The connection's handshake phase then finds it
 * done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "relay/challenge.h"
#include "relay/config.h"
#include "relay/endpoint.h"
#include "relay/peek.h"
#include "relay/route.h"
#include "relay/route_step.h"
#include "relay/service.h"
#include "relay/tls.h"

#define FIRST_READ	4096	/* a ClientHello or request head's usual size */

static void	route_ready(struct conn *, void *, int);

/* What was read so far, in a buffer that grows to PEEK_MAX as needed. */
struct route_read {
	size_t		 have;
	size_t		 cap;
	uint8_t		*buf;
	/* A tls: listener's client: its handshake starts from the loop (a
	 * TLS endpoint reports nothing before), or, in a relay with ACME
	 * and no routes, the step ends from there. */
	struct event	*kick;
	struct conn	*conn;		/* for the kick */
	int		 tls;
};

static void	on_kick(evutil_socket_t, short, void *);

/* A tls: listener's client gets no buffer, but a kick from the loop,
 * since a step may not end in its start. */
static void *
step_start(struct conn *c)
{
	struct route_read	*r;
	struct timeval		 now = { 0, 0 };

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (conn_client(c)->ops->handshake != NULL) {
		r->tls = 1;
		r->conn = c;
		if ((r->kick = evtimer_new(conn_service(c)->base, on_kick,
		    r)) != NULL && evtimer_add(r->kick, &now) == 0)
			return r;
	} else if ((r->buf = malloc(FIRST_READ)) != NULL) {
		r->cap = FIRST_READ;
		return r;
	}
	if (r->kick != NULL)
		event_free(r->kick);
	free(r);
	return NULL;
}

static void
step_free(void *state)
{
	struct route_read	*r = state;

	if (r->kick != NULL)
		event_free(r->kick);
	free(r->buf);
	free(r);
}

/* Room for the next read: 0, or -1 when full or out of memory. */
static int
grow(struct route_read *r)
{
	uint8_t	*b;
	size_t	 cap = r->cap * 2 < PEEK_MAX ? r->cap * 2 : PEEK_MAX;

	if (r->have < r->cap)
		return 0;
	if (cap == r->cap || (b = realloc(r->buf, cap)) == NULL)
		return -1;
	r->buf = b;
	r->cap = cap;
	return 0;
}

/* The name picks a route, or the default; none is a refusal. */
static void
step_finish(struct conn *c, struct route_read *r, const char *name)
{
	struct service			*svc = conn_service(c);
	const struct route_table	*t = svc->routes;
	int				 i;
	char				 why[PEEK_NAME_MAX + 32];

	i = t != NULL ? route_match(t->names, t->n, name) : -1;
	if (i == -1 && t != NULL && !t->has_default) {
		snprintf(why, sizeof(why), "no route for %s", *name ? name :
		    "a connection without a name");
		conn_refuse(c, why);
		return;
	}
	if (i >= 0)
		conn_set_target(c, &t->routes[i].to, t->tls[i],
		    t->routes[i].name);
	else
		conn_set_target(c, svc->to, svc->tls_to, "default");
	if (t != NULL)
		svc->routed[i >= 0 ? (size_t)i : t->n]++;
	if (conn_push_target(c, r->buf, r->have) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	conn_step_done(c);
}

/*
 * An ACME HTTP-01 request is answered here and never relayed: the key
 * authorization, or 404 for a token we do not know. Returns 1 when c
 * was one (and is closed).
 */
static int
answer_challenge(struct conn *c, struct route_read *r)
{
	struct endpoint	*client = conn_client(c);
	char		 target[512], reply[1024];
	int		 rc;

	if (peek_http_target(r->buf, r->have, target, sizeof(target)) == -1 ||
	    (rc = challenge_reply(target, reply, sizeof(reply))) == 0)
		return 0;
	/* A small reply into an empty socket buffer: one write does. */
	if (rc == 1)
		(void)client->ops->write(client, reply, strlen(reply));
	conn_close(c, rc == 1 && strncmp(reply + 9, "200", 3) == 0 ?
	    "ACME challenge answered" : "ACME challenge unknown");
	return 1;
}

/*
 * A tls: listener's client: the handshake, then the name it settled on
 * picks the route. A failed handshake is refused as the connection's
 * own handshake phase would refuse it.
 */
static void
tls_route(struct conn *c, struct route_read *r)
{
	struct endpoint	*client = conn_client(c);
	const char	*sni;
	char		 name[PEEK_NAME_MAX], why[256];

	switch (client->ops->handshake(client, why, sizeof(why))) {
	case 0:
		return;
	case -1:
		conn_refuse_tls(c, why);
		return;
	}
	name[0] = '\0';
	if ((sni = tls_endpoint_servername(client)) != NULL &&
	    peek_name(sni, strlen(sni), name, sizeof(name)) == -1) {
		conn_refuse(c, "routing: bad server name");
		return;
	}
	step_finish(c, r, name);
}

/* The loop's first turn for a tls: listener's client. A relay with ACME
 * runs its step on every listener (one service), but without routes its
 * tls: listeners have nothing to route: the step ends here. */
static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct route_read	*r = arg;

	if (conn_service(r->conn)->routes == NULL)
		conn_step_done(r->conn);
	else
		tls_route(r->conn, r);
}

static void
step_ready(struct conn *c, void *state, int what)
{
	struct route_read	*r = state;

	if (r->tls)
		tls_route(c, r);
	else
		route_ready(c, r, 0);
}

/* Only plain listeners carry challenges. */
static void
acme_step_ready(struct conn *c, void *state, int what)
{
	struct route_read	*r = state;

	if (r->tls)
		tls_route(c, r);
	else
		route_ready(c, r, 1);
}

static void
route_ready(struct conn *c, void *state, int challenges)
{
	struct route_read	*r = state;
	struct endpoint		*client = conn_client(c);
	enum peek_status	 st;
	char			 name[PEEK_NAME_MAX], err[128], why[160];
	ssize_t			 n;

	if (grow(r) == -1) {
		conn_refuse(c, "routing: out of memory");
		return;
	}
	n = client->ops->read(client, r->buf + r->have, r->cap - r->have);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		snprintf(why, sizeof(why), "routing: %s", n == 0 ?
		    "connection closed before a name came" : strerror(errno));
		conn_refuse(c, why);
		return;
	}
	r->have += (size_t)n;
	st = (peek_is_tls(r->buf[0]) ? peek_tls_sni : peek_http_host)(r->buf,
	    r->have, name, sizeof(name), err, sizeof(err));
	switch (st) {
	case PEEK_NEED_MORE:
		return;
	case PEEK_DONE:
		if (challenges && !peek_is_tls(r->buf[0]) &&
		    answer_challenge(c, r))
			return;
		step_finish(c, r, name);
		return;
	case PEEK_ERROR:
		snprintf(why, sizeof(why), "routing: %s", err);
		conn_refuse(c, why);
		return;
	}
}

const struct conn_step route_step = {
	"routing", step_start, step_ready, step_free, 0
};

const struct conn_step acme_route_step = {
	"routing", step_start, acme_step_ready, step_free, 0
};

struct route_table *
route_table_new(const struct route_conf *routes, size_t n, int has_default,
    const char *ca, const char *verify_name, char *err, size_t errlen)
{
	struct route_table	*t;
	size_t			 i;

	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->names = calloc(n, sizeof(*t->names))) == NULL ||
	    (t->tls = calloc(n, sizeof(*t->tls))) == NULL) {
		route_table_free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->routes = routes;
	t->n = n;
	t->has_default = has_default;
	for (i = 0; i < n; i++) {
		t->names[i] = routes[i].name;
		if (routes[i].to.tls && (t->tls[i] = tls_client_new(ca,
		    verify_name != NULL ? verify_name : routes[i].to.host,
		    err, errlen)) == NULL) {
			route_table_free(t);
			return NULL;
		}
	}
	return t;
}

int
route_table_reload_tls(struct route_table *t, char *err, size_t errlen)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < t->n; i++) {
		if (t->tls[i] == NULL)
			continue;
		if (tls_client_reload(t->tls[i], err, errlen) == -1)
			return -1;
		n++;
	}
	return n;
}

void
route_table_free(struct route_table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; t->tls != NULL && i < t->n; i++)
		tls_client_free(t->tls[i]);
	free(t->tls);
	free(t->names);
	free(t);
}
