/*
 * TLS endpoints: SSL_read/SSL_write over a non-blocking socket, behind the
 * same ops as a bare socket.
 *
 * What the pump wants (read or write bytes) is not what the socket must be
 * waited for: a read can need the socket writable (TLS sends while it
 * reads: key updates, alerts) and a write can need it readable. Each side
 * remembers what its last call waited for, and the socket events armed are
 * the union of those for the directions the pump wants. Readiness is
 * reported back to the pump as the direction that was waiting for it.
 *
 * Bytes can also sit inside OpenSSL, decrypted or read ahead, while the
 * socket has nothing more to say: after a read that returned data with more
 * buffered, a one-shot event tells the pump to read again, so it never
 * waits on a socket that will not become readable.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "relay/log.h"
#include "relay/tls.h"
#include "relay/tls_int.h"

struct tls_ep {
	struct endpoint	 ep;
	int		 fd;
	SSL		*ssl;
	struct event	 rd, wr;	/* the socket */
	struct event	 more;		/* bytes buffered in OpenSSL */
	int		 armed;		/* socket events added: EP_* */
	int		 hs_needs;	/* socket readiness, while handshaking */
	int		 read_needs;	/* ... the last SSL_read waits for */
	int		 write_needs;	/* ... the last SSL_write waits for */
	int		 read_error;	/* errno a read met after its bytes */
	unsigned	 handshaking:1;
	unsigned	 buffered:1;	/* OpenSSL may hold readable bytes */
	unsigned	 shut_pending:1; /* close_notify waits for room */
	unsigned	 client:1;	/* we connected (verify the peer) */
};

/* Adds and removes socket events so they match what is waited for, given
 * the pump's interest what. */
static void
arm(struct tls_ep *e, int what)
{
	int	sock = 0;

	if (e->handshaking)
		sock = e->hs_needs;
	else {
		if (what & EP_READ)
			sock |= e->read_needs;
		if (what & EP_WRITE)
			sock |= e->write_needs;
		if (e->shut_pending)
			sock |= EP_WRITE;
	}
	if ((sock & EP_READ) && !(e->armed & EP_READ))
		event_add(&e->rd, NULL);
	else if (!(sock & EP_READ) && (e->armed & EP_READ))
		event_del(&e->rd);
	if ((sock & EP_WRITE) && !(e->armed & EP_WRITE))
		event_add(&e->wr, NULL);
	else if (!(sock & EP_WRITE) && (e->armed & EP_WRITE))
		event_del(&e->wr);
	e->armed = sock;
	if (!e->handshaking && (what & EP_READ) && e->buffered)
		event_active(&e->more, EV_READ, 1);
}

/* errno for an SSL call that failed with err; EAGAIN after setting *needs. */
static void
set_errno(struct tls_ep *e, int err, int *needs)
{
	char	why[200];

	switch (err) {
	case SSL_ERROR_WANT_READ:
		*needs = EP_READ;
		errno = EAGAIN;
		break;
	case SSL_ERROR_WANT_WRITE:
		*needs = EP_WRITE;
		errno = EAGAIN;
		break;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0 || errno == EAGAIN)
			errno = EPIPE;
		break;
	default:
		tls_error(why, sizeof(why), "protocol error");
		log_debug("tls: %s", why);
		errno = EPROTO;
	}
}

/* What the call that ended a read that already has bytes would say is
 * left for the next read; the wake-up for it must come from somewhere. */
static void
read_stopped(struct tls_ep *e, int err)
{
	e->buffered = 0;
	if (err == SSL_ERROR_WANT_READ)
		e->read_needs = EP_READ;	/* the socket says when */
	else if (err == SSL_ERROR_WANT_WRITE)
		e->read_needs = EP_WRITE;
	else {
		/* EOF or an error: no news will come from the socket, and a
		 * socket error would not be seen again. */
		if (err == SSL_ERROR_SYSCALL)
			e->read_error = errno != 0 && errno != EAGAIN ? errno :
			    EPIPE;
		ERR_clear_error();
		e->buffered = 1;
	}
}

