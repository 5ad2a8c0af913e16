/*
 * The cryptography of ACME (RFC 8555 6.2, RFC 7515, RFC 7638) with
 * OpenSSL: P-256 keys, base64url, the account's JWK and thumbprint, JWS
 * requests signed with ES256, and CSRs. Library-like: returns -1 or NULL
 * with one line in err, never exits.
 */
#ifndef ACME_JWS_H
#define ACME_JWS_H

#include <stddef.h>

#include <openssl/evp.h>

/* Base64url without padding into out (NUL-terminated): its length, or
 * -1 when it does not fit. */
int	b64url(const void *, size_t, char *out, size_t outlen);
/* A new P-256 key; NULL when OpenSSL fails. The caller frees it. */
EVP_PKEY *key_new(void);
/* The key in PEM file path, or NULL with err. */
EVP_PKEY *key_load(const char *path, char *err, size_t errlen);
/* The account key's RFC 7638 thumbprint (base64url of SHA-256 of its
 * JWK): 0, or -1. */
int	jwk_thumbprint(EVP_PKEY *, char *out, size_t outlen);
/*
 * A flattened JWS (application/jose+json) of payload ("" for
 * POST-as-GET) for url, with kid (the account URL) or, when kid is NULL,
 * the key's JWK. Returns a string the caller frees, or NULL.
 */
char	*jws_sign(EVP_PKEY *, const char *kid, const char *nonce,
	    const char *url, const char *payload);
/* A CSR for names[0..n) (the first also the subject's CN), signed with
 * key, as base64url DER in a string the caller frees; NULL with err. */
char	*csr_new(EVP_PKEY *key, char *const *names, size_t n, char *err,
	    size_t errlen);

#endif
