/* The session's call lock, its recorded failure and its liveness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "relay/log.h"
#include "tunnel/sshcall.h"

struct sshcall {
	LIBSSH2_SESSION	*s;
	void		*owner;		/* the partial packet's holder */
	enum ssh_op	 owner_op;
	int		 in_pass;
	int		 stopped;
	char		 fail_why[160];	/* set by sshcall_fail */
	struct event	 ev_kick;	/* a pass soon, from the loop */
};

struct sshcall *
sshcall_new(struct event_base *base, void (*pass)(evutil_socket_t, short,
    void *), void *arg)
{
	struct sshcall	*sc;

	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	event_assign(&sc->ev_kick, base, -1, 0, pass, arg);
	return sc;
}

void
sshcall_free(struct sshcall *sc)
{
	if (sc == NULL)
		return;
	event_del(&sc->ev_kick);
	free(sc);
}

void
sshcall_begin(struct sshcall *sc, LIBSSH2_SESSION *s)
{
	sc->s = s;
}

void
sshcall_end(struct sshcall *sc)
{
	event_del(&sc->ev_kick);
	sc->s = NULL;
	sc->owner = NULL;
	sc->owner_op = OP_NONE;
	sc->stopped = 0;
	sc->in_pass = 0;
	sc->fail_why[0] = '\0';
}

LIBSSH2_SESSION *
sshcall_session(const struct sshcall *sc)
{
	return sc->s;
}

int
sshcall_may(struct sshcall *sc, void *who, enum ssh_op op)
{
	return sc->owner == NULL || (sc->owner == who && sc->owner_op == op);
}

void
sshcall_done(struct sshcall *sc, void *who, enum ssh_op op, int rc)
{
	if (rc == LIBSSH2_ERROR_EAGAIN && (libssh2_session_block_directions(
	    sc->s) & LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
		sc->owner = who;
		sc->owner_op = op;
	} else if (sc->owner == who && sc->owner_op == op) {
		sc->owner = NULL;
		sc->owner_op = OP_NONE;
	}
	/* Called from a socket's pump: the session's events and any input
	 * this call read are looked after by a pass. */
	sshcall_poke(sc);
}

void *
sshcall_holder(const struct sshcall *sc, enum ssh_op *op)
{
	if (op != NULL)
		*op = sc->owner_op;
	return sc->owner;
}

void
sshcall_fail(struct sshcall *sc, const char *why)
{
	if (sc->fail_why[0] == '\0') {
		char	msg[128];

		snprintf(sc->fail_why, sizeof(sc->fail_why), "%s: %s", why,
		    ssh_error(sc->s, msg, sizeof(msg)));
	}
	sshcall_kick(sc);
}

const char *
sshcall_failure(const struct sshcall *sc)
{
	return sc->fail_why[0] != '\0' ? sc->fail_why : NULL;
}

void
sshcall_stop(struct sshcall *sc)
{
	sc->stopped = 1;
}

int
sshcall_live(const struct sshcall *sc)
{
	return sc->s != NULL && sc->fail_why[0] == '\0' && !sc->stopped;
}

void
sshcall_kick(struct sshcall *sc)
{
	if (sc->s != NULL)
		event_active(&sc->ev_kick, EV_TIMEOUT, 0);
}

void
sshcall_in_pass(struct sshcall *sc, int in_pass)
{
	sc->in_pass = in_pass;
}

void
sshcall_poke(struct sshcall *sc)
{
	if (!sc->in_pass)
		sshcall_kick(sc);
}

const char *
ssh_error(LIBSSH2_SESSION *s, char *buf, size_t len)
{
	char	*msg = NULL;
	int	 n = 0;

	if (s != NULL)
		libssh2_session_last_error(s, &msg, &n, 0);
	if (msg == NULL || n <= 0)
		return strncpy(buf, "unknown error", len);
	return log_escape(buf, len, msg, (size_t)n);
}