static ssize_t
tls_read(struct endpoint *ep, void *buf, size_t len)
{
	struct tls_ep	*e = (struct tls_ep *)ep;
	size_t		 total = 0, n;
	int		 r, err;

	if (e->read_error != 0) {
		e->buffered = 0;
		errno = e->read_error;
		return -1;
	}
	/* Record after record until the buffer is full or OpenSSL needs the
	 * socket: the pump takes a short read to mean nothing more waits. */
	do {
		ERR_clear_error();
		errno = 0;
		if ((r = SSL_read_ex(e->ssl, (char *)buf + total, len - total,
		    &n)) == 1)
			total += n;
	} while (r == 1 && total < len);
	if (r == 1) {
		e->read_needs = EP_READ;
		e->buffered = SSL_has_pending(e->ssl) != 0;
		arm(e, ep->wanted);
		return (ssize_t)total;
	}
	err = SSL_get_error(e->ssl, r);
	if (total > 0) {
		read_stopped(e, err);
		arm(e, ep->wanted);
		return (ssize_t)total;
	}
	/* WANT_READ means OpenSSL took all it could use: what it still
	 * holds is an incomplete record, and the socket says when more is
	 * there. */
	e->buffered = 0;
	if (err == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0;
	}
	set_errno(e, err, &e->read_needs);
	if (errno == EAGAIN)
		arm(e, ep->wanted);
	return -1;
}

static ssize_t
tls_write(struct endpoint *ep, const void *buf, size_t len)
{
	struct tls_ep	*e = (struct tls_ep *)ep;
	size_t		 n;
	int		 r;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_write_ex(e->ssl, buf, len, &n)) == 1) {
		if (e->write_needs != EP_WRITE) {
			e->write_needs = EP_WRITE;
			arm(e, ep->wanted);
		}
		return (ssize_t)n;
	}
	set_errno(e, SSL_get_error(e->ssl, r), &e->write_needs);
	if (errno == EAGAIN)
		arm(e, ep->wanted);
	return -1;
}

/* Sends close_notify, then the TCP FIN. 0 when done or waiting for room
 * (shut_pending), -1 with errno when the peer is gone. */
static int
send_close_notify(struct tls_ep *e)
{
	int	r, dummy;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_shutdown(e->ssl)) < 0) {
		set_errno(e, SSL_get_error(e->ssl, r), &dummy);
		if (errno == EAGAIN) {
			e->shut_pending = 1;
			return 0;
		}
		e->shut_pending = 0;
		return -1;
	}
	e->shut_pending = 0;
	if (shutdown(e->fd, SHUT_WR) == -1 && errno != ENOTCONN)
		return -1;
	return 0;
}

static int
tls_shutdown_write(struct endpoint *ep)
{
	struct tls_ep	*e = (struct tls_ep *)ep;
	int		 r;

	r = send_close_notify(e);
	arm(e, ep->wanted);
	return r;
}

static void
tls_want(struct endpoint *ep, int what)
{
	arm((struct tls_ep *)ep, what);
}

static void
tls_free(struct endpoint *ep)
{
	struct tls_ep	*e = (struct tls_ep *)ep;

	event_del(&e->rd);
	event_del(&e->wr);
	event_del(&e->more);
	SSL_free(e->ssl);
	close(e->fd);
	free(e);
}

/* Why a handshake failed, in words a log reader can act on. */
static void
handshake_error(struct tls_ep *e, int err, char *why, size_t len)
{
	char	reason[200];
	long	verify;

	if (err == SSL_ERROR_SYSCALL) {
		ERR_clear_error();
		snprintf(why, len, "TLS handshake failed: %s", errno != 0 ?
		    strerror(errno) : "connection closed");
		return;
	}
	if (e->client && (verify = SSL_get_verify_result(e->ssl)) != X509_V_OK) {
		ERR_clear_error();
		snprintf(why, len, "TLS handshake failed: certificate verify "
		    "failed: %s", X509_verify_cert_error_string(verify));
		return;
	}
	tls_error(reason, sizeof(reason), "protocol error");
	snprintf(why, len, "TLS handshake failed: %s", reason);
}

