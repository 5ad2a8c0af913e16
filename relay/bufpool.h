/* Fixed-size transfer buffers, cached so busy connections do not malloc. */
#ifndef RELAY_BUFPOOL_H
#define RELAY_BUFPOOL_H

#define BUFPOOL_SIZE	(64 * 1024)

/* Returns a BUFPOOL_SIZE buffer, or NULL when out of memory. */
void	*bufpool_get(void);
/* Gives a buffer back; the pool keeps a few and frees the rest. */
void	 bufpool_put(void *);
/* Frees every buffer the calling thread's pool keeps. */
void	 bufpool_drain(void);

#endif
