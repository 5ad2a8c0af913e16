/* A relay as a unit: relay.h behind the unit operations, and the ACME
 * client that keeps its certificate when it has one. */
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "acme/acme.h"
#include "daemon/daemon.h"
#include "daemon/unit_ops.h"
#include "relay/log.h"
#include "relay/relay.h"

/* The relays with ACME and their clients (the unit's object stays the
 * relay, which status and metrics read). */
struct relay_acme {
	LIST_ENTRY(relay_acme)	 entry;
	struct relay		*relay;
	struct acme		*acme;
};
static LIST_HEAD(, relay_acme)	acmes = LIST_HEAD_INITIALIZER(acmes);
/* Units start after the drop and the sandbox: relays made later (on
 * reload) can no longer make directories or change owners. */
static int	started;

static struct relay_acme *
acme_of(const struct relay *r)
{
	struct relay_acme	*ra;

	LIST_FOREACH(ra, &acmes, entry)
		if (ra->relay == r)
			return ra;
	return NULL;
}

/* Stops and frees r's ACME client, if it has one. */
static void
forget_acme(const struct relay *r)
{
	struct relay_acme	*ra = acme_of(r);

	if (ra == NULL)
		return;
	LIST_REMOVE(ra, entry);
	acme_free(ra->acme);
	free(ra);
}

static size_t
r_nconfs(const struct config *cfg)
{
	return cfg->nrelays;
}

static const void *
r_conf_at(const struct config *cfg, size_t i)
{
	return cfg->relays[i];
}

static void
r_forget_confs(struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nrelays; i++)
		relay_conf_free(cfg->relays[i]);
	cfg->nrelays = 0;
}

/* A new ACME certificate is served like one reloaded on SIGHUP. */
static void
swap_certificate(void *arg)
{
	relay_reload_tls(arg);
}

/* Before the drop: --acme-dir and a placeholder certificate for the
 * tls: listener until ACME's is there. */
static int
prepare_acme(const struct relay_conf *c, char *err, size_t errlen)
{
	const struct daemon	*d = the_daemon;
	int			 root = d != NULL && d->from_root;

	return acme_prepare(c, root ? d->user.uid : (uid_t)-1,
	    root ? d->user.gid : (gid_t)-1, !started, err, errlen);
}

static void *
r_new(struct event_base *base, const void *conf, char *err, size_t errlen,
    int *exitcode)
{
	const struct relay_conf	*c = conf;
	struct relay_acme	*ra = NULL;
	struct relay		*r;

	if (c->acme_dir != NULL && prepare_acme(c, err, errlen) == -1) {
		*exitcode = EX_CANTCREAT;
		return NULL;
	}
	if ((r = relay_new(base, conf, err, errlen, exitcode)) == NULL ||
	    c->acme_dir == NULL)
		return r;
	if ((ra = calloc(1, sizeof(*ra))) == NULL || (ra->acme = acme_new(base,
	    c, swap_certificate, r, err, errlen)) == NULL) {
		if (ra == NULL)
			snprintf(err, errlen, "out of memory");
		free(ra);
		relay_free(r);
		*exitcode = EX_OSERR;
		return NULL;
	}
	ra->relay = r;
	LIST_INSERT_HEAD(&acmes, ra, entry);
	return r;
}

static const void *
r_conf(const void *obj)
{
	return relay_conf(obj);
}

static int
r_conf_equal(const void *a, const void *b)
{
	return relay_conf_equal(a, b);
}

static const char *
r_conf_name(const void *conf)
{
	return ((const struct relay_conf *)conf)->name;
}

static void
r_start(void *obj)
{
	struct relay_acme	*ra = acme_of(obj);
	char			 err[256];

	started = 1;
	relay_start(obj);
	if (ra != NULL && acme_start(ra->acme, err, sizeof(err)) == -1)
		log_warnx("%s", err);
}

static void
r_stop_accepting(void *obj)
{
	relay_stop_accepting(obj);
}

/* Its listening sockets wait, parked, for the relay that replaces it;
 * its ACME client stops, so that its successor's is the only one writing
 * the directory (the certificate loaded stays in use meanwhile). */
static void
r_retire(void *obj)
{
	relay_park_listeners(obj);
	forget_acme(obj);
}

static void
r_reload_tls(void *obj)
{
	relay_reload_tls(obj);
}

static unsigned
r_active(const void *obj)
{
	return relay_active(obj);
}

static void
r_write_status(const void *obj, FILE *fp)
{
	relay_write_status(obj, fp);
}

static void
r_free(void *obj)
{
	forget_acme(obj);
	relay_free(obj);
}

static void
r_give_away(void *obj)
{
	forget_acme(obj);
	relay_free_inherited(obj);
}

const struct unit_ops	unit_relay_ops = {
	.name = "relay",
	.nconfs = r_nconfs,
	.conf_at = r_conf_at,
	.forget_confs = r_forget_confs,
	.new = r_new,
	.conf = r_conf,
	.conf_equal = r_conf_equal,
	.conf_name = r_conf_name,
	.start = r_start,
	.stop_accepting = r_stop_accepting,
	.retire = r_retire,
	.reload_tls = r_reload_tls,
	.active = r_active,
	.write_status = r_write_status,
	.free = r_free,
	.give_away = r_give_away,
};
