/*
 * SSH channels as pump endpoints. There is no descriptor per channel: the
 * tunnel's passes tell the pump when a channel may be read or written.
 * Every libssh2 call goes through tunnel_may_call/tunnel_called so that
 * a partly sent packet is always completed by the call that started it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/log.h"
#include "tunnel/tunnel_int.h"

/* Maps a libssh2 failure to an errno the pump understands; failures of
 * the session itself take the whole tunnel down. */
static ssize_t
chan_error(struct chan *c, int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_EAGAIN:
		errno = EAGAIN;
		break;
	case LIBSSH2_ERROR_CHANNEL_CLOSED:
	case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
	case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
		errno = EPIPE;
		break;
	case LIBSSH2_ERROR_BAD_USE:
		log_warnx("libssh2 refused a call while a packet was half "
		    "sent; restarting the session");
		/* FALLTHROUGH */
	default:
		tunnel_fail(c->t, "session error");
		errno = ECONNABORTED;
		break;
	}
	return -1;
}

static ssize_t
chan_read(struct endpoint *ep, void *buf, size_t len)
{
	struct chan	*c = (struct chan *)ep;
	ssize_t		 n;

	if (c->ch == NULL) {
		errno = ECONNABORTED;
		return -1;
	}
	if (!tunnel_may_call(c->t, c, OP_READ)) {
		errno = EAGAIN;
		return -1;
	}
	n = libssh2_channel_read(c->ch, buf, len);
	tunnel_called(c->t, c, OP_READ, (int)n);
	if (n > 0) {
		c->t->moved += (uint64_t)n;
		return n;
	}
	/* 0 is EOF only once libssh2 says so; else nothing is queued. */
	if (n == 0 && libssh2_channel_eof(c->ch) != 1) {
		errno = EAGAIN;
		return -1;
	}
	if (n == 0)
		c->t->moved++;
	return n == 0 ? 0 : chan_error(c, (int)n);
}

static ssize_t
chan_write(struct endpoint *ep, const void *buf, size_t len)
{
	struct chan	*c = (struct chan *)ep;
	ssize_t		 n;

	if (c->ch == NULL) {
		errno = ECONNABORTED;
		return -1;
	}
	if (!tunnel_may_call(c->t, c, OP_WRITE)) {
		errno = EAGAIN;
		return -1;
	}
	n = libssh2_channel_write(c->ch, buf, len);
	tunnel_called(c->t, c, OP_WRITE, (int)n);
	if (n > 0) {
		c->pending_write = 0;
		c->t->moved += (uint64_t)n;
		return n;
	}
	if (n == LIBSSH2_ERROR_EAGAIN && c->t->owner == c)
		c->pending_write = len;
	/* 0: the peer's window is shut; a window adjust will reopen it. */
	return n == 0 ? (errno = EAGAIN, -1) : chan_error(c, (int)n);
}

static int
send_eof(struct chan *c)
{
	int	rc;

	if (!tunnel_may_call(c->t, c, OP_EOF))
		return LIBSSH2_ERROR_EAGAIN;
	rc = libssh2_channel_send_eof(c->ch);
	tunnel_called(c->t, c, OP_EOF, rc);
	return rc;
}

/* The EOF is sent by chan_reap: always from the same call site. */
static int
chan_shutdown_write(struct endpoint *ep)
{
	struct chan	*c = (struct chan *)ep;

	if (c->ch != NULL) {
		c->eof_pending = 1;
		tunnel_kick(c->t);
	}
	return 0;
}

static void
chan_want(struct endpoint *ep, int what)
{
	struct chan	*c = (struct chan *)ep;

	/* Data may already wait in libssh2's queue, where no socket event
	 * will announce it: look again from the loop. */
	if (what & ~ep->wanted)
		tunnel_kick(c->t);
}

static void
chan_free(struct endpoint *ep)
{
	struct chan	*c = (struct chan *)ep;
	struct tunnel	*t = c->t;

	TAILQ_REMOVE(&t->chans, c, entry);
	if (c->ch == NULL) {
		free(c);
		return;
	}
	c->closing = 1;
	TAILQ_INSERT_TAIL(&t->closing, c, entry);
	tunnel_kick(t);
}

