/* One HTTPS request at a time, blocking, with OpenSSL over a socket. */
#include <sys/socket.h>
#include <sys/time.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "acme/https.h"

SSL_CTX *
https_ctx(const char *cafile, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((cafile == NULL ? SSL_CTX_set_default_verify_paths(ctx) :
	    SSL_CTX_load_verify_file(ctx, cafile)) == 1)
		return ctx;
fail:
	snprintf(err, errlen, "%s: cannot load it", cafile != NULL ? cafile :
	    "system CA store");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* https://host[:port]/path into its parts: 0, or -1. */
static int
split_url(const char *url, char *host, size_t hostlen, char *port,
    size_t portlen, const char **path)
{
	const char	*h, *end, *colon;
	size_t		 n;

	if (strncasecmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
	if ((end = strchr(h, '/')) == NULL)
		end = h + strlen(h);
	*path = *end != '\0' ? end : "/";
	if (*h == '[') {
		if ((colon = memchr(h, ']', (size_t)(end - h))) == NULL)
			return -1;
		n = (size_t)(colon - h - 1);
		h++;
		colon = colon[1] == ':' ? colon + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		n = (size_t)((colon != NULL ? colon : end) - h);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	n = colon != NULL ? (size_t)(end - colon - 1) : 3;
	if (n == 0 || n >= portlen)
		return -1;
	memcpy(port, colon != NULL ? colon + 1 : "443", n);
	port[n] = '\0';
	return 0;
}

static int
dial(const char *host, const char *port, int timeout, char *err,
    size_t errlen)
{
	struct addrinfo	 hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval	 tv = { timeout, 0 };
	int		 fd = -1, rc;

	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    0)) == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "connect to %s port %s: %s", host, port,
		    strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Everything the server sends until it closes, at most a bound. */
static char *
read_all(SSL *ssl, size_t *len, char *err, size_t errlen)
{
	size_t	 cap = 8192, n = 0;
	char	*buf = malloc(cap), *b;
	int	 r;

	while (buf != NULL) {
		if (n + 1 == cap) {
			if (cap > HTTPS_MAX_BODY + 16384 ||
			    (b = realloc(buf, cap * 2)) == NULL) {
				snprintf(err, errlen, "reply too large");
				break;
			}
			buf = b;
			cap *= 2;
		}
		if ((r = SSL_read(ssl, buf + n, (int)(cap - n - 1))) > 0) {
			n += (size_t)r;
			continue;
		}
		if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ||
		    (SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL && n > 0 &&
		    errno == 0)) {
			buf[n] = '\0';
			*len = n;
			return buf;
		}
		snprintf(err, errlen, "reading the reply: %s", errno ==
		    EAGAIN ? "timeout" : "connection lost");
		break;
	}
	free(buf);
	return NULL;
}

/* A header's value (after "name:") into out, or leaves out as it is. */
static void
header(const char *head, const char *name, char *out, size_t outlen)
{
	const char	*p = head, *v, *eol;
	size_t		 n = strlen(name), vlen;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) != 0 || p[n] != ':')
			continue;
		for (v = p + n + 1; *v == ' ' || *v == '\t'; v++)
			;
		if ((eol = strstr(v, "\r\n")) == NULL)
			return;
		vlen = (size_t)(eol - v);
		if (vlen < outlen) {
			memcpy(out, v, vlen);
			out[vlen] = '\0';
		}
		return;
	}
}

/* A chunked body decoded in place: its length, or -1. */
static long
dechunk(char *b, size_t len)
{
	char	*r = b, *w = b, *end = b + len, *e;
	unsigned long	n;

	for (;;) {
		n = strtoul(r, &e, 16);
		if (e == r || (e = strstr(e, "\r\n")) == NULL)
			return -1;
		r = e + 2;
		if (n == 0)
			return w - b;
		if (n > (size_t)(end - r))
			return -1;
		memmove(w, r, n);
		w += n;
		r += n;
		if (end - r < 2 || r[0] != '\r' || r[1] != '\n')
			return -1;
		r += 2;
	}
}

