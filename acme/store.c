/* --acme-dir: files replaced by rename, and the placeholder certificate. */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme/jws.h"
#include "acme/store.h"

/* The placeholder's issuer: how store_renew_at knows it is not ACME's. */
#define PLACEHOLDER_CN	"relayd placeholder"

int
store_path(const char *dir, const char *name, char *out, size_t len)
{
	int	n = snprintf(out, len, "%s/%s", dir, name);

	return n > 0 && (size_t)n < len ? 0 : -1;
}

int
store_write(const char *dir, const char *name, const void *data, size_t len,
    char *err, size_t errlen)
{
	char	path[4096], tmp[4096];
	int	fd, ok;

	if (store_path(dir, name, path, sizeof(path)) == -1 ||
	    snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
	if (close(fd) == -1 || !ok || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
store_key(const char *dir, const char *name, EVP_PKEY *key, char *err,
    size_t errlen)
{
	BIO	*b;
	char	*pem;
	long	 len;
	int	 rc = -1;

	if ((b = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1 &&
	    (len = BIO_get_mem_data(b, &pem)) > 0)
		rc = store_write(dir, name, pem, (size_t)len, err, errlen);
	else
		snprintf(err, errlen, "cannot write a key");
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

/* A self-signed certificate for names[0] (others as SANs), a day long. */
static X509 *
placeholder(EVP_PKEY *key, char *const *names, size_t n)
{
	X509		*x;
	X509_NAME	*nm;
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext;
	char		 san[2048] = "";
	size_t		 i, off = 0;

	for (i = 0; i < n && off < sizeof(san); i++)
		off += (size_t)snprintf(san + off, sizeof(san) - off, "%sDNS:%s",
		    i > 0 ? "," : "", names[i]);
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1 || (nm = X509_NAME_new()) == NULL)
		goto fail;
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)PLACEHOLDER_CN, -1, -1, 0);
	X509_set_subject_name(x, nm);
	X509_set_issuer_name(x, nm);
	X509_NAME_free(nm);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (off < sizeof(san) && (ext = X509V3_EXT_conf_nid(NULL, &ctx,
	    NID_subject_alt_name, san)) != NULL) {
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(x, key, EVP_sha256()) > 0)
		return x;
fail:
	X509_free(x);
	return NULL;
}

static int
write_placeholder(const char *dir, char *const *names, size_t n, char *err,
    size_t errlen)
{
	EVP_PKEY	*key = key_new();
	X509		*x = NULL;
	BIO		*b = NULL;
	char		*pem;
	long		 len;
	int		 rc = -1;

	if (key == NULL || (x = placeholder(key, names, n)) == NULL ||
	    (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(b, x) != 1 ||
	    (len = BIO_get_mem_data(b, &pem)) <= 0)
		snprintf(err, errlen, "cannot make a placeholder certificate");
	else if (store_key(dir, STORE_KEY, key, err, errlen) == 0)
		rc = store_write(dir, STORE_CERT, pem, (size_t)len, err,
		    errlen);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* The unprivileged user replaces these files later. */
static int
give(const char *dir, const char *name, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	char	path[4096];

	if (store_path(dir, name, path, sizeof(path)) == -1 ||
	    (lchown(path, uid, gid) == -1 && errno != ENOENT)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
store_prepare(const char *dir, char *const *names, size_t n, uid_t uid,
    gid_t gid, int privileged, char *err, size_t errlen)
{
	char	path[4096];

	/* After the drop (a reload) the sandbox has no mkdir or chown: what
	 * the start made must be there. */
	if (!privileged) {
		if (store_path(dir, STORE_CERT, path, sizeof(path)) == 0 &&
		    access(path, R_OK) == 0)
			return 0;
		snprintf(err, errlen, "--acme-dir %s has no certificate yet: a "
		    "new ACME relay needs a restart", dir);
		return -1;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "--acme-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (store_path(dir, STORE_CERT, path, sizeof(path)) == -1) {
		snprintf(err, errlen, "--acme-dir %s: path too long", dir);
		return -1;
	}
	if (access(path, F_OK) == -1 && write_placeholder(dir, names, n, err,
	    errlen) == -1)
		return -1;
	if (uid == (uid_t)-1)
		return 0;
	if (lchown(dir, uid, gid) == -1) {
		snprintf(err, errlen, "--acme-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	return give(dir, STORE_CERT, uid, gid, err, errlen) == -1 ||
	    give(dir, STORE_KEY, uid, gid, err, errlen) == -1 ||
	    give(dir, STORE_ACCOUNT, uid, gid, err, errlen) == -1 ? -1 : 0;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm	tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

time_t
store_renew_at(const char *dir, char *const *names, size_t n)
{
	char		 path[4096];
	FILE		*fp;
	X509		*x = NULL;
	time_t		 from, until, at = 0;
	size_t		 i;

	if (store_path(dir, STORE_CERT, path, sizeof(path)) == -1 ||
	    (fp = fopen(path, "r")) == NULL)
		return 0;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL || X509_check_issued(x, x) == X509_V_OK)
		goto out;
	for (i = 0; i < n; i++)
		if (X509_check_host(x, names[i], 0, 0, NULL) != 1)
			goto out;
	from = asn1_time(X509_get0_notBefore(x));
	until = asn1_time(X509_get0_notAfter(x));
	if (from > 0 && until > from)
		at = from + (until - from) * 2 / 3;
out:
	X509_free(x);
	ERR_clear_error();
	return at;
}
