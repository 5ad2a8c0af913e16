/*
 * A small blocking HTTPS/1.1 client for the ACME thread: one request per
 * connection, bounded by a timeout and cut short by a stop descriptor, the
 * server verified against a CA file or the system store. Not for the event
 * loops.
 */
#ifndef ACME_HTTPS_H
#define ACME_HTTPS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Replies larger than this are refused (certificates and JSON are small). */
#define HTTPS_MAX_BODY	(256 * 1024)

struct https_reply {
	int	 status;		/* 200, 201, ... */
	char	 nonce[256];		/* Replay-Nonce, or "" */
	char	 location[1024];	/* Location, or "" */
	char	*body;			/* NUL-terminated, owned */
	size_t	 len;
};

/* A client context trusting cafile (NULL: the system store); NULL with
 * err. */
SSL_CTX	*https_ctx(const char *cafile, char *err, size_t errlen);
/*
 * method ("GET", "HEAD", "POST") url (https://host[:port]/path); a POST
 * sends body as application/jose+json. The whole request (connect, TLS
 * handshake, request and reply) ends within timeout seconds; it ends
 * at once, with err "stopped", when stop (a descriptor, or -1 for none)
 * is or turns readable. Returns 0 with *rep filled (any status), or -1
 * with err.
 */
int	https_request(SSL_CTX *, const char *method, const char *url,
	    const char *body, int timeout, int stop, struct https_reply *rep,
	    char *err, size_t errlen);
/* Waits up to ms (0: only looks) for stop to turn readable: 1 if it is,
 * else 0. */
int	https_stop_wait(int stop, int ms);
void	https_reply_free(struct https_reply *);

#endif
