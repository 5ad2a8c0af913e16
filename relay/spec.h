/* Tunnel specs as users write them: --ssh destinations and -R/-L/-D. */
#ifndef RELAY_SPEC_H
#define RELAY_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "relay/addr.h"

#define SSH_USER_MAX	64

struct ssh_dest {
	char		user[SSH_USER_MAX];	/* "" = the local user's name */
	char		host[ADDR_HOST_MAX + 1];
	uint16_t	port;			/* default 22 */
};

enum forward_kind { FWD_REMOTE, FWD_LOCAL, FWD_DYNAMIC };

struct forward_spec {
	enum forward_kind	kind;
	/*
	 * Where to listen: on the server for -R (host "" = the server's
	 * default, loopback unless its GatewayPorts says otherwise; port 0 =
	 * the server picks), locally for -L and -D (default 127.0.0.1).
	 */
	struct addr_spec	listen;
	/* Where connections go: a local target for -R, a host the server
	 * reaches for -L (names are resolved by the server); unused for -D. */
	struct addr_spec	to;
};

/* Parses [USER@]HOST[:PORT] or [USER@][IPv6][:PORT]. */
int	ssh_dest_parse(const char *s, struct ssh_dest *d, char *err,
	    size_t errlen);
/*
 * Parses OpenSSH's forward syntax: -R [BIND:]PORT:HOST:HOSTPORT,
 * -L [BIND:]PORT:HOST:HOSTPORT, -D [BIND:]PORT; IPv6 in brackets.
 */
int	forward_parse(enum forward_kind kind, const char *s,
	    struct forward_spec *f, char *err, size_t errlen);
/* Writes the spec back in the same syntax, for logs. */
void	forward_format(const struct forward_spec *f, char *buf, size_t len);

#endif
