/*
 * The pipe pool. A pipe costs two descriptors and, while it holds bytes,
 * their pages; so pipes are made lazily, a connection returns its pipe as
 * soon as it is empty, and the number in existence is capped from the
 * descriptor limit, leaving most descriptors to connections. The spare
 * list is per thread (one event loop per thread); the count is shared.
 */
#include <sys/resource.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "relay/pipepool.h"

#define PIPEPOOL_MAX	1024	/* pipes, whatever the descriptor limit */
#define PIPEPOOL_SHARE	8	/* at most 1/8 of the descriptors in pipes */
#define PIPEPOOL_KEEP	16	/* spares kept per thread */

static _Thread_local struct pipebuf	*spares;
static _Thread_local unsigned		 nspares;
static atomic_uint			 npipes;
static atomic_uint			 cap;	/* 0: not computed yet */

static unsigned
pipe_cap(void)
{
	struct rlimit	rl;
	unsigned	c = atomic_load_explicit(&cap, memory_order_relaxed);
	rlim_t		n = PIPEPOOL_MAX;

	if (c != 0)
		return c;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 / PIPEPOOL_SHARE < n)
		n = rl.rlim_cur / 2 / PIPEPOOL_SHARE;
	/* 1, not 0, so the limit is not looked up again: a single pipe
	 * still beats copying. */
	c = n > 0 ? (unsigned)n : 1;
	atomic_store_explicit(&cap, c, memory_order_relaxed);
	return c;
}

static struct pipebuf *
pipe_make(void)
{
	struct pipebuf	*p;
	int		 fd[2], size;

	if ((p = malloc(sizeof(*p))) == NULL)
		return NULL;
	if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) == -1) {
		free(p);
		return NULL;
	}
	p->rd = fd[0];
	p->wr = fd[1];
	/* Refused beyond /proc/sys/fs/pipe-max-size or the user's pipe
	 * quota: the pipe then keeps the size it has. */
	if ((size = fcntl(fd[1], F_SETPIPE_SZ, PIPEPOOL_SIZE)) == -1)
		size = fcntl(fd[1], F_GETPIPE_SZ);
	p->size = size > 0 ? (unsigned)size : 4096;
	p->next = NULL;
	return p;
}

struct pipebuf *
pipepool_get(void)
{
	struct pipebuf	*p;

	if ((p = spares) != NULL) {
		spares = p->next;
		nspares--;
		return p;
	}
	if (atomic_fetch_add(&npipes, 1) >= pipe_cap()) {
		atomic_fetch_sub(&npipes, 1);
		return NULL;
	}
	if ((p = pipe_make()) == NULL)
		atomic_fetch_sub(&npipes, 1);
	return p;
}

void
pipepool_discard(struct pipebuf *p)
{
	close(p->rd);
	close(p->wr);
	free(p);
	atomic_fetch_sub(&npipes, 1);
}

void
pipepool_put(struct pipebuf *p)
{
	if (nspares >= PIPEPOOL_KEEP) {
		pipepool_discard(p);
		return;
	}
	p->next = spares;
	spares = p;
	nspares++;
}

void
pipepool_drain(void)
{
	struct pipebuf	*p;

	while ((p = spares) != NULL) {
		spares = p->next;
		pipepool_discard(p);
	}
	nspares = 0;
}

unsigned
pipepool_count(void)
{
	return atomic_load(&npipes);
}
