/*
 * The byte pump. Each direction holds at most one BUFPOOL_SIZE buffer or,
 * between two TCP sockets, one pipe that splice() fills from the source and
 * empties into the destination without copying through user space. A
 * direction is copied until one read fills the buffer: small exchanges
 * (requests, short replies, new connections) cost less copied than taking
 * a pipe and splicing twice, bulk transfers less spliced. While
 * either is not fully written, the source is not read (backpressure), and
 * once written it goes back to its pool, so an idle connection holds
 * neither. EOF is passed on with a shutdown of the destination's write
 * side, so half-closed connections keep working in the other direction;
 * the last EOF goes with the close when that sends it just the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "relay/bufpool.h"
#include "relay/pipepool.h"
#include "relay/pump.h"

/* Reads per wakeup and direction, so one busy connection cannot starve
 * the others; an endpoint that is still ready brings us back for the
 * rest. */
#define PUMP_ROUNDS	16
/* The same fairness in bytes, for splicing: what the copying rounds move
 * at most. Each splice() call moves at most one pipe's worth. */
#define PUMP_BUDGET	(PUMP_ROUNDS * BUFPOOL_SIZE)

static atomic_int	splice_on = 1;

void
pump_set_splice(int on)
{
	atomic_store(&splice_on, on);
}

static int
flow_fail(struct pump *p, struct endpoint *ep, int error)
{
	p->failed = ep;
	p->error = error;
	return -1;
}

static int
again(int error)
{
	return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

/* Reads into an empty flow. Returns bytes read, 0 to stop, -1 on failure. */
static ssize_t
flow_fill(struct pump *p, struct flow *f)
{
	ssize_t	n;

	if (f->buf == NULL && (f->buf = bufpool_get()) == NULL)
		return flow_fail(p, f->src, ENOMEM);
	n = f->src->ops->read(f->src, f->buf, BUFPOOL_SIZE);
	if (n > 0) {
		f->off = 0;
		f->len = (uint32_t)n;
		f->bytes += (uint64_t)n;
		if (n == BUFPOOL_SIZE)
			f->bulk = 1;
		return n;
	}
	if (n == 0)
		f->eof = 1;
	else if (!again(errno))
		return flow_fail(p, f->src, errno);
	return 0;
}

/*
 * Whether a short read (or fill) emptied the source: it did when the
 * source tells of its EOF (EP_HUP) and has told none. Otherwise it is read
 * again in the same wakeup: a FIN that came right after the data (an
 * HTTP/1.0 answer) then passes on at once, and through a tunnel in the
 * same packet batch as the data, at the price of a read that may only
 * say EAGAIN.
 */
static int
drained(const struct flow *f)
{
	return f->src->tells_hup && !f->hup;
}

/* The copying path: through a buffer and the endpoints' own calls. */
static int
flow_copy(struct pump *p, struct flow *f)
{
	ssize_t	n, m;
	int	rounds, empty = 0;

	for (rounds = 0; rounds < PUMP_ROUNDS; rounds++) {
		if (f->off == f->len) {
			if (f->eof || empty)
				break;
			if ((n = flow_fill(p, f)) <= 0) {
				if (n < 0)
					return -1;
				break;
			}
			empty = n < BUFPOOL_SIZE && drained(f);
		}
		m = f->dst->ops->write(f->dst, f->buf + f->off,
		    f->len - f->off);
		if (m < 0) {
			if (again(errno))
				break;
			return flow_fail(p, f->dst, errno);
		}
		/* A short write is retried: sockets then say EAGAIN, while
		 * SSH channels take one packet per call. */
		f->off += (uint32_t)m;
	}
	if (f->off == f->len && f->buf != NULL) {
		bufpool_put(f->buf);
		f->buf = NULL;
		f->off = f->len = 0;
	}
	return 0;
}

/* Tells ep what a read or write of its own would have: a splice found it
 * had nothing to read (EP_READ) or no room (EP_WRITE). */
static void
exhausted(struct endpoint *ep, int what)
{
	if (ep->exhausted != NULL)
		ep->exhausted(ep, what);
}

/* Splices up to want bytes from the source into the flow's empty pipe.
 * Returns bytes taken, 0 to stop (EOF, or nothing to read now), -1 on
 * failure. */
static ssize_t
pipe_fill(struct pump *p, struct flow *f, size_t want)
{
	ssize_t	n;

	n = splice(f->srcfd, NULL, f->pipe->wr, NULL, want,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		f->piped = (uint32_t)n;
		f->bytes += (uint64_t)n;
		f->spliced += (uint64_t)n;
		return n;
	}
	if (n == 0)
		f->eof = 1;
	else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
		f->srcfd = f->dstfd = -1;	/* cannot splice here: copy */
	else if (errno == EAGAIN)
		exhausted(f->src, EP_READ);
	else if (!again(errno))
		return flow_fail(p, f->src, errno);
	return 0;
}

/*
 * The splicing path: source -> pipe -> destination, up to PUMP_BUDGET
 * bytes. The pipe is empty before each fill, so EAGAIN from a fill means
 * the source has nothing; from a drain, that the destination is full.
 * Returns 0, -1 on failure, or 1 when no pipe could be had or splice()
 * turned out not to work here: the caller copies this round instead.
 */
static int
flow_splice(struct pump *p, struct flow *f)
{
	size_t	budget = PUMP_BUDGET, want;
	ssize_t	n;
	int	empty = 0;

	if (f->pipe == NULL && !f->eof && (f->pipe = pipepool_get()) == NULL)
		return 1;
	while (f->pipe != NULL) {
		if (f->piped == 0) {
			/* As when copying, a short fill drained the source
			 * unless its EOF is known to wait behind. */
			if (f->eof || budget == 0 || empty)
				break;
			want = f->pipe->size < budget ? f->pipe->size : budget;
			if ((n = pipe_fill(p, f, want)) <= 0) {
				if (n < 0)
					return -1;
				break;
			}
			empty = (size_t)n < want && !f->hup;
			budget -= (size_t)n;
		}
		n = splice(f->pipe->rd, NULL, f->dstfd, NULL, f->piped,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EAGAIN)
				exhausted(f->dst, EP_WRITE);
			if (again(errno))
				break;
			return flow_fail(p, f->dst, errno);
		}
		f->piped -= (uint32_t)n;
	}
	if (f->pipe != NULL && f->piped == 0) {
		pipepool_put(f->pipe);
		f->pipe = NULL;
	}
	return f->srcfd == -1;
}

