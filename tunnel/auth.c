/*
 * Public-key authentication. Keys are tried from memory, in order; the
 * agent (only when no --identity is given) comes before the default files,
 * as with ssh. The agent protocol in libssh2 blocks on its unix socket,
 * which is local and answers at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "relay/log.h"
#include "tunnel/auth.h"
#include "tunnel/sshcall.h"

#define MAX_KEYS	4
#define MAX_KEY_SIZE	(64 * 1024)

struct key {
	char	*path;
	char	*data;
	size_t	 len;
	int	 rsa;
};

struct auth {
	struct key	 keys[MAX_KEYS];
	size_t		 nkeys;
	char		*passphrase;
	int		 use_agent;
	int		 explicit;	/* --identity: its failures are fatal */
	int		 borrowed;	/* keys and passphrase are another's */
	/* the attempt in progress */
	size_t		 next;		/* next key; nkeys = done */
	LIBSSH2_AGENT	*agent;
	struct libssh2_agent_publickey *agent_id;
	int		 agent_done;
	char		 method[300];
	char		 rsa_refused[300];	/* an RSA key the server refused */
};

static int
read_file(const char *path, char **data, size_t *len, char *err,
    size_t errlen)
{
	struct stat	st;
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (st.st_size <= 0 || st.st_size > MAX_KEY_SIZE ||
	    (*data = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    st.st_size <= 0 ? "empty file" : "too large");
		close(fd);
		return -1;
	}
	n = read(fd, *data, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		snprintf(err, errlen, "cannot read %s: short read", path);
		free(*data);
		return -1;
	}
	(*data)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

/* Whether an SSH public key blob (string type, ...) is an RSA key. */
static int
blob_is_rsa(const unsigned char *b, size_t len)
{
	return len >= 11 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 7 &&
	    memcmp(b + 4, "ssh-rsa", 7) == 0;
}

/* Steps over an SSH string (uint32 length, bytes); -1 if it overruns. */
static int
skip_string(const unsigned char **p, const unsigned char *end)
{
	size_t	n;

	if (end - *p < 4)
		return -1;
	n = (size_t)(*p)[0] << 24 | (size_t)(*p)[1] << 16 |
	    (size_t)(*p)[2] << 8 | (*p)[3];
	if ((size_t)(end - *p - 4) < n)
		return -1;
	*p += 4 + n;
	return 0;
}

/*
 * Whether a private key file holds an RSA key: a PEM "RSA PRIVATE KEY",
 * or an OpenSSH one whose public key (never encrypted, after the cipher,
 * KDF, KDF options and key count) says ssh-rsa.
 */
static int
key_is_rsa(const char *data)
{
	static const char	pem[] = "-----BEGIN RSA PRIVATE KEY-----";
	static const char	openssh[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
	static const char	magic[] = "openssh-key-v1";	/* and its NUL */
	unsigned char		raw[192];
	const unsigned char	*p = raw, *end;
	char			b64[256];
	size_t			n = 0;
	int			len;

	if (strncmp(data, pem, sizeof(pem) - 1) == 0)
		return 1;
	if (strncmp(data, openssh, sizeof(openssh) - 1) != 0)
		return 0;
	/* The start of the base64 body is enough. */
	for (data += sizeof(openssh) - 1; *data != '\0' && *data != '-' &&
	    n < sizeof(b64); data++)
		if (*data != '\n' && *data != '\r' && *data != ' ')
			b64[n++] = *data;
	n -= n % 4;
	if ((len = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)n)) <
	    (int)sizeof(magic))
		return 0;
	end = raw + len;
	if (memcmp(p, magic, sizeof(magic)) != 0)
		return 0;
	p += sizeof(magic);
	if (skip_string(&p, end) == -1 || skip_string(&p, end) == -1 ||
	    skip_string(&p, end) == -1 || end - p < 8)
		return 0;
	p += 8;		/* the key count, the public key's length */
	return blob_is_rsa(p, (size_t)(end - p));
}

