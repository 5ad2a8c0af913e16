/*
 * Pipes for splice(), taken by a connection only while bytes are in flight
 * and cached per thread, with a cap on how many exist in the process.
 */
#ifndef RELAY_PIPEPOOL_H
#define RELAY_PIPEPOOL_H

/* The size asked for with F_SETPIPE_SZ; the kernel may grant less. */
#define PIPEPOOL_SIZE	(256 * 1024)

struct pipebuf {
	int		 rd, wr;
	unsigned	 size;		/* bytes the pipe holds when full */
	struct pipebuf	*next;		/* in the spare list */
};

/* Returns an empty pipe, or NULL when the cap is reached or no pipe can be
 * made (out of descriptors): the caller then copies instead. */
struct pipebuf *pipepool_get(void);
/* Gives back an empty pipe; the pool keeps a few and closes the rest. */
void	pipepool_put(struct pipebuf *);
/* Closes a pipe that may still hold bytes. */
void	pipepool_discard(struct pipebuf *);
/* Closes this thread's spare pipes (at exit, and in a forked child, whose
 * copies of the parent's spares must not be shared). */
void	pipepool_drain(void);
/* How many pipes exist right now, in every thread. */
unsigned pipepool_count(void);

#endif
