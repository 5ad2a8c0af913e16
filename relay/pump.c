/*
 * The byte pump. Each direction holds at most one BUFPOOL_SIZE buffer: while
 * it is not fully written, the source is not read (backpressure), and once
 * written the buffer goes back to the pool. EOF is passed on with a
 * shutdown of the destination's write side, so half-closed connections keep
 * working in the other direction.
 */
#include <errno.h>
#include <stddef.h>

#include "relay/bufpool.h"
#include "relay/pump.h"

/* Reads per wakeup and direction, so one busy connection cannot starve
 * the others; level-triggered events bring us back for the rest. */
#define PUMP_ROUNDS	16

static int
flow_fail(struct pump *p, struct endpoint *ep, int error)
{
	p->failed = ep;
	p->error = error;
	return -1;
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
		return n;
	}
	if (n == 0)
		f->eof = 1;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return flow_fail(p, f->src, errno);
	return 0;
}

static int
flow_run(struct pump *p, struct flow *f)
{
	ssize_t	n = BUFPOOL_SIZE, m;
	int	rounds;

	for (rounds = 0; rounds < PUMP_ROUNDS; rounds++) {
		if (f->off == f->len) {
			/* A short read drained the socket: wait for more
			 * rather than spend a syscall to learn EAGAIN. */
			if (f->eof || n < BUFPOOL_SIZE)
				break;
			if ((n = flow_fill(p, f)) <= 0) {
				if (n < 0)
					return -1;
				break;
			}
		}
		m = f->dst->ops->write(f->dst, f->buf + f->off,
		    f->len - f->off);
		if (m < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
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
	if (f->eof && f->off == f->len && !f->shut) {
		f->shut = 1;
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

	if (!out->eof && out->off == out->len)
		what |= EP_READ;
	if (in->off < in->len)
		what |= EP_WRITE;
	endpoint_want(ep, what);
}

void
pump_start(struct pump *p, struct endpoint *a, struct endpoint *b)
{
	p->a = a;
	p->b = b;
	p->ab = (struct flow){ .src = a, .dst = b };
	p->ba = (struct flow){ .src = b, .dst = a };
	p->failed = NULL;
	p->error = 0;
	rearm(a, &p->ab, &p->ba);
	rearm(b, &p->ba, &p->ab);
}

enum pump_status
pump_ready(struct pump *p, struct endpoint *ep, int what)
{
	struct flow	*out = ep == p->a ? &p->ab : &p->ba;
	struct flow	*in = ep == p->a ? &p->ba : &p->ab;

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
	}
	if (p->a != NULL)
		endpoint_want(p->a, 0);
	if (p->b != NULL)
		endpoint_want(p->b, 0);
}
