/* ES256 JWS, JWK thumbprints and CSRs for ACME, with OpenSSL 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme/jws.h"

int
b64url(const void *data, size_t len, char *out, size_t outlen)
{
	static const char	 abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
	    "nopqrstuvwxyz0123456789-_";
	const unsigned char	*p = data;
	size_t			 i, n = 0;
	unsigned long		 v;

	if (outlen < (len + 2) / 3 * 4 + 1)
		return -1;
	for (i = 0; i < len; i += 3) {
		v = (unsigned long)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned long)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[n++] = abc[v >> 18 & 63];
		out[n++] = abc[v >> 12 & 63];
		if (i + 1 < len)
			out[n++] = abc[v >> 6 & 63];
		if (i + 2 < len)
			out[n++] = abc[v & 63];
	}
	out[n] = '\0';
	return (int)n;
}

EVP_PKEY *
key_new(void)
{
	return EVP_EC_gen("P-256");
}

EVP_PKEY *
key_load(const char *path, char *err, size_t errlen)
{
	EVP_PKEY	*k = NULL;
	FILE		*fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %m", path);
		return NULL;
	}
	k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (k == NULL || !EVP_PKEY_is_a(k, "EC")) {
		ERR_clear_error();
		EVP_PKEY_free(k);
		snprintf(err, errlen, "%s: not a P-256 private key", path);
		return NULL;
	}
	return k;
}

/* {"crv":"P-256","kty":"EC","x":"..","y":".."}: RFC 7638's member order
 * and no spaces, so that it hashes to the thumbprint as it stands. */
static int
jwk(EVP_PKEY *k, char *out, size_t outlen)
{
	BIGNUM		*x = NULL, *y = NULL;
	unsigned char	 bx[32], by[32];
	char		 sx[64], sy[64];
	int		 ok;

	ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
	    BN_bn2binpad(x, bx, 32) == 32 && BN_bn2binpad(y, by, 32) == 32 &&
	    b64url(bx, 32, sx, sizeof(sx)) > 0 &&
	    b64url(by, 32, sy, sizeof(sy)) > 0;
	BN_free(x);
	BN_free(y);
	ERR_clear_error();
	if (!ok)
		return -1;
	ok = snprintf(out, outlen, "{\"crv\":\"P-256\",\"kty\":\"EC\","
	    "\"x\":\"%s\",\"y\":\"%s\"}", sx, sy);
	return ok > 0 && (size_t)ok < outlen ? 0 : -1;
}

int
jwk_thumbprint(EVP_PKEY *k, char *out, size_t outlen)
{
	char		 j[256];
	unsigned char	 md[32];

	if (jwk(k, j, sizeof(j)) == -1 ||
	    EVP_Digest(j, strlen(j), md, NULL, EVP_sha256(), NULL) != 1)
		return -1;
	return b64url(md, sizeof(md), out, outlen) > 0 ? 0 : -1;
}

/* ES256 over msg: JWS wants r and s as 32 bytes each, not DER. */
static int
es256(EVP_PKEY *k, const char *msg, char *out, size_t outlen)
{
	EVP_MD_CTX		*md = EVP_MD_CTX_new();
	unsigned char		 der[80], raw[64];
	const unsigned char	*p = der;
	size_t			 len = sizeof(der);
	ECDSA_SIG		*sig = NULL;
	const BIGNUM		*r, *s;
	int			 ok;

	ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    k) == 1 && EVP_DigestSign(md, der, &len, (const unsigned char *)msg,
	    strlen(msg)) == 1 && (sig = d2i_ECDSA_SIG(NULL, &p,
	    (long)len)) != NULL;
	if (ok) {
		ECDSA_SIG_get0(sig, &r, &s);
		ok = BN_bn2binpad(r, raw, 32) == 32 &&
		    BN_bn2binpad(s, raw + 32, 32) == 32 &&
		    b64url(raw, 64, out, outlen) > 0;
	}
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok ? 0 : -1;
}