static const struct endpoint_ops chan_ops = {
	chan_read, chan_write, chan_shutdown_write, chan_want, chan_free,
	NULL,
	NULL	/* never spliced: libssh2 carries the bytes */
};

struct chan *
chan_new(struct tunnel *t, LIBSSH2_CHANNEL *ch)
{
	struct chan	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->ep.ops = &chan_ops;
	c->t = t;
	c->ch = ch;
	TAILQ_INSERT_TAIL(&t->chans, c, entry);
	return c;
}

/*
 * Data or EOF is queued, or our receive window runs low: libssh2 re-opens
 * the window only at the start of a read, so without that read a server
 * that filled the window would wait for us forever.
 */
int
chan_readable(struct chan *c)
{
	unsigned long	avail = 0, initial = 0, window;

	if (c->ch == NULL)
		return 1;
	window = libssh2_channel_window_read_ex(c->ch, &avail, &initial);
	return avail > 0 || window < initial / 2 ||
	    libssh2_channel_eof(c->ch) == 1;
}

void
chan_drain(struct chan *c)
{
	char	none;
	ssize_t	n;

	/* A read drains the whole socket into libssh2's queues; with no
	 * room it takes no data, leaving that to the pump. */
	if (c->ch == NULL || !tunnel_may_call(c->t, c, OP_READ))
		return;
	n = libssh2_channel_read(c->ch, &none, 0);
	tunnel_called(c->t, c, OP_READ, (int)n);
}

void
chan_finish_owned(struct chan *c, enum ssh_op op)
{
	static char	scratch[32768];
	ssize_t		n;

	/* The packet is already encrypted inside libssh2; repeating the call
	 * with the same length completes it whatever the buffer holds. */
	if (op == OP_WRITE)
		n = libssh2_channel_write(c->ch, scratch, c->pending_write <
		    sizeof(scratch) ? c->pending_write : sizeof(scratch));
	else if (op == OP_READ)
		n = libssh2_channel_read(c->ch, scratch, sizeof(scratch));
	else
		return;
	tunnel_called(c->t, c, op, (int)n);
}

int
chan_reap(struct tunnel *t)
{
	struct chan	*c, *next;
	int		 rc;

	TAILQ_FOREACH(c, &t->chans, entry) {
		if (!c->eof_pending)
			continue;
		if ((rc = send_eof(c)) == LIBSSH2_ERROR_EAGAIN)
			continue;
		c->eof_pending = 0;
		if (rc == LIBSSH2_ERROR_BAD_USE)
			tunnel_fail(t, "libssh2 refused an EOF");
	}
	for (c = TAILQ_FIRST(&t->closing); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (t->owner != NULL && t->owner != c)
			return 0;
		if (t->owner == c && t->owner_op == OP_EOF)
			(void)send_eof(c);
		else if (t->owner == c && t->owner_op != OP_FREE)
			chan_finish_owned(c, t->owner_op);
		if (t->owner == c && t->owner_op != OP_FREE)
			return 0;
		rc = libssh2_channel_free(c->ch);
		tunnel_called(t, c, OP_FREE, rc);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		TAILQ_REMOVE(&t->closing, c, entry);
		free(c);
	}
	return t->state == T_UP ? 0 : -1;
}

void
chan_detach_all(struct tunnel *t)
{
	struct chan	*c;

	while ((c = TAILQ_FIRST(&t->closing)) != NULL) {
		TAILQ_REMOVE(&t->closing, c, entry);
		free(c);
	}
	/* The session frees the libssh2 channels. */
	TAILQ_FOREACH(c, &t->chans, entry) {
		c->ch = NULL;
		c->eof_pending = 0;
	}
	/* Each connection closes, freeing its channel from the list. */
	while ((c = TAILQ_FIRST(&t->chans)) != NULL)
		c->ep.cb(&c->ep, EP_LOST, c->ep.cbarg);
}
