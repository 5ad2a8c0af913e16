/*
 * One ACME (RFC 8555) issuance, blocking: directory, account (found or
 * made with the account key), order, HTTP-01 for each name (published
 * through relay/challenge.h while the server validates), finalize with a
 * new key's CSR, download. Runs on the ACME thread.
 */
#ifndef ACME_ORDER_H
#define ACME_ORDER_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

struct order_params {
	const char	*directory;	/* the server's directory URL */
	const char	*email;		/* NULL: no contact */
	char *const	*names;
	size_t		 nnames;
	EVP_PKEY	*account;
	SSL_CTX		*tls;		/* trusts the server */
	int		 stop;		/* readable: give up (https_request) */
};

/*
 * Gets a certificate: on 0, *chain (PEM, the caller frees) and *key (the
 * caller frees) are set; -1 with err (the server's problem detail when it
 * sent one).
 */
int	order_certificate(const struct order_params *, char **chain,
	    EVP_PKEY **key, char *err, size_t errlen);

#endif
