/*
 * known_hosts handling. The file is read once, before privileges are
 * dropped, and its lines are fed to a libssh2 known-hosts collection for
 * each new session, so reconnects never need to read it again.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "relay/log.h"
#include "tunnel/hostkey.h"

struct hostkeys {
	char	*path;
	int	 accept_new;
	int	 append_fd;	/* opened while privileged, for new keys */
	char	**lines;
	size_t	 nlines;
	int	 rsa_only;	/* RSA is all the last hostkeys_prefer found */
};

/*
 * RSA keys sign with SHA-2 (RFC 8332) from libssh2 1.11 on; OpenSSH 8.8
 * and later offer nothing else for them. 1.10 knows only ssh-rsa (SHA-1).
 */
#if LIBSSH2_VERSION_NUM >= 0x010b00
#define RSA_METHODS	"rsa-sha2-512,rsa-sha2-256,ssh-rsa"
#else
#define RSA_METHODS	"ssh-rsa"
#endif

/* The key types libssh2 can check, in the order we prefer them. */
static const struct keytype {
	int		 hostkey_type;	/* LIBSSH2_HOSTKEY_TYPE_* */
	int		 knownhost_type;/* LIBSSH2_KNOWNHOST_KEY_* */
	const char	*name;		/* in known_hosts */
	const char	*methods;	/* host key algorithms that show it */
} keytypes[] = {
	{ LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519,
	  "ssh-ed25519", "ssh-ed25519" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
	  "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
	  "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
	  "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521" },
	{ LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa",
	  RSA_METHODS },
};
#define NKEYTYPES (sizeof(keytypes) / sizeof(keytypes[0]))

static int
add_line(struct hostkeys *hk, const char *line, size_t len)
{
	char	**n;

	if ((n = reallocarray(hk->lines, hk->nlines + 1, sizeof(*n))) == NULL)
		return -1;
	hk->lines = n;
	if ((n[hk->nlines] = strndup(line, len)) == NULL)
		return -1;
	hk->nlines++;
	return 0;
}

static int
base64_ok(const char *s, size_t n)
{
	size_t	i;

	if (n == 0 || n % 4 != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' &&
		    s[i] != '/' && !(s[i] == '=' && i >= n - 2))
			return 0;
	return s[n - 2] != '=' || s[n - 1] == '=';
}

/*
 * A hashed name, "|1|SALT|HASH", must have base64 fields and a SHA-1
 * sized hash: libssh2 1.10 leaks memory reading one whose fields are not
 * base64, and on every lookup against one whose hash has another size,
 * which would add up over reconnects. Other lines are its to judge.
 */
static int
hashed_ok(const char *line, size_t len)
{
	const char	*end = line + len, *salt, *bar, *sp;

	/* libssh2 skips blanks before the name and before a marker. */
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	if (line < end && *line == '@') {	/* @cert-authority, @revoked */
		while (line < end && *line != ' ' && *line != '\t')
			line++;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
	}
	if ((size_t)(end - line) < 3 || memcmp(line, "|1|", 3) != 0)
		return 1;
	salt = line + 3;
	for (sp = salt; sp < end && *sp != ' ' && *sp != '\t'; sp++)
		;
	if ((bar = memchr(salt, '|', (size_t)(sp - salt))) == NULL)
		return 0;
	/* 20 bytes are 28 base64 characters, the last one '='. */
	return base64_ok(salt, (size_t)(bar - salt)) && sp - bar - 1 == 28 &&
	    base64_ok(bar + 1, 28) && bar[28] == '=' && bar[27] != '=';
}

