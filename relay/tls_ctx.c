/*
 * TLS contexts: the certificate/key pairs a tls: listener serves (SNI picks
 * among them) and the trust a tls: target is verified against. Both can be
 * read again on SIGHUP; a failed reload keeps what was loaded before.
 *
 * Defaults, the same on both sides: TLS 1.2 and 1.3 only, OpenSSL's default
 * cipher lists, no renegotiation, no compression (OpenSSL's default),
 * session tickets as OpenSSL does them, and a peer that closes the socket
 * without close_notify counts as EOF, as a plain TCP relay would see it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "relay/config.h"
#include "relay/log.h"
#include "relay/tls.h"
#include "relay/tls_int.h"

struct tls_server {
	char	**certs, **keys;	/* paths, owned */
	size_t	  n;
	SSL_CTX	**ctx;			/* n contexts, ctx[0] the default */
	/* --alpn in the wire format: length-prefixed names, preferred first */
	unsigned char	alpn[CONF_ALPN_MAX];
	unsigned	alpnlen;
};

struct tls_client {
	char	 *cafile;		/* NULL: the system store */
	char	 *name;			/* to verify and send as SNI */
	int	  name_is_ip;
	SSL_CTX	 *ctx;
};

void
tls_error(char *buf, size_t len, const char *fallback)
{
	unsigned long	 e = ERR_peek_last_error();
	const char	*reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", reason != NULL ? reason : fallback);
	ERR_clear_error();
}

