/*
 * SSH channels as pump endpoints. There is no descriptor per channel: the
 * tunnel's passes tell the pump when a channel may be read or written.
 * Every libssh2 call goes through sshcall_may/sshcall_done so that a
 * partly sent packet is always completed by the call that started it.
 */
#include <sys/queue.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/log.h"
#include "tunnel/channel.h"
#include "tunnel/sshcall.h"

/* A channel seen by the pump as an endpoint. */
struct chan {
	struct endpoint		 ep;	/* first: the pump sees &ep */
	TAILQ_ENTRY(chan)	 entry;
	struct chans		*set;
	LIBSSH2_CHANNEL		*ch;	/* NULL once the session is gone */
	size_t			 pending_write;	/* length of a partial write */
	uint8_t			 eof_pending;
	uint8_t			 closing;	/* freed by the pump's owner */
	uint8_t			*unread;	/* read first (chan_unread) */
	size_t			 unread_len;
};

struct chans {
	struct sshcall		*sc;
	TAILQ_HEAD(, chan)	 live;
	TAILQ_HEAD(, chan)	 closing;
	uint64_t		 moved;		/* channel bytes */
};

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
		sshcall_fail(c->set->sc, "session error");
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

	if (c->unread_len > 0) {
		n = (ssize_t)(len < c->unread_len ? len : c->unread_len);
		memcpy(buf, c->unread, (size_t)n);
		memmove(c->unread, c->unread + n, c->unread_len - (size_t)n);
		c->unread_len -= (size_t)n;
		return n;
	}
	if (c->ch == NULL) {
		errno = ECONNABORTED;
		return -1;
	}
	if (!sshcall_may(c->set->sc, c, OP_READ)) {
		errno = EAGAIN;
		return -1;
	}
	n = libssh2_channel_read(c->ch, buf, len);
	sshcall_done(c->set->sc, c, OP_READ, (int)n);
	if (n > 0) {
		c->set->moved += (uint64_t)n;
		return n;
	}
	/* 0 is EOF only once libssh2 says so; else nothing is queued. */
	if (n == 0 && libssh2_channel_eof(c->ch) != 1) {
		errno = EAGAIN;
		return -1;
	}
	if (n == 0)
		c->set->moved++;
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
	if (!sshcall_may(c->set->sc, c, OP_WRITE)) {
		errno = EAGAIN;
		return -1;
	}
	n = libssh2_channel_write(c->ch, buf, len);
	sshcall_done(c->set->sc, c, OP_WRITE, (int)n);
	if (n > 0) {
		c->pending_write = 0;
		c->set->moved += (uint64_t)n;
		return n;
	}
	if (n == LIBSSH2_ERROR_EAGAIN && sshcall_holder(c->set->sc, NULL) == c)
		c->pending_write = len;
	/* 0: the peer's window is shut; a window adjust will reopen it. */
	return n == 0 ? (errno = EAGAIN, -1) : chan_error(c, (int)n);
}

static int
send_eof(struct chan *c)
{
	int	rc;

	if (!sshcall_may(c->set->sc, c, OP_EOF))
		return LIBSSH2_ERROR_EAGAIN;
	rc = libssh2_channel_send_eof(c->ch);
	sshcall_done(c->set->sc, c, OP_EOF, rc);
	return rc;
}

