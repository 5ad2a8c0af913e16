/*
 * The server name of a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3), read
 * from the first bytes of a connection without terminating TLS. The
 * handshake message is gathered from as many handshake records as it
 * spans, then walked field by field, every length checked against what
 * holds it.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "relay/peek.h"

#define REC_HEAD	5	/* type, version, length */
#define REC_HANDSHAKE	22
#define REC_MAX		(16384 + 2048)	/* the largest record TLS allows */
#define HS_HEAD		4	/* type, 24-bit length */
#define HS_CLIENT_HELLO	1
#define EXT_SERVER_NAME	0
#define SNI_HOST_NAME	0

/* A cursor over bytes whose every read is bounded by what is left. */
struct cur {
	const uint8_t	*p;
	size_t		 left;
};

static int
take(struct cur *c, size_t n, const uint8_t **out)
{
	if (c->left < n)
		return -1;
	if (out != NULL)
		*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int
take_len(struct cur *c, size_t width, size_t *len)
{
	const uint8_t	*b;
	size_t		 i;

	if (take(c, width, &b) == -1)
		return -1;
	for (*len = 0, i = 0; i < width; i++)
		*len = *len << 8 | b[i];
	return 0;
}

/* A length-prefixed field as a cursor of its own. */
static int
take_vec(struct cur *c, size_t width, struct cur *v)
{
	size_t	len;

	if (take_len(c, width, &len) == -1 || take(c, len, &v->p) == -1)
		return -1;
	v->left = len;
	return 0;
}

static enum peek_status
fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return PEEK_ERROR;
}

int
peek_is_tls(unsigned char first)
{
	return first == REC_HANDSHAKE;
}

int
peek_name(const void *buf, size_t n, char *name, size_t namelen)
{
	const uint8_t	*s = buf;
	size_t		 i;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n >= namelen || n >= PEEK_NAME_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isalnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return -1;
		name[i] = (char)tolower(s[i]);
	}
	name[n] = '\0';
	return 0;
}

/* The server_name extension's first host_name into name. */
static int
server_name(struct cur ext, char *name, size_t namelen)
{
	struct cur	 list, host;
	const uint8_t	*type;

	if (take_vec(&ext, 2, &list) == -1 || ext.left != 0)
		return -1;
	while (list.left > 0) {
		if (take(&list, 1, &type) == -1 ||
		    take_vec(&list, 2, &host) == -1)
			return -1;
		if (*type == SNI_HOST_NAME)
			return peek_name(host.p, host.left, name, namelen);
	}
	return -1;
}

/* Walks a whole ClientHello body to its extensions. */
static enum peek_status
client_hello(struct cur hello, char *name, size_t namelen, char *err,
    size_t errlen)
{
	struct cur	 skip, exts, ext;
	size_t		 type;

	if (take(&hello, 2 + 32, NULL) == -1 ||		/* version, random */
	    take_vec(&hello, 1, &skip) == -1 ||		/* session id */
	    take_vec(&hello, 2, &skip) == -1 ||		/* cipher suites */
	    take_vec(&hello, 1, &skip) == -1)		/* compression */
		return fail(err, errlen, "ClientHello cut short");
	if (hello.left == 0)
		return PEEK_DONE;			/* no extensions */
	if (take_vec(&hello, 2, &exts) == -1 || hello.left != 0)
		return fail(err, errlen, "ClientHello extensions malformed");
	while (exts.left > 0) {
		if (take_len(&exts, 2, &type) == -1 ||
		    take_vec(&exts, 2, &ext) == -1)
			return fail(err, errlen,
			    "ClientHello extensions malformed");
		if (type != EXT_SERVER_NAME)
			continue;
		if (server_name(ext, name, namelen) == -1)
			return fail(err, errlen, "bad server name in ClientHello");
		return PEEK_DONE;
	}
	return PEEK_DONE;
}

/* The handshake message's whole length once its header is in, else 0. */
static size_t
hs_need(const uint8_t *hs, size_t n)
{
	if (n < HS_HEAD)
		return 0;
	return HS_HEAD + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
}

/*
 * Gathers the handshake bytes of the records in buf into hs (at most
 * PEEK_MAX), up to the end of the first handshake message. Returns the
 * bytes gathered, or -1 with err set.
 */
static ssize_t
gather(const uint8_t *buf, size_t len, uint8_t *hs, char *err,
    size_t errlen)
{
	size_t	off = 0, n = 0, rec, need;

	while (len - off >= REC_HEAD) {
		need = hs_need(hs, n);
		if (need > 0 && n >= need)
			break;
		if (buf[off] != REC_HANDSHAKE)
			return fail(err, errlen, n == 0 ? "not a TLS "
			    "handshake" : "ClientHello interrupted by "
			    "another record"), -1;
		if (buf[off + 1] != 3)
			return fail(err, errlen, "not a TLS record"), -1;
		rec = (size_t)buf[off + 3] << 8 | buf[off + 4];
		if (rec == 0 || rec > REC_MAX)
			return fail(err, errlen, "bad TLS record length"), -1;
		off += REC_HEAD;
		if (rec > len - off)
			rec = len - off;	/* the rest is yet to come */
		if (n + rec > PEEK_MAX)
			return fail(err, errlen, "ClientHello larger than "
			    "64 KiB"), -1;
		memcpy(hs + n, buf + off, rec);
		n += rec;
		off += rec;
	}
	return (ssize_t)n;
}

enum peek_status
peek_tls_sni(const void *buf, size_t len, char *name, size_t namelen,
    char *err, size_t errlen)
{
	static _Thread_local uint8_t	hs[PEEK_MAX];
	struct cur			hello;
	ssize_t				n;
	size_t				need;

	*name = '\0';
	if (len > 0 && !peek_is_tls(*(const uint8_t *)buf))
		return fail(err, errlen, "not a TLS handshake");
	if ((n = gather(buf, len, hs, err, errlen)) == -1)
		return PEEK_ERROR;
	if (n >= 1 && hs[0] != HS_CLIENT_HELLO)
		return fail(err, errlen, "first handshake message is not a "
		    "ClientHello");
	need = hs_need(hs, (size_t)n);
	if (need > PEEK_MAX)
		return fail(err, errlen, "ClientHello larger than 64 KiB");
	if (need == 0 || (size_t)n < need) {
		/* Tiny records could stretch a small hello past any bound. */
		if (len >= PEEK_MAX)
			return fail(err, errlen, "ClientHello larger than "
			    "64 KiB");
		return PEEK_NEED_MORE;
	}
	hello.p = hs + HS_HEAD;
	hello.left = need - HS_HEAD;
	return client_hello(hello, name, namelen, err, errlen);
}
