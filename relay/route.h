/*
 * Which route a peeked name picks: the names a listener routes by, as the
 * configuration gives them, matched the way TLS certificates and virtual
 * hosts are. Pure.
 */
#ifndef RELAY_ROUTE_H
#define RELAY_ROUTE_H

#include <stddef.h>

/*
 * The index in names[0..n) of the route for host, or -1 when none fits.
 * Case does not matter. An exact name wins over a wildcard; "*.example.org"
 * stands for exactly one more label ("a.example.org", neither
 * "example.org" nor "a.b.example.org"). An empty host matches nothing.
 */
int	route_match(const char *const *names, size_t n, const char *host);

#endif