static SSL_CTX *
ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(method)) == NULL) {
		tls_error(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* The pump hands SSL_write whole buffers and retries the same bytes
	 * after EAGAIN; partial writes let it free the buffer sooner. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* Fewer read calls; the endpoint looks at what is buffered. */
	SSL_CTX_set_read_ahead(ctx, 1);
	return ctx;
}

/* A readable-file check first: OpenSSL's own message for a missing file
 * does not name it. */
static int
check_file(const char *what, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == -1) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_server	*s = arg;
	const char		*name;
	X509			*x;
	size_t			 i;

	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;	/* the default pair */
	for (i = 0; i < s->n; i++) {
		x = SSL_CTX_get0_certificate(s->ctx[i]);
		if (x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1) {
			if (i > 0)
				SSL_set_SSL_CTX(ssl, s->ctx[i]);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * ALPN: the first of our protocols that the client offers. A client that
 * offers protocols but none of ours fails with no_application_protocol
 * (RFC 7301 3.2) rather than going on with a protocol we never agreed to;
 * one that offers none is not asked.
 */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned inlen, void *arg)
{
	struct tls_server	*s = arg;
	unsigned char		*sel;

	(void)ssl;
	if (SSL_select_next_proto(&sel, outlen, s->alpn, s->alpnlen, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* "h2,http/1.1" (checked by the option) in the wire format. */
static void
alpn_encode(struct tls_server *s, const char *list)
{
	const char	*p = list, *end;
	size_t		 len;

	s->alpnlen = 0;
	while (*p != '\0') {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len == 0 || len > 255 ||
		    s->alpnlen + 1 + len > sizeof(s->alpn))
			break;
		s->alpn[s->alpnlen++] = (unsigned char)len;
		memcpy(s->alpn + s->alpnlen, p, len);
		s->alpnlen += (unsigned)len;
		p += len + (end != NULL);
	}
}

/* An expired certificate is still served (clients decide), but said. */
static void
warn_if_expired(SSL_CTX *ctx, const char *cert)
{
	X509		*x = SSL_CTX_get0_certificate(ctx);
	const ASN1_TIME	*t;

	if (x == NULL)
		return;
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warnx("certificate %s has expired", cert);
	else if ((t = X509_get0_notBefore(x)) != NULL &&
	    X509_cmp_current_time(t) > 0)
		log_warnx("certificate %s is not valid yet", cert);
}

static SSL_CTX *
server_ctx(struct tls_server *s, const char *cert, const char *key,
    char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 why[200];

	if (check_file("certificate", cert, err, errlen) == -1 ||
	    check_file("key", key, err, errlen) == -1 ||
	    (ctx = ctx_new(TLS_server_method(), err, errlen)) == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(why, sizeof(why), "cannot load it");
		snprintf(err, errlen, "certificate %s: %s", cert, why);
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) !=
	    1 && ERR_GET_REASON(ERR_peek_last_error()) !=
	    X509_R_KEY_VALUES_MISMATCH) {
		tls_error(why, sizeof(why), "cannot load it");
		snprintf(err, errlen, "key %s: %s", key, why);
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "key %s does not match certificate %s",
		    key, cert);
	} else {
		warn_if_expired(ctx, cert);
		SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
		SSL_CTX_set_tlsext_servername_arg(ctx, s);
		/* Each: after SNI the chosen context's callback runs. */
		SSL_CTX_set_alpn_select_cb(ctx, on_alpn, s);
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}

static void
free_ctxs(SSL_CTX **ctx, size_t n)
{
	size_t	i;

	if (ctx == NULL)
		return;
	for (i = 0; i < n; i++)
		SSL_CTX_free(ctx[i]);
	free(ctx);
}

/* All pairs or none: NULL with err when one fails. */
static SSL_CTX **
load_pairs(struct tls_server *s, char *err, size_t errlen)
{
	SSL_CTX	**ctx;
	size_t	  i;

	if ((ctx = calloc(s->n, sizeof(*ctx))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < s->n; i++) {
		if ((ctx[i] = server_ctx(s, s->certs[i], s->keys[i], err,
		    errlen)) == NULL) {
			free_ctxs(ctx, i);
			return NULL;
		}
	}
	return ctx;
}

static char **
dup_paths(char *const *paths, size_t n)
{
	char	**d;
	size_t	  i;

	if ((d = calloc(n, sizeof(*d))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((d[i] = strdup(paths[i])) == NULL) {
			while (i-- > 0)
				free(d[i]);
			free(d);
			return NULL;
		}
	}
	return d;
}

static void
free_paths(char **p, size_t n)
{
	size_t	i;

	if (p == NULL)
		return;
	for (i = 0; i < n; i++)
		free(p[i]);
	free(p);
}

struct tls_server *
tls_server_new(char *const *certs, char *const *keys, size_t n,
    const char *alpn, char *err, size_t errlen)
{
	struct tls_server	*s;

	if (n == 0) {
		snprintf(err, errlen, "a tls: listener needs --cert and --key");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->certs = dup_paths(certs, n)) == NULL ||
	    (s->keys = dup_paths(keys, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (s != NULL)
			free_paths(s->certs, n);
		free(s);
		return NULL;
	}
	s->n = n;
	alpn_encode(s, alpn != NULL && *alpn != '\0' ? alpn :
	    CONF_ALPN_DEFAULT);
	if ((s->ctx = load_pairs(s, err, errlen)) == NULL) {
		tls_server_free(s);
		return NULL;
	}
	return s;
}

int
tls_server_reload(struct tls_server *s, char *err, size_t errlen)
{
	SSL_CTX	**ctx;

	if ((ctx = load_pairs(s, err, errlen)) == NULL)
		return -1;
	/* Connections hold their own references to the contexts they use. */
	free_ctxs(s->ctx, s->n);
	s->ctx = ctx;
	return 0;
}

void
tls_server_free(struct tls_server *s)
{
	if (s == NULL)
		return;
	free_ctxs(s->ctx, s->n);
	free_paths(s->certs, s->n);
	free_paths(s->keys, s->n);
	free(s);
}

SSL *
tls_server_ssl(struct tls_server *s)
{
	return SSL_new(s->ctx[0]);
}

static SSL_CTX *
client_ctx(const char *cafile, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	char	 why[200];

	if (cafile != NULL && check_file("CA file", cafile, err, errlen) == -1)
		return NULL;
	if ((ctx = ctx_new(TLS_client_method(), err, errlen)) == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cafile == NULL ? SSL_CTX_set_default_verify_paths(ctx) == 1 :
	    SSL_CTX_load_verify_file(ctx, cafile) == 1)
		return ctx;
	tls_error(why, sizeof(why), "cannot load it");
	if (cafile != NULL)
		snprintf(err, errlen, "CA file %s: %s", cafile, why);
	else
		snprintf(err, errlen, "system CA store: %s", why);
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_client *
tls_client_new(const char *cafile, const char *name, char *err,
    size_t errlen)
{
	struct tls_client	*c;
	struct in6_addr		 a;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->name = strdup(name)) == NULL ||
	    (cafile != NULL && (c->cafile = strdup(cafile)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		tls_client_free(c);
		return NULL;
	}
	c->name_is_ip = inet_pton(AF_INET, name, &a) == 1 ||
	    inet_pton(AF_INET6, name, &a) == 1;
	if ((c->ctx = client_ctx(cafile, err, errlen)) == NULL) {
		tls_client_free(c);
		return NULL;
	}
	return c;
}

int
tls_client_reload(struct tls_client *c, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = client_ctx(c->cafile, err, errlen)) == NULL)
		return -1;
	SSL_CTX_free(c->ctx);
	c->ctx = ctx;
	return 0;
}

void
tls_client_free(struct tls_client *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	free(c->cafile);
	free(c->name);
	free(c);
}

SSL *
tls_client_ssl(struct tls_client *c)
{
	SSL	*ssl;
	int	 ok;

	if ((ssl = SSL_new(c->ctx)) == NULL)
		return NULL;
	/* SNI carries host names only (RFC 6066). */
	if (c->name_is_ip)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    c->name) == 1;
	else
		ok = SSL_set1_host(ssl, c->name) == 1 &&
		    SSL_set_tlsext_host_name(ssl, c->name) == 1;
	if (!ok) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}