/*
 * The EOF of the direction that finishes last goes with the close that
 * follows PUMP_DONE when its destination is a bare socket: close() then
 * sends the FIN that shutdown() would (nothing is left unread on it: its
 * own EOF was read), one system call fewer.
 */
static int
closing_says_eof(const struct pump *p, const struct flow *f)
{
	const struct flow	*other = f == &p->ab ? &p->ba : &p->ab;

	return other->shut && endpoint_splice_fd(f->dst) != -1;
}

static int
flow_run(struct pump *p, struct flow *f)
{
	int	rc = 1;

	/* Bytes a copying round left in the buffer go first, in order. */
	if (f->srcfd != -1 && f->bulk && f->off == f->len &&
	    (rc = flow_splice(p, f)) == -1)
		return -1;
	if (rc == 1 && flow_copy(p, f) == -1)
		return -1;
	if (f->eof && f->off == f->len && f->piped == 0 && !f->shut) {
		f->shut = 1;
		if (closing_says_eof(p, f))
			return 0;
		if (f->dst->ops->shutdown_write(f->dst) == -1 &&
		    errno != ENOTCONN)
			return flow_fail(p, f->dst, errno);
	}
	return 0;
}

/* Interest of one endpoint: read while its outgoing flow has room, write
 * while its incoming flow has bytes waiting. */
static void
rearm(struct endpoint *ep, const struct flow *out, const struct flow *in)
{
	int	what = 0;

	if (!out->eof && out->off == out->len && out->piped == 0)
		what |= EP_READ;
	if (in->off < in->len || in->piped > 0)
		what |= EP_WRITE;
	endpoint_want(ep, what);
}

void
pump_start(struct pump *p, struct endpoint *a, struct endpoint *b)
{
	int	fa = -1, fb = -1;

	if (atomic_load_explicit(&splice_on, memory_order_relaxed) &&
	    (fa = endpoint_splice_fd(a)) != -1 &&
	    (fb = endpoint_splice_fd(b)) == -1)
		fa = -1;
	p->a = a;
	p->b = b;
	p->ab = (struct flow){ .src = a, .dst = b, .srcfd = fa, .dstfd = fb };
	p->ba = (struct flow){ .src = b, .dst = a, .srcfd = fb, .dstfd = fa };
	p->failed = NULL;
	p->error = 0;
	p->splice = fa != -1;
	rearm(a, &p->ab, &p->ba);
	rearm(b, &p->ba, &p->ab);
}

enum pump_status
pump_ready(struct pump *p, struct endpoint *ep, int what)
{
	struct flow	*out = ep == p->a ? &p->ab : &p->ba;
	struct flow	*in = ep == p->a ? &p->ba : &p->ab;

	if (what & EP_HUP)
		out->hup = 1;
	/* Write first: draining the pending bytes frees room to read more. */
	if ((what & EP_WRITE) && flow_run(p, in) == -1)
		return PUMP_FAILED;
	if ((what & EP_READ) && flow_run(p, out) == -1)
		return PUMP_FAILED;
	if (p->ab.shut && p->ba.shut)
		return PUMP_DONE;
	rearm(p->a, &p->ab, &p->ba);
	rearm(p->b, &p->ba, &p->ab);
	return PUMP_RUNNING;
}

void
pump_stop(struct pump *p)
{
	struct flow	*f[2] = { &p->ab, &p->ba };
	int		 i;

	for (i = 0; i < 2; i++) {
		if (f[i]->buf != NULL)
			bufpool_put(f[i]->buf);
		f[i]->buf = NULL;
		f[i]->off = f[i]->len = 0;
		/* Bytes left in a pipe belong to this connection alone. */
		if (f[i]->pipe != NULL && f[i]->piped == 0)
			pipepool_put(f[i]->pipe);
		else if (f[i]->pipe != NULL)
			pipepool_discard(f[i]->pipe);
		f[i]->pipe = NULL;
		f[i]->piped = 0;
	}
	if (p->a != NULL)
		endpoint_want(p->a, 0);
	if (p->b != NULL)
		endpoint_want(p->b, 0);
}
