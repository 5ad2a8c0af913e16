/*
 * The ACME thread: sleeps until the certificate is due, gets a new one
 * (order.c), stores it and wakes the event loop through a pipe; the loop
 * reloads the relay's certificates. Failures are logged and retried after
 * a backoff that doubles from a minute up to a day, the old certificate
 * served meanwhile.
 */
#include <sys/eventfd.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/pem.h>

#include "acme/acme.h"
#include "acme/https.h"
#include "acme/jws.h"
#include "acme/order.h"
#include "acme/store.h"
#include "relay/config.h"
#include "relay/log.h"

#define BACKOFF_MIN	60
#define BACKOFF_MAX	86400
/* A long sleep wakes this often (seconds) to read the wall clock again,
 * which renewal times are on and which may be set meanwhile. */
#define SLEEP_STEP	60

struct acme {
	char		 *tag;		/* "relay web" for logs */
	char		 *dir, *server, *email;
	SSL_CTX		 *tls;		/* trusts --acme-ca, read as root */
	char		**names;
	size_t		  nnames;
	void		(*swap)(void *);
	void		 *arg;
	int		  pipe[2];	/* thread -> loop: "new certificate" */
	struct event	 *wake;
	pthread_t	  thread;
	int		  started;
	/* loop -> thread: "stop". An eventfd that only turns readable and
	 * stays so, and that lives until the thread is joined: the thread
	 * polls it beside its socket and in its sleeps, so a stop is seen
	 * at once, and nothing the thread closes is ever touched here. */
	int		  stop;
	pid_t		  owner;	/* the process that may join it */
};

/* --acme-name, or else its routes' names: pointers into conf in an
 * array the caller frees; NULL when out of memory or none. */
