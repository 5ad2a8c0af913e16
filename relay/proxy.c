/*
 * PROXY protocol headers, versions 1 and 2, parsed strictly: a header that
 * is not exactly what the spec allows is refused, since whoever sends a
 * wrong one is either broken or lying about an address.
 */
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "relay/proxy.h"

static const uint8_t	v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
			    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const char	v1_sig[] = "PROXY ";

#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_AF_UNSPEC	0x0
#define V2_AF_INET	0x1
#define V2_AF_INET6	0x2
#define V2_AF_UNIX	0x3
#define V2_STREAM	0x1
#define V2_DGRAM	0x2
#define V2_TLV_CRC32C	0x03
#define V2_UNIX_PATH	108

/* --- version 1 --- */

/* Splits off the token before the next space (or the end); NULL if it
 * is empty or longer than max. */
static const char *
next_token(const char **p, const char *end, char *tok, size_t max)
{
	const char	*s = *p, *e = memchr(s, ' ', (size_t)(end - s));

	if (e == NULL)
		e = end;
	if (e == s || (size_t)(e - s) >= max)
		return NULL;
	memcpy(tok, s, (size_t)(e - s));
	tok[e - s] = '\0';
	*p = e < end ? e + 1 : e;
	return tok;
}

/* Decimal 0-65535 with no leading zero, as the spec writes ports. */
static int
parse_port(const char *s, uint16_t *port)
{
	unsigned long	v = 0;
	size_t		n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Fills sa from a textual address and port of family af. */
static int
v1_addr(int af, const char *host, const char *port,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	uint16_t		 p;

	memset(ss, 0, sizeof(*ss));
	if (parse_port(port, &p) == -1)
		return -1;
	if (af == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		*sslen = sizeof(*sin);
		return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(p);
	*sslen = sizeof(*sin6);
	return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 : -1;
}

/* The line between "PROXY " and CRLF. */
static enum proxy_status
v1_line(const char *s, const char *end, struct proxy_hdr *h, char *err,
    size_t errlen)
{
	char	proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	char	sport[8], dport[8];
	int	af;

	if (next_token(&s, end, proto, sizeof(proto)) == NULL)
		goto bad;
	h->version = 1;
	if (strcmp(proto, "UNKNOWN") == 0) {
		/* The spec: whatever follows UNKNOWN is to be ignored. */
		h->has_addr = 0;
		return PROXY_DONE;
	}
	if (strcmp(proto, "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		af = AF_INET6;
	else {
		snprintf(err, errlen, "v1: unknown protocol");
		return PROXY_ERROR;
	}
	if (next_token(&s, end, src, sizeof(src)) == NULL ||
	    next_token(&s, end, dst, sizeof(dst)) == NULL ||
	    next_token(&s, end, sport, sizeof(sport)) == NULL ||
	    next_token(&s, end, dport, sizeof(dport)) == NULL || s != end ||
	    end[-1] == ' ')
		goto bad;
	if (v1_addr(af, src, sport, &h->src, &h->srclen) == -1 ||
	    v1_addr(af, dst, dport, &h->dst, &h->dstlen) == -1) {
		snprintf(err, errlen, "v1: bad %s address or port", proto);
		return PROXY_ERROR;
	}
	h->has_addr = 1;
	return PROXY_DONE;
bad:
	snprintf(err, errlen, "v1: malformed line");
	return PROXY_ERROR;
}

static enum proxy_status
parse_v1(const uint8_t *buf, size_t len, struct proxy_hdr *h, size_t *used,
    char *err, size_t errlen)
{
	size_t		 n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	const uint8_t	*lf = memchr(buf, '\n', n), *cr = memchr(buf, '\r', n);
	enum proxy_status st;

	if (cr != NULL && (size_t)(cr - buf) + 1 < n && cr[1] != '\n') {
		snprintf(err, errlen, "v1: CR not followed by LF");
		return PROXY_ERROR;
	}
	if (lf == NULL && len >= PROXY_V1_MAX) {
		snprintf(err, errlen, "v1: no CRLF within %d bytes",
		    PROXY_V1_MAX);
		return PROXY_ERROR;
	}
	if (lf == NULL)
		return PROXY_NEED_MORE;
	if (lf == buf || lf[-1] != '\r') {
		snprintf(err, errlen, "v1: line ends in a bare LF");
		return PROXY_ERROR;
	}
	if ((st = v1_line((const char *)buf + sizeof(v1_sig) - 1,
	    (const char *)lf - 1, h, err, errlen)) == PROXY_DONE)
		*used = (size_t)(lf - buf) + 1;
	return st;
}

/* --- version 2 --- */

/* CRC-32C (Castagnoli), bit by bit: headers are short and rarely carry
 * one. The four bytes at skip count as zeros, as the spec says. */
static uint32_t
crc32c(const uint8_t *p, size_t len, size_t skip)
{
	uint32_t	crc = 0xffffffffU;
	size_t		i;
	int		k;

	for (i = 0; i < len; i++) {
		crc ^= i >= skip && i < skip + 4 ? 0 : p[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78U & (0U - (crc & 1)));
	}
	return ~crc;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Walks the TLVs in buf[off, total): each must fit exactly. */
static enum proxy_status
v2_tlvs(const uint8_t *buf, size_t off, size_t total, char *err,
    size_t errlen)
{
	size_t	tlen;

	while (off < total) {
		if (total - off < 3) {
			snprintf(err, errlen, "v2: truncated TLV");
			return PROXY_ERROR;
		}
		tlen = (size_t)buf[off + 1] << 8 | buf[off + 2];
		if (tlen > total - off - 3) {
			snprintf(err, errlen, "v2: TLV runs past the header");
			return PROXY_ERROR;
		}
		if (buf[off] == V2_TLV_CRC32C && (tlen != 4 ||
		    crc32c(buf, total, off + 3) != get32(buf + off + 3))) {
			snprintf(err, errlen, "v2: bad CRC32C");
			return PROXY_ERROR;
		}
		off += 3 + tlen;
	}
	return PROXY_DONE;
}

static void
v2_unix(const uint8_t *p, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	size_t			 n = strnlen((const char *)p, V2_UNIX_PATH);

	memset(ss, 0, sizeof(*ss));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, p, n);
	*sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* The address block of a PROXY command; returns its length or 0. */
static size_t
v2_addrs(int fam, const uint8_t *p, size_t len, struct proxy_hdr *h)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&h->src;
	struct sockaddr_in	*d4 = (struct sockaddr_in *)&h->dst;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&h->src;
	struct sockaddr_in6	*d6 = (struct sockaddr_in6 *)&h->dst;
	const size_t		 need[] = { 0, 12, 36, 2 * V2_UNIX_PATH };

	if (len < need[fam])
		return 0;
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	switch (fam) {
	case V2_AF_INET:
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p, 4);
		memcpy(&d4->sin_addr, p + 4, 4);
		memcpy(&s4->sin_port, p + 8, 2);
		memcpy(&d4->sin_port, p + 10, 2);
		h->srclen = h->dstlen = sizeof(*s4);
		break;
	case V2_AF_INET6:
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p, 16);
		memcpy(&d6->sin6_addr, p + 16, 16);
		memcpy(&s6->sin6_port, p + 32, 2);
		memcpy(&d6->sin6_port, p + 34, 2);
		h->srclen = h->dstlen = sizeof(*s6);
		break;
	default:
		v2_unix(p, &h->src, &h->srclen);
		v2_unix(p + V2_UNIX_PATH, &h->dst, &h->dstlen);
		break;
	}
	return need[fam];
}

/* Checks version, command, family and length; 0 or -1 with err. */
static int
v2_check_head(const uint8_t *buf, size_t *total, char *err, size_t errlen)
{
	int	fam = buf[13] >> 4, proto = buf[13] & 0xf;

	if (buf[12] >> 4 != 2) {
		snprintf(err, errlen, "v2: unsupported version %d",
		    buf[12] >> 4);
		return -1;
	}
	if ((buf[12] & 0xf) > V2_CMD_PROXY) {
		snprintf(err, errlen, "v2: unknown command %d", buf[12] & 0xf);
		return -1;
	}
	/* The spec's seven values; any other must be refused. */
	if (fam > V2_AF_UNIX || proto > V2_DGRAM ||
	    (fam == V2_AF_UNSPEC) != (proto == 0)) {
		snprintf(err, errlen, "v2: unknown family 0x%02x", buf[13]);
		return -1;
	}
	*total = PROXY_V2_HEAD + ((size_t)buf[14] << 8 | buf[15]);
	if (*total > PROXY_V2_MAX) {
		snprintf(err, errlen, "v2: header of %zu bytes (more than "
		    "%d)", *total, PROXY_V2_MAX);
		return -1;
	}
	return 0;
}

static enum proxy_status
parse_v2(const uint8_t *buf, size_t len, struct proxy_hdr *h, size_t *used,
    char *err, size_t errlen)
{
	size_t	total, alen;
	int	fam, proto;

	if (len < PROXY_V2_HEAD)
		return PROXY_NEED_MORE;
	if (v2_check_head(buf, &total, err, errlen) == -1)
		return PROXY_ERROR;
	if (len < total)
		return PROXY_NEED_MORE;
	h->version = 2;
	h->has_addr = 0;
	fam = buf[13] >> 4;
	proto = buf[13] & 0xf;
	*used = total;
	/* LOCAL: the sender speaks for itself (health checks); the block
	 * after the head is to be skipped whatever it holds. */
	if ((buf[12] & 0xf) == V2_CMD_LOCAL || fam == V2_AF_UNSPEC)
		return PROXY_DONE;
	if (proto != V2_STREAM) {
		snprintf(err, errlen, "v2: only stream connections are "
		    "relayed");
		return PROXY_ERROR;
	}
	if ((alen = v2_addrs(fam, buf + PROXY_V2_HEAD, total - PROXY_V2_HEAD,
	    h)) == 0) {
		snprintf(err, errlen, "v2: length %zu too short for its "
		    "addresses", total - PROXY_V2_HEAD);
		return PROXY_ERROR;
	}
	h->has_addr = 1;
	return v2_tlvs(buf, PROXY_V2_HEAD + alen, total, err, errlen);
}

enum proxy_status
proxy_parse(const void *data, size_t len, struct proxy_hdr *h, size_t *used,
    char *err, size_t errlen)
{
	const uint8_t	*buf = data;
	size_t		 n;

	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == v2_sig[0]) {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(buf, v2_sig, n) != 0)
			goto bad;
		return parse_v2(buf, len, h, used, err, errlen);
	}
	n = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
	if (memcmp(buf, v1_sig, n) != 0)
		goto bad;
	if (len < sizeof(v1_sig) - 1)
		return PROXY_NEED_MORE;
	return parse_v1(buf, len, h, used, err, errlen);
bad:
	snprintf(err, errlen, "no PROXY protocol signature");
	return PROXY_ERROR;
}

