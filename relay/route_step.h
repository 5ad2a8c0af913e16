/*
 * Routing by name: the step that reads a connection's first bytes, finds
 * the name they carry (a TLS ClientHello's SNI, an HTTP/1.x request's
 * Host) and picks that route's target, then lets every byte through
 * untouched.
 */
#ifndef RELAY_ROUTE_STEP_H
#define RELAY_ROUTE_STEP_H

#include <stddef.h>

#include "relay/conn.h"

struct route_conf;
struct tls_client;

struct route_table {
	const struct route_conf	*routes;	/* n, not owned */
	size_t			 n;
	const char		**names;	/* n, into routes: route_match's */
	struct tls_client	**tls;		/* n: each tls: route's, or NULL */
	int			 has_default;	/* the service's to */
};

/* The step; a service that routes sets it and routes. */
extern const struct conn_step route_step;
/* The same for a relay with ACME certificates: its plain listeners
 * answer HTTP-01 challenges (relay/challenge.h) before routing, with or
 * without routes (NULL: the service's target); a tls: listener's
 * connections go straight to their handshake. */
extern const struct conn_step acme_route_step;

/*
 * A table over routes[0..n), with a TLS context for each tls: target
 * (verified against ca, or the system store, and verify_name, or if
 * NULL the route's host). Returns NULL with err set.
 */
struct route_table *route_table_new(const struct route_conf *routes,
	    size_t n, int has_default, const char *ca, const char *verify_name,
	    char *err, size_t errlen);
/*
 * Reads the CA file of each tls: target's context again (SIGHUP): the
 * number read, or -1 with err, the one that failed and those after it
 * keeping the trust they had.
 */
int	route_table_reload_tls(struct route_table *, char *err, size_t errlen);
void	route_table_free(struct route_table *);

#endif