struct hostkeys *
hostkeys_load(const char *path, int accept_new, char *err, size_t errlen)
{
	struct hostkeys	*hk;
	FILE		*fp;
	char		*line = NULL;
	size_t		 cap = 0, lineno = 0;
	ssize_t		 n;

	if ((hk = calloc(1, sizeof(*hk))) == NULL ||
	    (hk->path = strdup(path)) == NULL) {
		free(hk);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	hk->accept_new = accept_new;
	/* Opened now: after the privilege drop the file may be out of reach. */
	hk->append_fd = !accept_new ? -1 : open(path, O_WRONLY | O_APPEND |
	    O_CREAT | O_CLOEXEC, 0600);
	if (accept_new && hk->append_fd == -1) {
		snprintf(err, errlen, "--accept-new-host-key: cannot open %s "
		    "for writing: %s", path, strerror(errno));
		hostkeys_free(hk);
		return NULL;
	}
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return hk;
		snprintf(err, errlen, "cannot read known hosts %s: %s", path,
		    strerror(errno));
		hostkeys_free(hk);
		return NULL;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if (!hashed_ok(line, (size_t)n)) {
			log_warnx("%s:%zu: malformed hashed host name, line "
			    "ignored", path, lineno);
			continue;
		}
		if (add_line(hk, line, (size_t)n)) {
			snprintf(err, errlen, "out of memory");
			free(line);
			fclose(fp);
			hostkeys_free(hk);
			return NULL;
		}
	}
	free(line);
	fclose(fp);
	return hk;
}

/* A libssh2 collection of every line; lines it cannot read are skipped. */
static LIBSSH2_KNOWNHOSTS *
collection(struct hostkeys *hk, LIBSSH2_SESSION *s)
{
	LIBSSH2_KNOWNHOSTS	*kh;
	size_t			 i;

	if ((kh = libssh2_knownhost_init(s)) == NULL)
		return NULL;
	for (i = 0; i < hk->nlines; i++)
		(void)libssh2_knownhost_readline(kh, hk->lines[i],
		    strlen(hk->lines[i]), LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	return kh;
}

static const struct keytype *
keytype_of(int hostkey_type)
{
	size_t	i;

	for (i = 0; i < NKEYTYPES; i++)
		if (keytypes[i].hostkey_type == hostkey_type)
			return &keytypes[i];
	return NULL;
}

void
hostkeys_prefer(struct hostkeys *hk, LIBSSH2_SESSION *s, const char *host,
    int port)
{
	LIBSSH2_KNOWNHOSTS	*kh = collection(hk, s);
	const char		 probe[] = "not a key";
	char			 known[256] = "", rest[256] = "";
	char			*to;
	size_t			 i, len;
	int			 rc, rsa = 0, other = 0;

	/* Probing with a bogus key: MISMATCH means an entry of that type
	 * exists for the host, NOTFOUND that none does. */
	for (i = 0; i < NKEYTYPES; i++) {
		rc = kh == NULL ? LIBSSH2_KNOWNHOST_CHECK_NOTFOUND :
		    libssh2_knownhost_checkp(kh, host, port, probe,
		    sizeof(probe), LIBSSH2_KNOWNHOST_TYPE_PLAIN |
		    LIBSSH2_KNOWNHOST_KEYENC_RAW | keytypes[i].knownhost_type,
		    NULL);
		to = rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH ? known : rest;
		snprintf(to + strlen(to), sizeof(known) - strlen(to), "%s%s",
		    *to ? "," : "", keytypes[i].methods);
		if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
			*(keytypes[i].hostkey_type == LIBSSH2_HOSTKEY_TYPE_RSA ?
			    &rsa : &other) = 1;
	}
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	hk->rsa_only = rsa && !other;
	/* Both lists name a few methods of the table above: they fit. */
	len = strlen(known);
	if (snprintf(known + len, sizeof(known) - len, "%s%s",
	    *known && *rest ? "," : "", rest) >= (int)(sizeof(known) - len))
		log_debug("host key preference cut short");
	if (libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, known) != 0)
		log_debug("host key preference \"%s\" not accepted", known);
}

const char *
hostkeys_kex_hint(const struct hostkeys *hk)
{
#if LIBSSH2_VERSION_NUM < 0x010b00
	if (hk->rsa_only)
		return "; the only key known for the host is RSA, which "
		    "libssh2 " LIBSSH2_VERSION " checks only as ssh-rsa (SHA-1), "
		    "no longer offered by OpenSSH 8.8 and later: add the "
		    "server's ed25519 or ecdsa key to known hosts";
#endif
	return "";
}