static char **
names_of(const struct relay_conf *conf, size_t *n)
{
	char	**v;
	size_t	  i;

	*n = conf->nacme_names > 0 ? conf->nacme_names : conf->nroutes;
	if (*n == 0 || (v = calloc(*n, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < *n; i++)
		v[i] = conf->nacme_names > 0 ? conf->acme_names[i] :
		    (char *)conf->routes[i].name;
	return v;
}

int
acme_prepare(const struct relay_conf *conf, uid_t uid, gid_t gid,
    int privileged, char *err, size_t errlen)
{
	char	**names;
	size_t	  n;
	int	  rc;

	if ((names = names_of(conf, &n)) == NULL) {
		snprintf(err, errlen, "ACME: no names (give --acme-name)");
		return -1;
	}
	rc = store_prepare(conf->acme_dir, names, n, uid, gid, privileged, err,
	    errlen);
	free(names);
	return rc;
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct acme	*a = arg;
	char		 buf[16];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	a->swap(a->arg);
}

static char *
dup_or_null(const char *s, int *failed)
{
	char	*d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = 1;
	return d;
}

struct acme *
acme_new(struct event_base *base, const struct relay_conf *conf,
    void (*swap)(void *), void *arg, char *err, size_t errlen)
{
	struct acme	*a = NULL;
	char		**names;
	size_t		  i, n;
	int		  failed = 0;

	if ((names = names_of(conf, &n)) == NULL ||
	    (a = calloc(1, sizeof(*a))) == NULL ||
	    (a->names = calloc(n, sizeof(*a->names))) == NULL) {
		free(a);
		free(names);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->pipe[0] = a->pipe[1] = -1;
	a->stop = -1;
	a->swap = swap;
	a->arg = arg;
	a->owner = getpid();
	for (i = 0; i < n; i++, a->nnames++)
		if ((a->names[i] = strdup(names[i])) == NULL)
			failed = 1;
	free(names);
	if (asprintf(&a->tag, "relay %s", conf->name[0] ? conf->name : "-") ==
	    -1)
		a->tag = NULL;
	a->dir = dup_or_null(conf->acme_dir, &failed);
	a->server = dup_or_null(conf->acme_server != NULL ? conf->acme_server :
	    ACME_SERVER_DEFAULT, &failed);
	a->email = dup_or_null(conf->acme_email, &failed);
	if (!failed && (a->tls = https_ctx(conf->acme_ca, err, errlen)) ==
	    NULL) {
		acme_free(a);
		return NULL;
	}
	if (failed || a->tag == NULL ||
	    pipe2(a->pipe, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    (a->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
	    (a->wake = event_new(base, a->pipe[0], EV_READ | EV_PERSIST,
	    on_wake, a)) == NULL || event_add(a->wake, NULL) == -1) {
		snprintf(err, errlen, "ACME: %s", failed ? "out of memory" :
		    strerror(errno));
		acme_free(a);
		return NULL;
	}
	return a;
}

/* The account key, made and stored the first time. */
static EVP_PKEY *
account_key(struct acme *a, char *err, size_t errlen)
{
	char		 path[4096];
	EVP_PKEY	*k;

	if (store_path(a->dir, STORE_ACCOUNT, path, sizeof(path)) == -1) {
		snprintf(err, errlen, "path too long");
		return NULL;
	}
	if (access(path, F_OK) == 0)
		return key_load(path, err, errlen);
	if ((k = key_new()) == NULL) {
		snprintf(err, errlen, "cannot make an account key");
		return NULL;
	}
	if (store_key(a->dir, STORE_ACCOUNT, k, err, errlen) == -1) {
		EVP_PKEY_free(k);
		return NULL;
	}
	log_info("%s: ACME account key made in %s", a->tag, path);
	return k;
}

/* One issuance, stored: 0, or -1 with err. */
static int
renew(struct acme *a, char *err, size_t errlen)
{
	struct order_params	 p = { a->server, a->email, a->names,
	    a->nnames, NULL, a->tls, a->stop };
	EVP_PKEY		*key = NULL;
	char			*chain = NULL;
	int			 rc = -1;

	if ((p.account = account_key(a, err, errlen)) == NULL)
		return -1;
	if (order_certificate(&p, &chain, &key, err, errlen) == 0 &&
	    strstr(chain, "-----BEGIN CERTIFICATE-----") == NULL)
		snprintf(err, errlen, "the certificate URL gave no PEM");
	/* Key, then chain: a SIGHUP between the two finds a pair that
	 * does not match and keeps the old one. */
	else if (chain != NULL &&
	    store_key(a->dir, STORE_KEY, key, err, errlen) == 0 &&
	    store_write(a->dir, STORE_CERT, chain, strlen(chain), err,
	    errlen) == 0)
		rc = 0;
	EVP_PKEY_free(p.account);
	EVP_PKEY_free(key);
	free(chain);
	return rc;
}

/* Sleeps until t (0: not at all) or a stop; returns whether stopping. */
static int
sleep_until(struct acme *a, time_t t)
{
	time_t	now;

	while ((now = time(NULL)) < t)
		if (https_stop_wait(a->stop, (t - now < SLEEP_STEP ?
		    (int)(t - now) : SLEEP_STEP) * 1000))
			return 1;
	return https_stop_wait(a->stop, 0);
}

static void *
run(void *arg)
{
	struct acme	*a = arg;
	char		 err[512];
	time_t		 at;
	int		 backoff = BACKOFF_MIN;
	sigset_t	 all;

	/* Signals are the event loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		at = store_renew_at(a->dir, a->names, a->nnames);
		if (at > time(NULL))
			log_info("%s: certificate renewed in %lld s", a->tag,
			    (long long)(at - time(NULL)));
		if (sleep_until(a, at))
			break;
		log_info("%s: asking %s for a certificate", a->tag, a->server);
		if (renew(a, err, sizeof(err)) == 0) {
			log_info("%s: certificate issued by ACME", a->tag);
			backoff = BACKOFF_MIN;
			(void)write(a->pipe[1], "c", 1);
			continue;
		}
		if (https_stop_wait(a->stop, 0))
			break;
		log_warnx("%s: ACME failed, trying again in %d s: %s", a->tag,
		    backoff, err);
		if (sleep_until(a, time(NULL) + backoff))
			break;
		backoff = backoff * 2 < BACKOFF_MAX ? backoff * 2 : BACKOFF_MAX;
	}
	return NULL;
}

int
acme_start(struct acme *a, char *err, size_t errlen)
{
	int	rc;

	if ((rc = pthread_create(&a->thread, NULL, run, a)) != 0) {
		snprintf(err, errlen, "ACME thread: %s", strerror(rc));
		return -1;
	}
	a->started = 1;
	return 0;
}

/* Has the thread stop, however far it is into an exchange, and waits
 * for it: a poll's wake-up, not a request's timeout. */
static void
stop_thread(struct acme *a)
{
	uint64_t	one = 1;

	if (write(a->stop, &one, sizeof(one)) != sizeof(one))
		log_warn("%s: telling the ACME thread to stop", a->tag);
	pthread_join(a->thread, NULL);
}

void
acme_free(struct acme *a)
{
	size_t	i;

	if (a == NULL)
		return;
	if (a->started && a->owner == getpid())
		stop_thread(a);
	if (a->wake != NULL)
		event_free(a->wake);
	if (a->pipe[0] != -1)
		close(a->pipe[0]);
	if (a->pipe[1] != -1)
		close(a->pipe[1]);
	if (a->stop != -1)
		close(a->stop);
	for (i = 0; i < a->nnames; i++)
		free(a->names[i]);
	free(a->names);
	free(a->tag);
	free(a->dir);
	free(a->server);
	free(a->email);
	SSL_CTX_free(a->tls);
	free(a);
}
