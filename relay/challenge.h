/*
 * ACME HTTP-01 challenges (RFC 8555 8.3) that this process answers: the
 * ACME client adds a token and its key authorization while the server
 * validates, a plain listener's step answers
 * GET /.well-known/acme-challenge/TOKEN from it. Shared by every thread
 * (the client's and the event loops), so each call locks.
 */
#ifndef RELAY_CHALLENGE_H
#define RELAY_CHALLENGE_H

#include <stddef.h>

#define CHALLENGE_PREFIX	"/.well-known/acme-challenge/"

/* Adds token (copied): 0, or -1 when out of memory. */
int	challenge_add(const char *token, const char *keyauth);
/* Removes token, if there. */
void	challenge_remove(const char *token);
/*
 * Whether target (a request's path) is a challenge: 0 when it is not,
 * else 1 with a complete HTTP/1.1 reply in out (200 and the key
 * authorization, or 404 for a token not there). -1 when out is too small.
 */
int	challenge_reply(const char *target, char *out, size_t outlen);

#endif