/* Status line, headers and body of a whole reply. */
static int
parse_reply(char *buf, size_t len, struct https_reply *rep, char *err,
    size_t errlen)
{
	char	*body, te[64] = "", *sp;
	long	 n;

	if ((body = strstr(buf, "\r\n\r\n")) == NULL ||
	    strncmp(buf, "HTTP/1.", 7) != 0 ||
	    (sp = strchr(buf, ' ')) == NULL ||
	    (rep->status = atoi(sp + 1)) < 100) {
		snprintf(err, errlen, "not an HTTP reply");
		return -1;
	}
	body[2] = '\0';
	header(buf, "Replay-Nonce", rep->nonce, sizeof(rep->nonce));
	header(buf, "Location", rep->location, sizeof(rep->location));
	header(buf, "Transfer-Encoding", te, sizeof(te));
	body += 4;
	n = (long)(len - (size_t)(body - buf));
	if (strcasecmp(te, "chunked") == 0 && (n = dechunk(body, (size_t)n)) ==
	    -1) {
		snprintf(err, errlen, "bad chunked reply");
		return -1;
	}
	if ((rep->body = malloc((size_t)n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(rep->body, body, (size_t)n);
	rep->body[n] = '\0';
	rep->len = (size_t)n;
	return 0;
}

/* Servers build their URLs from Host: it carries the port unless 443. */
static int
exchange(SSL *ssl, const char *method, const char *host, const char *port,
    const char *path, const char *body, struct https_reply *rep, char *err,
    size_t errlen)
{
	char	*req = NULL, *buf, clen[96] = "";
	size_t	 len = 0;
	int	 n, rc = -1, v6 = strchr(host, ':') != NULL;

	if (body != NULL)
		snprintf(clen, sizeof(clen), "Content-Type: application/"
		    "jose+json\r\nContent-Length: %zu\r\n", strlen(body));
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n"
	    "User-Agent: relayd\r\nAccept: */*\r\nConnection: close\r\n%s"
	    "\r\n%s", method, path, v6 ? "[" : "", host, v6 ? "]" : "",
	    strcmp(port, "443") != 0 ? ":" : "", strcmp(port, "443") != 0 ?
	    port : "", clen, body != NULL ? body : "");
	if (n == -1)
		return -1;
	if (SSL_write(ssl, req, n) != n)
		snprintf(err, errlen, "sending the request failed");
	else if ((buf = read_all(ssl, &len, err, errlen)) != NULL) {
		rc = parse_reply(buf, len, rep, err, errlen);
		free(buf);
	}
	free(req);
	return rc;
}

int
https_request(SSL_CTX *ctx, const char *method, const char *url,
    const char *body, int timeout, _Atomic int *abort_fd,
    struct https_reply *rep, char *err, size_t errlen)
{
	char		 host[256], port[8];
	const char	*path;
	SSL		*ssl = NULL;
	int		 fd, rc = -1;

	memset(rep, 0, sizeof(*rep));
	if (split_url(url, host, sizeof(host), port, sizeof(port), &path) ==
	    -1) {
		snprintf(err, errlen, "bad URL %s", url);
		return -1;
	}
	if ((fd = dial(host, port, timeout, err, errlen)) == -1)
		return -1;
	*abort_fd = fd;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set1_host(ssl, host) != 1 ||
	    SSL_set_tlsext_host_name(ssl, host) != 1)
		snprintf(err, errlen, "out of memory");
	else if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		snprintf(err, errlen, "TLS with %s: %s", host, v != X509_V_OK ?
		    X509_verify_cert_error_string(v) : "handshake failed");
	} else
		rc = exchange(ssl, method, host, port, path, body, rep, err,
		    errlen);
	*abort_fd = -1;
	SSL_free(ssl);
	close(fd);
	ERR_clear_error();
	if (rc == -1)
		https_reply_free(rep);
	return rc;
}

void
https_reply_free(struct https_reply *rep)
{
	free(rep->body);
	rep->body = NULL;
}