/* --- building --- */

/* An IPv4-mapped IPv6 address as the IPv4 address it is. */
static void
unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in		*s4 = (struct sockaddr_in *)out;

	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	} else if (sa->sa_family == AF_INET)
		memcpy(out, sa, sizeof(struct sockaddr_in));
	else if (sa->sa_family == AF_INET6)
		memcpy(out, sa, sizeof(struct sockaddr_in6));
	else if (sa->sa_family == AF_UNIX)
		memcpy(out, sa, sizeof(struct sockaddr_un));
}

/* The other way, so two families that differ can both be IPv6. */
static void
map(struct sockaddr_storage *ss)
{
	struct sockaddr_in	s4;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)ss;

	if (ss->ss_family != AF_INET)
		return;
	memcpy(&s4, ss, sizeof(s4));
	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = s4.sin_port;
	s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
}

static ssize_t
build_v1(const struct sockaddr_storage *s, const struct sockaddr_storage *d,
    char *buf, size_t len)
{
	const struct sockaddr_in	*s4 = (const void *)s, *d4 = (const void *)d;
	const struct sockaddr_in6	*s6 = (const void *)s, *d6 = (const void *)d;
	char				 a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	int				 n;

	if (s->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		inet_ntop(AF_INET, &d4->sin_addr, b, sizeof(b));
		n = snprintf(buf, len, "PROXY TCP4 %s %s %u %u\r\n", a, b,
		    ntohs(s4->sin_port), ntohs(d4->sin_port));
	} else if (s->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		inet_ntop(AF_INET6, &d6->sin6_addr, b, sizeof(b));
		n = snprintf(buf, len, "PROXY TCP6 %s %s %u %u\r\n", a, b,
		    ntohs(s6->sin6_port), ntohs(d6->sin6_port));
	} else
		n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
	return n < 0 || (size_t)n >= len ? -1 : n;
}

