/*
 * What the first bytes of a connection name, read without consuming
 * them: the server name (SNI) of a TLS ClientHello, or the Host of an
 * HTTP/1.x request head. A router picks a target by it and then relays
 * every byte untouched. Pure: no I/O, no allocation, no state kept
 * between calls (each call parses the bytes so far again).
 */
#ifndef RELAY_PEEK_H
#define RELAY_PEEK_H

#include <stddef.h>

/* The most a peek reads before it gives up: a ClientHello (its records'
 * headers included) or a request head larger than this is refused. */
#define PEEK_MAX	65536
/* A name's longest form (a DNS name is at most 253 characters). */
#define PEEK_NAME_MAX	256

enum peek_status {
	PEEK_NEED_MORE,		/* a valid beginning: wait for more bytes */
	PEEK_DONE,		/* complete: name is set, "" if none given */
	PEEK_ERROR		/* not what was expected: err says why */
};

/*
 * Parses the TLS records at the start of buf (len bytes so far) up to the
 * end of the ClientHello they carry, which may be split over several
 * records and arrive in any number of pieces. On PEEK_DONE, name holds
 * the host_name of its server_name extension, lowercased and without a
 * trailing dot, or "" when it has none.
 */
enum peek_status peek_tls_sni(const void *buf, size_t len, char *name,
	    size_t namelen, char *err, size_t errlen);

/*
 * Parses the HTTP/1.x request head at the start of buf (len bytes so far)
 * up to its blank line. On PEEK_DONE, name holds its Host header's name,
 * lowercased, without a port or a trailing dot ("[v6]" literals keep
 * their brackets), or "" when it has none. Two Host headers are an error,
 * as HTTP/1.1 says.
 */
enum peek_status peek_http_host(const void *buf, size_t len, char *name,
	    size_t namelen, char *err, size_t errlen);

/*
 * The request target of the request line at the start of buf (the path,
 * "/.well-known/acme-challenge/TOKEN"), once peek_http_host said
 * PEEK_DONE: 0, or -1 when it does not fit in target.
 */
int	peek_http_target(const void *buf, size_t len, char *target,
	    size_t tlen);

/*
 * A host name as the peeks give it, from the n bytes at buf (an SNI that
 * a TLS library read): lowercased, without a trailing dot. Returns 0, or
 * -1 when the bytes are not a DNS name (letters, digits, '-', '.', '_')
 * or it does not fit in name.
 */
int	peek_name(const void *buf, size_t n, char *name, size_t namelen);

/* Whether the first byte of a stream starts a TLS handshake record. */
int	peek_is_tls(unsigned char first);

#endif
