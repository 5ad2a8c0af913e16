/* SOCKS5 (RFC 1928) server side for -D: parsing is pure, I/O elsewhere. */
#ifndef TUNNEL_SOCKS_H
#define TUNNEL_SOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "relay/addr.h"

#define SOCKS_REPLY_LEN		10
#define SOCKS_MAX_REQUEST	(4 + 1 + 255 + 2)

enum socks_parse {
	SOCKS_NEED_MORE,	/* not enough bytes yet */
	SOCKS_DONE,		/* parsed; *used bytes consumed */
	SOCKS_BAD		/* malformed or unsupported; *rep says why */
};

/* RFC 1928 reply codes we send. */
#define SOCKS_REP_OK		0x00
#define SOCKS_REP_FAILURE	0x01
#define SOCKS_REP_REFUSED	0x05
#define SOCKS_REP_CMD		0x07
#define SOCKS_REP_ATYP		0x08

/*
 * The greeting: VER NMETHODS METHODS. Succeeds only if "no
 * authentication" is offered (*rep tells nothing else on failure).
 */
enum socks_parse socks_parse_greeting(const uint8_t *buf, size_t len,
	    size_t *used);
/*
 * The request: VER CMD RSV ATYP DST.ADDR DST.PORT, CONNECT only, to an
 * IPv4, IPv6 or domain-name destination, which fills to.
 */
enum socks_parse socks_parse_request(const uint8_t *buf, size_t len,
	    size_t *used, struct addr_spec *to, uint8_t *rep);
/*
 * How long the message whose first have bytes are in buf is in total, as
 * far as those bytes tell (a lower bound while they are too few); 0 when
 * the bytes already make it invalid. Lets a reader take exactly one
 * message and leave what follows in the socket.
 */
size_t	socks_greeting_len(const uint8_t *buf, size_t have);
size_t	socks_request_len(const uint8_t *buf, size_t have);
/* Writes the 10-byte reply (bound address 0.0.0.0:0) for code rep. */
void	socks_reply(uint8_t out[SOCKS_REPLY_LEN], uint8_t rep);

#endif
