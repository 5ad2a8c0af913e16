/*
 * What ACME leaves in --acme-dir: the account key, the certificate chain
 * served and its key. Files are replaced whole (written aside, then
 * renamed), so a reader sees the old file or the new one, never half.
 */
#ifndef ACME_STORE_H
#define ACME_STORE_H

#include <sys/types.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#define STORE_ACCOUNT	"account.key"
#define STORE_CERT	"cert.pem"
#define STORE_KEY	"key.pem"

/* dir/name into out: 0, or -1 when it does not fit. */
int	store_path(const char *dir, const char *name, char *out, size_t len);
/* Replaces dir/name with len bytes of data, mode 0600: 0, or -1 with err. */
int	store_write(const char *dir, const char *name, const void *data,
	    size_t len, char *err, size_t errlen);
/* Writes key as PEM (private) to dir/name: 0, or -1 with err. */
int	store_key(const char *dir, const char *name, EVP_PKEY *key,
	    char *err, size_t errlen);
/*
 * As root before the drop: makes dir (0700) owned by uid:gid (unless
 * uid is -1), and when it has no certificate yet, a self-signed one for
 * names[0..n) valid for a day, so the tls: listener has something to
 * serve until ACME's is there. Unless privileged (a reload after the
 * drop), only checks that a certificate is there. Returns 0, or -1 with
 * err.
 */
int	store_prepare(const char *dir, char *const *names, size_t n,
	    uid_t uid, gid_t gid, int privileged, char *err, size_t errlen);
/*
 * When the certificate in dir is due to be renewed (two thirds of its
 * lifetime): 0 when it needs one now (missing, ours from store_prepare,
 * not for every name), else that time.
 */
time_t	store_renew_at(const char *dir, char *const *names, size_t n);

#endif
