/*
 * One HTTPS request at a time, with OpenSSL over a non-blocking socket:
 * the thread that asks blocks in poll(), which also watches a descriptor
 * that its owner makes readable to stop it, so that a stop (SIGTERM, a
 * reload) never waits for a slow or silent server.
 */
#include <sys/socket.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "acme/https.h"

/* One request's connection: every wait on it ends at the deadline, or
 * at once when the stop descriptor turns readable. */
struct link {
	int		 fd;
	int		 stop;		/* https_request's stop, or -1 */
	struct timespec	 deadline;	/* CLOCK_MONOTONIC */
	int		 stopped;	/* the stop came: err says so */
	char		*err;
	size_t		 errlen;
};

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

/* Milliseconds left before l's deadline, at least 0. */
static int
left_ms(const struct link *l)
{
	struct timespec	now;
	long long	ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(l->deadline.tv_sec - now.tv_sec) * 1000 +
	    (l->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * Waits until l's socket is ready for events: 0, or -1 when the stop
 * descriptor turned readable first (l->stopped, err says so) or with
 * errno (ETIMEDOUT: the deadline passed). The stop is looked at before
 * the socket, so that a server that keeps sending cannot starve it.
 */
static int
await(struct link *l, short events)
{
	struct pollfd	pfd[2] = {
		{ l->fd, events, 0 }, { l->stop, POLLIN, 0 }
	};
	int		n;

	for (;;) {
		if ((n = poll(pfd, 2, left_ms(l))) == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (pfd[1].revents != 0) {
			l->stopped = 1;
			snprintf(l->err, l->errlen, "stopped");
			return -1;
		}
		if (pfd[0].revents != 0)
			return 0;
		if (left_ms(l) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

/* After an SSL call of l's failed with err (SSL_get_error, which reads
 * the error queue: each call starts with it empty): waits for
 * what OpenSSL wants and returns 0 to call again, or -1 (errno set
 * unless stopped; EPROTO for an error of OpenSSL's). */
static int
await_ssl(struct link *l, int err)
{
	if (err == SSL_ERROR_WANT_READ)
		return await(l, POLLIN);
	if (err == SSL_ERROR_WANT_WRITE)
		return await(l, POLLOUT);
	if (err != SSL_ERROR_SYSCALL || errno == 0)
		errno = err == SSL_ERROR_SYSCALL ? ECONNRESET : EPROTO;
	return -1;
}

/* "what: why" into l's err, unless a stop already said why. */
static void
failed(struct link *l, const char *what)
{
	if (!l->stopped)
		snprintf(l->err, l->errlen, "%s: %s", what, strerror(errno));
}

/* A connect to ai, without blocking: 0 with l->fd set, or -1 with errno
 * or l->stopped. */
static int
connect_one(struct link *l, const struct addrinfo *ai)
{
	socklen_t	len = sizeof(int);
	int		soerr;

	if ((l->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if (connect(l->fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno == EINPROGRESS && await(l, POLLOUT) == 0) {
		if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			soerr = errno;
		if (soerr == 0)
			return 0;
		errno = soerr;
	}
	soerr = errno;
	close(l->fd);
	l->fd = -1;
	errno = soerr;
	return -1;
}

/*
 * The first address of host that answers, within l's deadline. The name
 * lookup is the one step a stop does not cut short: the resolver's own
 * timeouts bound it, and ACME servers are found by literal addresses or
 * /etc/hosts as often as by DNS.
 */
static int
dial(struct link *l, const char *host, const char *port)
{
	struct addrinfo	 hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char		 what[300];
	int		 rc;

	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(l->err, l->errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (connect_one(l, ai) == 0)
			break;
		snprintf(what, sizeof(what), "connect to %s port %s", host,
		    port);
		failed(l, what);
		if (l->stopped || left_ms(l) == 0)
			break;
	}
	freeaddrinfo(res);
	return l->fd != -1 ? 0 : -1;
}

/* Everything the server sends until it closes, at most a bound. */
static char *
read_all(struct link *l, SSL *ssl, size_t *len)
{
	size_t	 cap = 8192, n = 0, got;
	char	*buf = malloc(cap), *b;
	int	 err;

	while (buf != NULL) {
		if (n + 1 == cap) {
			if (cap > HTTPS_MAX_BODY + 16384 ||
			    (b = realloc(buf, cap * 2)) == NULL) {
				snprintf(l->err, l->errlen, "reply too large");
				break;
			}
			buf = b;
			cap *= 2;
		}
		ERR_clear_error();
		errno = 0;
		if (SSL_read_ex(ssl, buf + n, cap - n - 1, &got) == 1) {
			n += got;
			continue;
		}
		err = SSL_get_error(ssl, 0);
		if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL &&
		    n > 0 && errno == 0)) {
			buf[n] = '\0';
			*len = n;
			return buf;
		}
		if (await_ssl(l, err) == -1) {
			failed(l, "reading the reply");
			break;
		}
	}
	free(buf);
	return NULL;
}

/* The whole of buf: 0, or -1 with err. */
static int
write_all(struct link *l, SSL *ssl, const char *buf, size_t len)
{
	size_t	done;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		if (SSL_write_ex(ssl, buf, len, &done) == 1)
			return 0;
		if (await_ssl(l, SSL_get_error(ssl, 0)) == -1) {
			failed(l, "sending the request");
			return -1;
		}
	}
}

/* The TLS handshake, the server's certificate checked: 0, or -1 with
 * err. */
static int
handshake(struct link *l, SSL *ssl, const char *host)
{
	char	what[300];
	long	v;
	int	r;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((r = SSL_connect(ssl)) == 1)
			return 0;
		if (await_ssl(l, SSL_get_error(ssl, r)) == 0)
			continue;
		if (l->stopped)
			return -1;
		if ((v = SSL_get_verify_result(ssl)) != X509_V_OK)
			snprintf(l->err, l->errlen, "TLS with %s: %s", host,
			    X509_verify_cert_error_string(v));
		else if (errno == EPROTO)
			snprintf(l->err, l->errlen, "TLS with %s: handshake "
			    "failed", host);
		else {
			snprintf(what, sizeof(what), "TLS with %s", host);
			failed(l, what);
		}
		return -1;
	}
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
exchange(struct link *l, SSL *ssl, const char *method, const char *host,
    const char *port, const char *path, const char *body,
    struct https_reply *rep)
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
	if (n == -1) {
		snprintf(l->err, l->errlen, "out of memory");
		return -1;
	}
	if (write_all(l, ssl, req, (size_t)n) == 0 &&
	    (buf = read_all(l, ssl, &len)) != NULL) {
		rc = parse_reply(buf, len, rep, l->err, l->errlen);
		free(buf);
	}
	free(req);
	return rc;
}

int
https_request(SSL_CTX *ctx, const char *method, const char *url,
    const char *body, int timeout, int stop, struct https_reply *rep,
    char *err, size_t errlen)
{
	struct link	 l = { .fd = -1, .stop = stop, .err = err,
			    .errlen = errlen };
	char		 host[256], port[8];
	const char	*path;
	SSL		*ssl = NULL;
	int		 rc = -1;

	memset(rep, 0, sizeof(*rep));
	if (split_url(url, host, sizeof(host), port, sizeof(port), &path) ==
	    -1) {
		snprintf(err, errlen, "bad URL %s", url);
		return -1;
	}
	if (https_stop_wait(stop, 0)) {
		snprintf(err, errlen, "stopped");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &l.deadline);
	l.deadline.tv_sec += timeout;
	if (dial(&l, host, port) == -1)
		return -1;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, l.fd) != 1 ||
	    SSL_set1_host(ssl, host) != 1 ||
	    SSL_set_tlsext_host_name(ssl, host) != 1)
		snprintf(err, errlen, "out of memory");
	else if (handshake(&l, ssl, host) == 0)
		rc = exchange(&l, ssl, method, host, port, path, body, rep);
	SSL_free(ssl);
	close(l.fd);
	ERR_clear_error();
	if (rc == -1)
		https_reply_free(rep);
	return rc;
}

int
https_stop_wait(int stop, int ms)
{
	struct pollfd	pfd = { stop, POLLIN, 0 };
	struct timespec	end, now;
	long long	left = ms;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	for (;;) {
		if (poll(&pfd, 1, (int)left) == 1)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long long)(end.tv_sec - now.tv_sec) * 1000 +
		    (end.tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0)
			return 0;
	}
}

void
https_reply_free(struct https_reply *rep)
{
	free(rep->body);
	rep->body = NULL;
}
