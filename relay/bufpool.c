/*
 * A connection holds a buffer only while bytes are in flight in its
 * direction, so idle connections cost no buffer memory; the pool keeps a
 * few spare to make take-and-give-back cheap. Each loop's thread has a
 * pool of its own (--workers), so taking a buffer never takes a lock.
 */
#include <stdlib.h>

#include "relay/bufpool.h"

#define BUFPOOL_KEEP	32

struct spare {
	struct spare	*next;
};

static _Thread_local struct spare	*spares;
static _Thread_local unsigned		 nspares;

void *
bufpool_get(void)
{
	struct spare	*s;

	if ((s = spares) == NULL)
		return malloc(BUFPOOL_SIZE);
	spares = s->next;
	nspares--;
	return s;
}

void
bufpool_put(void *buf)
{
	struct spare	*s = buf;

	if (nspares >= BUFPOOL_KEEP) {
		free(buf);
		return;
	}
	s->next = spares;
	spares = s;
	nspares++;
}

void
bufpool_drain(void)
{
	struct spare	*s;

	while ((s = spares) != NULL) {
		spares = s->next;
		free(s);
	}
	nspares = 0;
}