static int
tls_handshake(struct endpoint *ep, char *why, size_t len)
{
	struct tls_ep	*e = (struct tls_ep *)ep;
	int		 r, err;

	/* A step may have driven it to its end already (routing by SNI). */
	if (!e->handshaking)
		return 1;
	ERR_clear_error();
	errno = 0;
	if ((r = SSL_do_handshake(e->ssl)) == 1) {
		e->handshaking = 0;
		/* The peer's first bytes may have come with its last
		 * handshake message, already read. */
		e->buffered = 1;
		arm(e, ep->wanted);
		log_debug("tls: %s %s", SSL_get_version(e->ssl),
		    SSL_get_cipher_name(e->ssl));
		return 1;
	}
	err = SSL_get_error(e->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		e->hs_needs = err == SSL_ERROR_WANT_READ ? EP_READ : EP_WRITE;
		arm(e, ep->wanted);
		return 0;
	}
	handshake_error(e, err, why, len);
	/* Nothing more will be asked of this endpoint but to be freed. */
	e->hs_needs = 0;
	arm(e, 0);
	return -1;
}

/* Not a bare socket: the pump must never splice around OpenSSL. */
static const struct endpoint_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.shutdown_write = tls_shutdown_write,
	.want = tls_want,
	.free = tls_free,
	.handshake = tls_handshake,
};

/* Socket readiness becomes the pump directions that waited for it. */
static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct tls_ep	*e = arg;
	int		 ready, report = 0;

	ready = (what & EV_READ ? EP_READ : 0) | (what & EV_WRITE ? EP_WRITE :
	    0);
	if (e->handshaking) {
		e->ep.cb(&e->ep, ready, e->ep.cbarg);
		return;
	}
	if (e->shut_pending && (ready & EP_WRITE) &&
	    send_close_notify(e) == -1)
		log_debug("tls: close_notify not sent: %s", strerror(errno));
	if (ready & e->read_needs)
		report |= EP_READ;
	if (ready & e->write_needs)
		report |= EP_WRITE;
	report &= e->ep.wanted;
	if (report == 0) {
		arm(e, e->ep.wanted);
		return;
	}
	/* The callback may free e: nothing after it. */
	e->ep.cb(&e->ep, report, e->ep.cbarg);
}

static void
on_buffered(evutil_socket_t fd, short what, void *arg)
{
	struct tls_ep	*e = arg;

	if (e->buffered && (e->ep.wanted & EP_READ))
		e->ep.cb(&e->ep, EP_READ, e->ep.cbarg);
}

static struct endpoint *
tls_endpoint_new(struct event_base *base, int fd, SSL *ssl, int client)
{
	struct tls_ep	*e;

	if (ssl == NULL)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL || SSL_set_fd(ssl, fd) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		free(e);
		return NULL;
	}
	e->ep.ops = &tls_ops;
	e->fd = fd;
	e->ssl = ssl;
	e->handshaking = 1;
	e->client = client;
	e->read_needs = EP_READ;
	e->write_needs = EP_WRITE;
	event_assign(&e->rd, base, fd, EV_READ | EV_PERSIST, on_socket, e);
	event_assign(&e->wr, base, fd, EV_WRITE | EV_PERSIST, on_socket, e);
	event_assign(&e->more, base, -1, 0, on_buffered, e);
	if (client)
		SSL_set_connect_state(ssl);
	else
		SSL_set_accept_state(ssl);
	return &e->ep;
}

struct endpoint *
tls_endpoint_accept(struct event_base *base, int fd, struct tls_server *s)
{
	return tls_endpoint_new(base, fd, tls_server_ssl(s), 0);
}

struct endpoint *
tls_endpoint_connect(struct event_base *base, int fd, struct tls_client *c)
{
	return tls_endpoint_new(base, fd, tls_client_ssl(c), 1);
}

const char *
tls_endpoint_servername(struct endpoint *ep)
{
	struct tls_ep	*e = (struct tls_ep *)ep;

	if (ep->ops != &tls_ops || e->client || e->handshaking)
		return NULL;
	return SSL_get_servername(e->ssl, TLSEXT_NAMETYPE_host_name);
}
