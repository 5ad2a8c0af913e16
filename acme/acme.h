/*
 * ACME certificates for a relay's tls: listeners: a thread of the relay
 * process keeps the certificate in --acme-dir valid (issued at start when
 * there is none, renewed at two thirds of its lifetime, retried with
 * backoff on failure) and, after each new one, has the event loop swap it
 * in through the path SIGHUP takes. Keys never leave the process.
 */
#ifndef ACME_ACME_H
#define ACME_ACME_H

#include <sys/types.h>
#include <stddef.h>

struct acme;
struct event_base;
struct relay_conf;

/* Let's Encrypt's production directory, --acme-server's default. */
#define ACME_SERVER_DEFAULT \
	"https://acme-v02.api.letsencrypt.org/directory"

/*
 * The certificate is for --acme-name, or else the names of the relay's
 * routes. Before the drop (uid -1: no change of owner): --acme-dir made and
 * given to uid, and a placeholder certificate until the first is issued.
 * After the drop (privileged 0: a reload), only checks that DIR has a
 * certificate. Returns 0, or -1 with err.
 */
int	acme_prepare(const struct relay_conf *, uid_t uid, gid_t gid,
	    int privileged, char *err, size_t errlen);
/*
 * A client for conf (copied what it needs); swap(arg) runs in base's loop
 * when a new certificate is in place. NULL with err.
 */
struct acme *acme_new(struct event_base *base, const struct relay_conf *,
	    void (*swap)(void *), void *arg, char *err, size_t errlen);
/* Starts its thread (after the drop and the sandbox): 0, or -1 with err. */
int	acme_start(struct acme *, char *err, size_t errlen);
/* Stops the thread, if started (an exchange in flight is cut), and frees
 * it; in a process that inherited it, frees it only. */
void	acme_free(struct acme *);

#endif