/* The EOF is sent by chan_reap: always from the same call site. */
static int
chan_shutdown_write(struct endpoint *ep)
{
	struct chan	*c = (struct chan *)ep;

	if (c->ch != NULL) {
		c->eof_pending = 1;
		sshcall_kick(c->set->sc);
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
		sshcall_kick(c->set->sc);
}

static void
chan_free(struct endpoint *ep)
{
	struct chan	*c = (struct chan *)ep;
	struct chans	*set = c->set;

	TAILQ_REMOVE(&set->live, c, entry);
	free(c->unread);
	c->unread = NULL;
	if (c->ch == NULL) {
		free(c);
		return;
	}
	c->closing = 1;
	TAILQ_INSERT_TAIL(&set->closing, c, entry);
	sshcall_kick(set->sc);
}

static const struct endpoint_ops chan_ops = {
	chan_read, chan_write, chan_shutdown_write, chan_want, chan_free,
	NULL,
	NULL	/* never spliced: libssh2 carries the bytes */
};

struct chans *
chans_new(struct sshcall *sc)
{
	struct chans	*set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->sc = sc;
	TAILQ_INIT(&set->live);
	TAILQ_INIT(&set->closing);
	return set;
}

void
chans_free(struct chans *set)
{
	free(set);
}

struct endpoint *
chan_new(struct chans *set, LIBSSH2_CHANNEL *ch)
{
	struct chan	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->ep.ops = &chan_ops;
	c->set = set;
	c->ch = ch;
	TAILQ_INSERT_TAIL(&set->live, c, entry);
	return &c->ep;
}

int
chan_unread(struct endpoint *ep, const void *buf, size_t len)
{
	struct chan	*c = (struct chan *)ep;
	uint8_t		*p;

	if (len == 0)
		return 0;
	if ((p = malloc(c->unread_len + len)) == NULL)
		return -1;
	memcpy(p, buf, len);
	if (c->unread_len > 0)
		memcpy(p + len, c->unread, c->unread_len);
	free(c->unread);
	c->unread = p;
	c->unread_len += len;
	sshcall_kick(c->set->sc);
	return 0;
}

int
chans_empty(const struct chans *set)
{
	return TAILQ_EMPTY(&set->live) && TAILQ_EMPTY(&set->closing);
}

uint64_t
chans_moved(const struct chans *set)
{
	return set->moved;
}

/*
 * Data or EOF is queued, or our receive window runs low: libssh2 re-opens
 * the window only at the start of a read, so without that read a server
 * that filled the window would wait for us forever.
 */
static int
chan_readable(struct chan *c)
{
	unsigned long	avail = 0, initial = 0, window;

	if (c->ch == NULL || c->unread_len > 0)
		return 1;
	window = libssh2_channel_window_read_ex(c->ch, &avail, &initial);
	return avail > 0 || window < initial / 2 ||
	    libssh2_channel_eof(c->ch) == 1;
}

int
chans_drain(struct chans *set)
{
	struct chan	*c = TAILQ_FIRST(&set->live);
	char		 none;
	ssize_t		 n;

	if (c == NULL)
		return 0;
	/* A read drains the whole socket into libssh2's queues; with no
	 * room it takes no data, leaving that to the pump. */
	if (c->ch == NULL || !sshcall_may(set->sc, c, OP_READ))
		return 1;
	n = libssh2_channel_read(c->ch, &none, 0);
	sshcall_done(set->sc, c, OP_READ, (int)n);
	return 1;
}

static void
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
	sshcall_done(c->set->sc, c, op, (int)n);
}

void
chans_resume(struct chans *set)
{
	enum ssh_op	 op;
	struct chan	*c = sshcall_holder(set->sc, &op);

	/* Opens, listens, EOFs and frees are retried by their own service,
	 * always from the same place (libssh2 1.10 builds an EOF packet on
	 * the stack and checks the address on retry). Reads and writes are
	 * held by channels only. */
	if (c == NULL || (op != OP_READ && op != OP_WRITE))
		return;
	if (c->closing)
		chan_finish_owned(c, op);
	else
		c->ep.cb(&c->ep, op == OP_READ ? EP_READ : EP_WRITE,
		    c->ep.cbarg);
}

int
chans_sweep(struct chans *set)
{
	struct chan	*c, *next;
	int		 what;

	for (c = TAILQ_FIRST(&set->live); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (sshcall_holder(set->sc, NULL) != NULL)
			return 0;
		what = 0;
		if ((c->ep.wanted & EP_READ) && chan_readable(c))
			what |= EP_READ;
		if (c->ep.wanted & EP_WRITE)
			what |= EP_WRITE;
		if (what != 0)
			c->ep.cb(&c->ep, what, c->ep.cbarg);
		if (!sshcall_live(set->sc))
			return -1;
	}
	return 0;
}

static void
send_eofs(struct chans *set)
{
	struct chan	*c;
	int		 rc;

	TAILQ_FOREACH(c, &set->live, entry) {
		if (!c->eof_pending)
			continue;
		if ((rc = send_eof(c)) == LIBSSH2_ERROR_EAGAIN)
			continue;
		c->eof_pending = 0;
		if (rc == LIBSSH2_ERROR_BAD_USE)
			sshcall_fail(set->sc, "libssh2 refused an EOF");
	}
}

int
chans_reap(struct chans *set)
{
	struct chan	*c, *next;
	enum ssh_op	 op;
	void		*owner;
	int		 rc;

	send_eofs(set);
	for (c = TAILQ_FIRST(&set->closing); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		owner = sshcall_holder(set->sc, &op);
		if (owner != NULL && owner != c)
			return 0;
		if (owner == c && op == OP_EOF)
			(void)send_eof(c);
		else if (owner == c && op != OP_FREE)
			chan_finish_owned(c, op);
		owner = sshcall_holder(set->sc, &op);
		if (owner == c && op != OP_FREE)
			return 0;
		rc = libssh2_channel_free(c->ch);
		sshcall_done(set->sc, c, OP_FREE, rc);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		TAILQ_REMOVE(&set->closing, c, entry);
		free(c);
	}
	return sshcall_live(set->sc) ? 0 : -1;
}

void
chans_detach_all(struct chans *set)
{
	struct chan	*c;

	while ((c = TAILQ_FIRST(&set->closing)) != NULL) {
		TAILQ_REMOVE(&set->closing, c, entry);
		free(c);
	}
	/* The session frees the libssh2 channels. */
	TAILQ_FOREACH(c, &set->live, entry) {
		c->ch = NULL;
		c->eof_pending = 0;
	}
	/* Each connection closes, freeing its channel from the list. */
	while ((c = TAILQ_FIRST(&set->live)) != NULL)
		c->ep.cb(&c->ep, EP_LOST, c->ep.cbarg);
}
