/* Host key checking against known_hosts, held in memory across reconnects. */
#ifndef TUNNEL_HOSTKEY_H
#define TUNNEL_HOSTKEY_H

#include <stddef.h>

#include <libssh2.h>

struct hostkeys;

/* Reads path (a missing file is empty). NULL with a message on failure. */
struct hostkeys *hostkeys_load(const char *path, int accept_new, char *err,
	    size_t errlen);
/* Before the handshake: prefers the key types known for host:port, so
 * the server shows a key we can check. */
void	hostkeys_prefer(struct hostkeys *, LIBSSH2_SESSION *,
	    const char *host, int port);
/* After a handshake that found no methods in common: why the known keys
 * may be the cause ("; ..." to append to the error), or "". */
const char *hostkeys_kex_hint(const struct hostkeys *);
/*
 * After the handshake: 0 if the server's key is known (or was unknown and
 * is now recorded, with --accept-new-host-key); -1 with a one-line
 * message naming the key's SHA256 fingerprint otherwise. Log lines start
 * with "tunnel LOGNAME: ".
 */
int	hostkeys_verify(struct hostkeys *, LIBSSH2_SESSION *, const char *host,
	    int port, const char *logname, char *err, size_t errlen);
/* Writes "SHA256:..." for the session's host key. */
void	hostkeys_fingerprint(LIBSSH2_SESSION *, char *buf, size_t len);
void	hostkeys_free(struct hostkeys *);

#endif