static int
add_key(struct auth *a, const char *path, char *err, size_t errlen)
{
	struct key	*k = &a->keys[a->nkeys];

	if (read_file(path, &k->data, &k->len, err, errlen) == -1)
		return -1;
	if ((k->path = strdup(path)) == NULL) {
		free(k->data);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	k->rsa = key_is_rsa(k->data);
	a->nkeys++;
	return 0;
}

static int
load_passphrase(struct auth *a, const char *path, char *err, size_t errlen)
{
	size_t	len;

	if (read_file(path, &a->passphrase, &len, err, errlen) == -1)
		return -1;
	/* The first line only, as a human would have typed it. */
	a->passphrase[strcspn(a->passphrase, "\r\n")] = '\0';
	return 0;
}

static void
add_default_keys(struct auth *a)
{
	static const char *const names[] = { "id_ed25519", "id_ecdsa",
	    "id_rsa" };
	const char	*home = getenv("HOME");
	struct passwd	*pw;
	char		 path[4096], err[256];
	size_t		 i;

	if (home == NULL && (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	if (home == NULL)
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/.ssh/%s", home, names[i]);
		if (access(path, R_OK) == 0 && add_key(a, path, err,
		    sizeof(err)) == -1)
			log_warnx("%s", err);
	}
}

struct auth *
auth_load(const struct tunnel_conf *tc, char *err, size_t errlen,
    int *exitcode)
{
	struct auth	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	*exitcode = EX_NOINPUT;
	if (tc->passphrase_file != NULL &&
	    load_passphrase(a, tc->passphrase_file, err, errlen) == -1)
		goto fail;
	if (tc->identity != NULL) {
		if (add_key(a, tc->identity, err, errlen) == -1)
			goto fail;
		a->explicit = 1;
		return a;
	}
	a->use_agent = getenv("SSH_AUTH_SOCK") != NULL;
	add_default_keys(a);
	if (!a->use_agent && a->nkeys == 0) {
		snprintf(err, errlen, "no key to authenticate with: give "
		    "--identity FILE, run ssh-agent, or create ~/.ssh/id_ed25519");
		goto fail;
	}
	return a;
fail:
	auth_free(a);
	return NULL;
}

static void	agent_close(struct auth *);

struct auth *
auth_share(const struct auth *from)
{
	struct auth	*a;

	if ((a = malloc(sizeof(*a))) == NULL)
		return NULL;
	*a = *from;
	a->borrowed = 1;
	a->agent = NULL;
	auth_begin(a);
	return a;
}

void
auth_begin(struct auth *a)
{
	agent_close(a);
	a->next = 0;
	a->agent_done = !a->use_agent;
	a->agent_id = NULL;
	a->method[0] = '\0';
	a->rsa_refused[0] = '\0';
}

static void
agent_close(struct auth *a)
{
	if (a->agent == NULL)
		return;
	libssh2_agent_disconnect(a->agent);
	libssh2_agent_free(a->agent);
	a->agent = NULL;
}

/* Tries the agent's identities in turn. */
static enum auth_result
agent_step(struct auth *a, LIBSSH2_SESSION *s, const char *user)
{
	int	rc;

	if (a->agent == NULL) {
		if ((a->agent = libssh2_agent_init(s)) == NULL ||
		    libssh2_agent_connect(a->agent) != 0 ||
		    libssh2_agent_list_identities(a->agent) != 0) {
			log_debug("ssh-agent not usable");
			agent_close(a);
			a->agent_done = 1;
			return AUTH_REFUSED;
		}
		if (libssh2_agent_get_identity(a->agent, &a->agent_id,
		    NULL) != 0) {
			agent_close(a);
			a->agent_done = 1;
			return AUTH_REFUSED;
		}
	}
	rc = libssh2_agent_userauth(a->agent, user, a->agent_id);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return AUTH_AGAIN;
	if (rc == 0) {
		snprintf(a->method, sizeof(a->method), "agent key %s",
		    a->agent_id->comment ? a->agent_id->comment : "");
		agent_close(a);
		return AUTH_OK;
	}
	if (blob_is_rsa(a->agent_id->blob, a->agent_id->blob_len))
		snprintf(a->rsa_refused, sizeof(a->rsa_refused),
		    "agent key %s", a->agent_id->comment ?
		    a->agent_id->comment : "");
	if (libssh2_agent_get_identity(a->agent, &a->agent_id,
	    a->agent_id) != 0) {
		agent_close(a);
		a->agent_done = 1;
	}
	return AUTH_REFUSED;
}

/*
 * libssh2 before 1.11 signs with an RSA key only as ssh-rsa (SHA-1),
 * which OpenSSH 8.8 and later refuse by default: a refused RSA key is
 * explained, on the line that says authentication failed. What signs is
 * the library loaded, not the one relayd was built with.
 */
static void
rsa_hint(const struct auth *a, LIBSSH2_SESSION *s, char *err, size_t errlen)
{
	const char	*banner, *server = "?";
	size_t		 used = strlen(err);

	if (a->rsa_refused[0] == '\0' || libssh2_version(0x010b00) != NULL)
		return;
	/* "SSH-2.0-OpenSSH_9.2p1 Debian-2": the software's name and version. */
	if ((banner = libssh2_session_banner_get(s)) != NULL &&
	    strncmp(banner, "SSH-2.0-", 8) == 0 && banner[8] != '\0')
		server = banner + 8;
	snprintf(err + used, errlen - used, "; %s is RSA, which libssh2 %s "
	    "signs only with ssh-rsa (SHA-1), refused by default since OpenSSH "
	    "8.8 (the server is %.*s): use an ed25519 or ecdsa key",
	    a->rsa_refused, libssh2_version(0), (int)strcspn(server, " \r\n"),
	    server);
}

enum auth_result
auth_step(struct auth *a, LIBSSH2_SESSION *s, const char *user, char *err,
    size_t errlen)
{
	struct key	*k;
	char		 msg[256];
	int		 rc;

	while (!a->agent_done) {
		enum auth_result r = agent_step(a, s, user);

		if (r != AUTH_REFUSED)
			return r;
	}
	while (a->next < a->nkeys) {
		k = &a->keys[a->next];
		rc = libssh2_userauth_publickey_frommemory(s, user,
		    strlen(user), NULL, 0, k->data, k->len, a->passphrase);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return AUTH_AGAIN;
		if (rc == 0) {
			snprintf(a->method, sizeof(a->method), "key %s",
			    k->path);
			return AUTH_OK;
		}
		a->next++;
		if ((rc == LIBSSH2_ERROR_FILE ||
		    rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) && !a->explicit) {
			log_debug("skipping key %s: cannot decrypt it", k->path);
			continue;
		}
		if (rc == LIBSSH2_ERROR_FILE ||
		    rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
			snprintf(err, errlen, "cannot use key %s: %s", k->path,
			    a->passphrase ? "wrong passphrase or unsupported "
			    "key format" : "it needs a passphrase "
			    "(--identity-passphrase-file) or its format is "
			    "unsupported (use ed25519 or ecdsa)");
			return AUTH_BAD_KEY;
		}
		if (rc != LIBSSH2_ERROR_AUTHENTICATION_FAILED &&
		    rc != LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
			snprintf(err, errlen, "authentication failed: %s",
			    ssh_error(s, msg, sizeof(msg)));
			return AUTH_ERROR;
		}
		if (k->rsa)
			snprintf(a->rsa_refused, sizeof(a->rsa_refused),
			    "key %s", k->path);
	}
	snprintf(err, errlen, "server refused every key of user %s", user);
	rsa_hint(a, s, err, errlen);
	return AUTH_REFUSED;
}

void
auth_end(struct auth *a)
{
	agent_close(a);
}

const char *
auth_method(const struct auth *a)
{
	return a->method;
}

void
auth_free(struct auth *a)
{
	size_t	i;

	if (a == NULL)
		return;
	agent_close(a);
	for (i = 0; i < a->nkeys && !a->borrowed; i++) {
		explicit_bzero(a->keys[i].data, a->keys[i].len);
		free(a->keys[i].data);
		free(a->keys[i].path);
	}
	if (a->passphrase != NULL && !a->borrowed) {
		explicit_bzero(a->passphrase, strlen(a->passphrase));
		free(a->passphrase);
	}
	free(a);
}
