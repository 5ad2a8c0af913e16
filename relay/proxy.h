/*
 * The PROXY protocol (HAProxy's spec, versions 1 and 2): parsing a header
 * that precedes a stream and building one. Pure: no I/O, no allocation.
 */
#ifndef RELAY_PROXY_H
#define RELAY_PROXY_H

#include <sys/socket.h>
#include <sys/types.h>
#include <stddef.h>

#define PROXY_V1_MAX	107	/* the longest v1 line, CRLF included */
#define PROXY_V2_HEAD	16	/* signature, version, family, length */
/* The longest v2 header accepted (the spec allows 16 + 65535): addresses
 * and a few TLVs fit; more is a stranger filling our memory. */
#define PROXY_V2_MAX	2048
/* A buffer that holds any header proxy_build writes. */
#define PROXY_BUILD_MAX	(PROXY_V2_HEAD + 216)

enum proxy_status {
	PROXY_NEED_MORE,	/* the bytes so far are a valid beginning */
	PROXY_DONE,		/* a whole header: *used bytes */
	PROXY_ERROR		/* not a valid header: err says why */
};

struct proxy_hdr {
	int			version;	/* 1 or 2 */
	/* 0: v1 UNKNOWN, v2 LOCAL or v2 UNSPEC, which carry no address
	 * (the connection's own addresses stand); else src and dst hold
	 * AF_INET, AF_INET6 or (v2 only) AF_UNIX addresses. */
	int			has_addr;
	struct sockaddr_storage	src, dst;
	socklen_t		srclen, dstlen;
};

/*
 * Parses the header at the start of buf, of which len bytes have arrived.
 * Never looks past the header's end, so whatever follows it in buf is the
 * stream's. Call again with more bytes after PROXY_NEED_MORE (the bytes
 * so far are parsed again: no state is kept). On PROXY_DONE, h is filled
 * and *used is the header's length.
 */
enum proxy_status proxy_parse(const void *buf, size_t len,
	    struct proxy_hdr *h, size_t *used, char *err, size_t errlen);
/*
 * Writes a version 1 or 2 header saying the stream came from src to dst
 * (either NULL: no address, as v1 UNKNOWN or a v2 LOCAL header). IPv4
 * addresses mapped into IPv6 are written as IPv4; two families that still
 * differ are written as IPv6. A unix address gives v1 UNKNOWN or v2
 * AF_UNIX. Returns the header's length, or -1 if len is too small.
 */
ssize_t	proxy_build(int version, const struct sockaddr *src,
	    const struct sockaddr *dst, void *buf, size_t len);

#endif
