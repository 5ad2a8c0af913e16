/*
 * TLS with OpenSSL: the certificates a tls: listener serves and the trust a
 * tls: target is checked against, and endpoints that speak TLS over a
 * non-blocking socket for the pump.
 */
#ifndef RELAY_TLS_H
#define RELAY_TLS_H

#include <stddef.h>

#include "relay/endpoint.h"

struct event_base;
struct tls_server;
struct tls_client;

/*
 * Loads n certificate chain/key pairs (PEM). The first pair is served by
 * default; a client's SNI name picks the first pair whose certificate
 * carries that name. alpn ("h2,http/1.1"; NULL or "": http/1.1) is what
 * ALPN may select, the first the client offers. Returns NULL with one
 * line in err.
 */
struct tls_server *tls_server_new(char *const *certs, char *const *keys,
	    size_t n, const char *alpn, char *err, size_t errlen);
/* Reads the files again: 0, or -1 with err and the old pairs kept. */
int	tls_server_reload(struct tls_server *, char *err, size_t errlen);
/* Frees it; endpoints already made keep what they use. */
void	tls_server_free(struct tls_server *);

/*
 * Trust for a TLS target: the CA certificates in cafile (NULL: the system
 * store). Each connection checks that the certificate is valid for name
 * (a host name or an IP address) and sends it as SNI unless it is an IP
 * address. Returns NULL with one line in err.
 */
struct tls_client *tls_client_new(const char *cafile, const char *name,
	    char *err, size_t errlen);
/* Reads cafile again: 0, or -1 with err and the old trust kept. */
int	tls_client_reload(struct tls_client *, char *err, size_t errlen);
void	tls_client_free(struct tls_client *);

/*
 * Wraps a connected non-blocking socket (owned from now on) as the server
 * or client side of a TLS connection. Its handshake op must report done
 * before bytes flow. Returns NULL when out of memory, fd then left open.
 */
struct endpoint *tls_endpoint_accept(struct event_base *, int fd,
	    struct tls_server *);
struct endpoint *tls_endpoint_connect(struct event_base *, int fd,
	    struct tls_client *);
/*
 * The server name (SNI) a tls: listener's client asked for, once its
 * handshake is done: the name the certificate was picked by (a resumed
 * TLS 1.2 session keeps its first one). NULL when it sent none, or when
 * ep is not such an endpoint. Valid until ep is freed.
 */
const char *tls_endpoint_servername(struct endpoint *ep);

#endif
