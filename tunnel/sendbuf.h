/*
 * Batches the session's outgoing SSH packets: libssh2 sends each packet
 * with a call of its own, so one pass serving many channels would send
 * many small segments, each waking the server. They are gathered here and
 * leave in one send() at the end of the pass.
 */
#ifndef TUNNEL_SENDBUF_H
#define TUNNEL_SENDBUF_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#define SENDBUF_SIZE	(64 * 1024)

struct sendbuf {
	uint32_t	off, len;	/* waiting: data[off, len) */
	char		data[SENDBUF_SIZE];
};

/* Bytes waiting to be sent. */
static inline size_t
sendbuf_pending(const struct sendbuf *sb)
{
	return sb->len - sb->off;
}

/* Appends len bytes if they fit (moving the waiting bytes to the front
 * when that makes room). Returns 0, or -1 when they do not fit. */
int	sendbuf_add(struct sendbuf *, const void *, size_t len);
/*
 * Sends what waits on the non-blocking socket fd. Returns 0 when nothing
 * waits any more, 1 when the socket is full (the rest waits), -1 with
 * errno when the socket failed.
 */
int	sendbuf_flush(struct sendbuf *, int fd);
/* Forgets what waits (the session is gone). */
void	sendbuf_clear(struct sendbuf *);

#endif
