/*
 * Authentication material, read before privileges are dropped and kept in
 * memory for every reconnect: private keys (and a passphrase), or the
 * ssh-agent.
 */
#ifndef TUNNEL_AUTH_H
#define TUNNEL_AUTH_H

#include <stddef.h>

#include <libssh2.h>

#include "relay/config.h"

struct auth;

/* Loads --identity (exit 66 if unreadable), else notes SSH_AUTH_SOCK and
 * the readable ~/.ssh/id_* files. NULL with a message and exit code. */
struct auth *auth_load(const struct tunnel_conf *, char *err, size_t errlen,
	    int *exitcode);

enum auth_result {
	AUTH_OK,	/* authenticated */
	AUTH_AGAIN,	/* would block: call again with the same arguments */
	AUTH_REFUSED,	/* the server accepted none of our keys */
	AUTH_BAD_KEY,	/* a key could not be used (wrong passphrase...) */
	AUTH_ERROR	/* the session failed */
};

/* Starts a fresh attempt on a new session. */
/* Another login with the same keys, which stay from's: it must outlive
 * the share. NULL on allocation failure. */
struct auth *auth_share(const struct auth *from);
void	auth_begin(struct auth *);
/* Forgets everything tied to the session; call before freeing it. */
void	auth_end(struct auth *);
/* One non-blocking step; err explains REFUSED, BAD_KEY and ERROR. */
enum auth_result auth_step(struct auth *, LIBSSH2_SESSION *, const char *user,
	    char *err, size_t errlen);
/* What authenticated us, for the log. */
const char *auth_method(const struct auth *);
void	auth_free(struct auth *);

#endif