static ssize_t
build_v2(const struct sockaddr_storage *s, const struct sockaddr_storage *d,
    uint8_t *buf, size_t len)
{
	const struct sockaddr_in	*s4 = (const void *)s, *d4 = (const void *)d;
	const struct sockaddr_in6	*s6 = (const void *)s, *d6 = (const void *)d;
	const struct sockaddr_un	*su = (const void *)s, *du = (const void *)d;
	uint8_t				*p = buf + PROXY_V2_HEAD;
	size_t				 alen;

	if (len < PROXY_BUILD_MAX)
		return -1;
	memcpy(buf, v2_sig, sizeof(v2_sig));
	buf[12] = 0x20 | V2_CMD_PROXY;
	switch (s->ss_family) {
	case AF_INET:
		buf[13] = V2_AF_INET << 4 | V2_STREAM;
		memcpy(p, &s4->sin_addr, 4);
		memcpy(p + 4, &d4->sin_addr, 4);
		memcpy(p + 8, &s4->sin_port, 2);
		memcpy(p + 10, &d4->sin_port, 2);
		alen = 12;
		break;
	case AF_INET6:
		buf[13] = V2_AF_INET6 << 4 | V2_STREAM;
		memcpy(p, &s6->sin6_addr, 16);
		memcpy(p + 16, &d6->sin6_addr, 16);
		memcpy(p + 32, &s6->sin6_port, 2);
		memcpy(p + 34, &d6->sin6_port, 2);
		alen = 36;
		break;
	case AF_UNIX:
		buf[13] = V2_AF_UNIX << 4 | V2_STREAM;
		memset(p, 0, 2 * V2_UNIX_PATH);
		memcpy(p, su->sun_path, strnlen(su->sun_path, V2_UNIX_PATH));
		memcpy(p + V2_UNIX_PATH, du->sun_path,
		    strnlen(du->sun_path, V2_UNIX_PATH));
		alen = 2 * V2_UNIX_PATH;
		break;
	default:
		buf[12] = 0x20 | V2_CMD_LOCAL;
		buf[13] = 0;
		alen = 0;
		break;
	}
	buf[14] = (uint8_t)(alen >> 8);
	buf[15] = (uint8_t)alen;
	return (ssize_t)(PROXY_V2_HEAD + alen);
}

ssize_t
proxy_build(int version, const struct sockaddr *src,
    const struct sockaddr *dst, void *buf, size_t len)
{
	struct sockaddr_storage	s, d;

	unmap(src, &s);
	unmap(dst, &d);
	if (s.ss_family != d.ss_family && (s.ss_family == AF_INET ||
	    s.ss_family == AF_INET6) && (d.ss_family == AF_INET ||
	    d.ss_family == AF_INET6)) {
		map(&s);
		map(&d);
	}
	if (s.ss_family != d.ss_family)
		s.ss_family = d.ss_family = AF_UNSPEC;
	return version == 1 ? build_v1(&s, &d, buf, len) :
	    build_v2(&s, &d, buf, len);
}