void
hostkeys_fingerprint(LIBSSH2_SESSION *s, char *buf, size_t len)
{
	const unsigned char	*h;
	unsigned char		 b64[64];
	int			 n;

	if ((h = (const unsigned char *)libssh2_hostkey_hash(s,
	    LIBSSH2_HOSTKEY_HASH_SHA256)) == NULL) {
		snprintf(buf, len, "SHA256:?");
		return;
	}
	n = EVP_EncodeBlock(b64, h, 32);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(buf, len, "SHA256:%.*s", n, b64);
}

/* Records a newly accepted key in memory and in the file (0), or in
 * memory only (-1, errno set). */
static int
remember(struct hostkeys *hk, LIBSSH2_KNOWNHOSTS *kh, const char *host,
    int port, const char *key, size_t keylen, const struct keytype *kt)
{
	struct libssh2_knownhost	*node;
	char				 name[300], line[4096];
	size_t				 len;

	if (port == 22)
		snprintf(name, sizeof(name), "%s", host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", host, port);
	if (libssh2_knownhost_addc(kh, name, NULL, key, keylen, NULL, 0,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    kt->knownhost_type, &node) != 0 ||
	    libssh2_knownhost_writeline(kh, node, line, sizeof(line), &len,
	    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
		errno = EINVAL;
		return -1;
	}
	while (len > 0 && line[len - 1] == '\n')
		len--;
	if (add_line(hk, line, len) == -1)
		return -1;
	line[len++] = '\n';
	if (write(hk->append_fd, line, len) != (ssize_t)len)
		return -1;
	return 0;
}

int
hostkeys_verify(struct hostkeys *hk, LIBSSH2_SESSION *s, const char *host,
    int port, const char *logname, char *err, size_t errlen)
{
	LIBSSH2_KNOWNHOSTS	*kh;
	const struct keytype	*kt;
	const char		*key;
	char			 fp[64], name[300];
	size_t			 len;
	int			 type, rc;

	snprintf(name, sizeof(name), port == 22 ? "%s" : "[%s]:%d", host,
	    port);
	if ((key = libssh2_session_hostkey(s, &len, &type)) == NULL ||
	    (kt = keytype_of(type)) == NULL) {
		snprintf(err, errlen, "host key of %s: unsupported type", name);
		return -1;
	}
	hostkeys_fingerprint(s, fp, sizeof(fp));
	if ((kh = collection(hk, s)) == NULL) {
		snprintf(err, errlen, "cannot check host keys: out of memory");
		return -1;
	}
	rc = libssh2_knownhost_checkp(kh, host, port, key, len,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    kt->knownhost_type, NULL);
	if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		log_debug("tunnel %s: host key of %s is known (%s %s)", logname,
		    name, kt->name, fp);
	} else if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
		snprintf(err, errlen, "host key of %s has CHANGED (%s %s); "
		    "refusing: the connection may be intercepted; if the "
		    "server's key was replaced, remove its old line from %s",
		    name, kt->name, fp, hk->path);
	} else if (hk->accept_new) {
		if (remember(hk, kh, host, port, key, len, kt) == 0)
			log_info("tunnel %s: host key of %s was unknown, now "
			    "recorded in %s (%s %s)", logname, name, hk->path,
			    kt->name, fp);
		else
			log_warn("tunnel %s: host key of %s was unknown, "
			    "accepted (%s %s) but not recorded in %s", logname,
			    name, kt->name, fp, hk->path);
		rc = LIBSSH2_KNOWNHOST_CHECK_MATCH;
	} else {
		snprintf(err, errlen, "host key of %s is unknown (%s %s); "
		    "refusing: check the fingerprint and add the key to %s, or "
		    "run once with --accept-new-host-key", name, kt->name, fp,
		    hk->path);
	}
	libssh2_knownhost_free(kh);
	return rc == LIBSSH2_KNOWNHOST_CHECK_MATCH ? 0 : -1;
}

void
hostkeys_free(struct hostkeys *hk)
{
	size_t	i;

	if (hk == NULL)
		return;
	if (hk->append_fd != -1)
		close(hk->append_fd);
	for (i = 0; i < hk->nlines; i++)
		free(hk->lines[i]);
	free(hk->lines);
	free(hk->path);
	free(hk);
}