char *
jws_sign(EVP_PKEY *k, const char *kid, const char *nonce, const char *url,
    const char *payload)
{
	char	 key[300], sig[100], *prot = NULL, *p64 = NULL, *p1 = NULL;
	char	*body = NULL, *input = NULL;
	size_t	 n;

	if (kid == NULL && jwk(k, key, sizeof(key)) == -1)
		return NULL;
	if (asprintf(&prot, "{\"alg\":\"ES256\",%s%s%s,\"nonce\":\"%s\","
	    "\"url\":\"%s\"}", kid != NULL ? "\"kid\":\"" : "\"jwk\":",
	    kid != NULL ? kid : key, kid != NULL ? "\"" : "", nonce, url) ==
	    -1) {
		prot = NULL;
		goto out;
	}
	n = strlen(prot) * 4 / 3 + 4;
	if ((p1 = malloc(n)) == NULL || b64url(prot, strlen(prot), p1, n) < 0)
		goto out;
	n = strlen(payload) * 4 / 3 + 4;
	if ((p64 = malloc(n)) == NULL ||
	    b64url(payload, strlen(payload), p64, n) < 0)
		goto out;
	if (asprintf(&input, "%s.%s", p1, p64) == -1) {
		input = NULL;
		goto out;
	}
	if (es256(k, input, sig, sizeof(sig)) == -1)
		goto out;
	if (asprintf(&body, "{\"protected\":\"%s\",\"payload\":\"%s\","
	    "\"signature\":\"%s\"}", p1, p64, sig) == -1)
		body = NULL;
out:
	free(prot);
	free(p1);
	free(p64);
	free(input);
	return body;
}

/* subjectAltName: DNS:a,DNS:b */
static int
add_san(X509_REQ *req, char *const *names, size_t n)
{
	STACK_OF(X509_EXTENSION)	*exts = NULL;
	GENERAL_NAMES			*gens;
	GENERAL_NAME			*g;
	ASN1_IA5STRING			*s;
	size_t				 i;
	int				 ok = 0;

	if ((gens = GENERAL_NAMES_new()) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if ((g = GENERAL_NAME_new()) == NULL ||
		    (s = ASN1_IA5STRING_new()) == NULL) {
			GENERAL_NAME_free(g);
			goto out;
		}
		if (ASN1_STRING_set(s, names[i], (int)strlen(names[i])) != 1) {
			ASN1_IA5STRING_free(s);
			GENERAL_NAME_free(g);
			goto out;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		if (sk_GENERAL_NAME_push(gens, g) == 0) {
			GENERAL_NAME_free(g);
			goto out;
		}
	}
	ok = X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, 0) == 1 &&
	    X509_REQ_add_extensions(req, exts) == 1;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

char *
csr_new(EVP_PKEY *key, char *const *names, size_t n, char *err,
    size_t errlen)
{
	X509_REQ	*req;
	X509_NAME	*subj;
	unsigned char	*der = NULL;
	char		*out = NULL;
	int		 len = -1;
	size_t		 outlen;

	if ((req = X509_REQ_new()) != NULL &&
	    (subj = X509_REQ_get_subject_name(req)) != NULL &&
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
	    (const unsigned char *)names[0], -1, -1, 0) == 1 &&
	    X509_REQ_set_pubkey(req, key) == 1 &&
	    add_san(req, names, n) == 0 &&
	    X509_REQ_sign(req, key, EVP_sha256()) > 0)
		len = i2d_X509_REQ(req, &der);
	X509_REQ_free(req);
	if (len > 0) {
		outlen = (size_t)len * 4 / 3 + 4;
		if ((out = malloc(outlen)) != NULL &&
		    b64url(der, (size_t)len, out, outlen) < 0) {
			free(out);
			out = NULL;
		}
	}
	OPENSSL_free(der);
	ERR_clear_error();
	if (out == NULL)
		snprintf(err, errlen, "cannot make a certificate request");
	return out;
}
