/* The session's batch of outgoing packets: see sendbuf.h. */
#include <sys/socket.h>
#include <errno.h>
#include <string.h>

#include "tunnel/sendbuf.h"

int
sendbuf_add(struct sendbuf *sb, const void *buf, size_t len)
{
	size_t	waiting = sendbuf_pending(sb);

	if (len > SENDBUF_SIZE - waiting)
		return -1;
	if (len > SENDBUF_SIZE - sb->len) {
		memmove(sb->data, sb->data + sb->off, waiting);
		sb->off = 0;
		sb->len = (uint32_t)waiting;
	}
	memcpy(sb->data + sb->len, buf, len);
	sb->len += (uint32_t)len;
	return 0;
}

int
sendbuf_flush(struct sendbuf *sb, int fd)
{
	ssize_t	n;

	while (sb->off < sb->len) {
		n = send(fd, sb->data + sb->off, sb->len - sb->off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		sb->off += (uint32_t)n;
	}
	sb->off = sb->len = 0;
	return 0;
}

void
sendbuf_clear(struct sendbuf *sb)
{
	sb->off = sb->len = 0;
}
