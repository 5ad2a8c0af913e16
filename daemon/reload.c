/* SIGHUP: the new configuration replaces the old, unit by unit. */
#include "daemon/daemon.h"
#include "relay/log.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/systemd.h"
#include "relay/workers.h"

/* The loops run as they started: a reload cannot add --fork to them, and
 * a new count waits for a restart. */
static int
workers_reloadable(const struct daemon *d, const struct config *nc)
{
	unsigned	n = workers_count();
	/* The tunnels' process decides the same, without saying it twice. */
	int		speak = d->tunchan == NULL;

	if (n > 1 && workers_config_forks(nc)) {
		if (speak)
			log_warnx("--fork needs one event loop, and %u are "
			    "running: restart relayd with --workers 1", n);
		return 0;
	}
	if (speak && workers_wanted(nc) != n)
		log_warnx("workers = %u takes a restart; %u event loops keep "
		    "running", workers_wanted(nc), n);
	return 1;
}

/* Reads the file again into nc, keeping this process's half of it:
 * 0, or -1 when it is rejected (nc is then freed). */
static int
read_new_config(const struct daemon *d, struct config *nc)
{
	int	code;

	if (read_config(nc, d->argc, d->argv, &code) == -1 ||
	    !workers_reloadable(d, nc)) {
		log_warnx("reload rejected: the running configuration stays");
		config_free(nc);
		sysd_ready("reload rejected: the running configuration stays");
		return -1;
	}
	/* The relays are the relay process's, the tunnels the tunnels'. */
	if (d->tunchan != NULL)
		unit_forget_confs(nc, UNIT_RELAY);
	if (d->tunproc != NULL)
		unit_forget_confs(nc, UNIT_TUNNEL);
	return 0;
}

/* The running unit that the i-th of kind in nc would leave unchanged. */
static struct unit *
find_same(const struct unit_list *list, const struct config *nc,
    enum unit_kind kind, size_t i)
{
	struct unit	*u;

	TAILQ_FOREACH(u, list, entry)
		if (u->kind == kind && unit_runs(u, nc, i))
			return u;
	return NULL;
}

/* Moves the units that nc leaves unchanged to keep; returns how many. */
static size_t
keep_unchanged(struct daemon *d, const struct config *nc,
    struct unit_list *keep)
{
	struct unit	*u;
	size_t		 i, n = 0;
	int		 kind;

	for (kind = 0; kind < UNIT_NKINDS; kind++)
		for (i = 0; i < unit_nconfs(nc, kind); i++)
			if ((u = find_same(&d->units, nc, kind, i)) != NULL) {
				TAILQ_REMOVE(&d->units, u, entry);
				TAILQ_INSERT_TAIL(keep, u, entry);
				n++;
			}
	return n;
}

/* What nc no longer has stops accepting and parks its listening sockets
 * for start_new; its connections finish in their own time. */
static void
retire_unkept(struct daemon *d)
{
	struct unit	*u;

	while ((u = TAILQ_FIRST(&d->units)) != NULL) {
		TAILQ_REMOVE(&d->units, u, entry);
		unit_retire(u);
		TAILQ_INSERT_TAIL(&d->retired, u, entry);
	}
}

/* What is new binds now, with the CAP_NET_BIND_SERVICE kept; a unit that
 * fails is left out and the rest go on. */
static void
start_new(struct daemon *d, const struct config *nc, struct unit_list *keep)
{
	struct unit	*u;
	size_t		 i;
	char		 err[512];
	int		 kind, code;

	for (kind = 0; kind < UNIT_NKINDS; kind++)
		for (i = 0; i < unit_nconfs(nc, kind); i++) {
			if (find_same(keep, nc, kind, i) != NULL)
				continue;
			if ((u = unit_new(d->base, nc, kind, i, err,
			    sizeof(err), &code)) == NULL) {
				log_warnx("%s %s not started: %s",
				    unit_kind_name(kind),
				    unit_conf_name(nc, kind, i), err);
				continue;
			}
			unit_start(u);
			units_insert(keep, u);
		}
}

/* The process-wide settings of nc; nc becomes the running config. */
static void
apply_settings(struct daemon *d, struct config *nc)
{
	log_init(nc->log_level, nc->use_syslog || nc->daemonize);
	if (nc->no_sandbox != d->cfg.no_sandbox)
		log_warnx("reload: no-sandbox takes effect only at start");
	nc->no_sandbox = d->cfg.no_sandbox;
	pump_set_splice(!nc->no_splice);
	config_free(&d->cfg);
	d->cfg = *nc;
}

void
reload(struct daemon *d)
{
	struct unit_list	 keep = TAILQ_HEAD_INITIALIZER(keep);
	struct unit		*u;
	struct config		 nc;
	size_t			 nkept;

	/* Certificates are read again even when the relay stays as it is. */
	TAILQ_FOREACH(u, &d->units, entry)
		unit_reload_tls(u);
	if (d->cfg.file == NULL) {
		log_info("SIGHUP: nothing else to reload without a config file");
		return;
	}
	sysd_reloading();
	if (read_new_config(d, &nc) == -1)
		return;
	nkept = keep_unchanged(d, &nc, &keep);
	/*
	 * A changed relay's successor takes its sockets as they are, so that
	 * no socket closes and no client is refused or reset (listener.c
	 * says why a new bind cannot do that). Those on addresses nc drops
	 * close before anything binds: *:80 parked would keep 127.0.0.1:80
	 * from binding.
	 */
	retire_unkept(d);
	relay_close_parked(&nc);
	start_new(d, &nc, &keep);
	relay_close_parked(NULL);
	TAILQ_CONCAT(&d->units, &keep, entry);
	apply_settings(d, &nc);
	sysd_close_unused_sockets();
	log_info("reloaded: %zu relays, %zu tunnels (%zu unchanged)",
	    units_count(&d->units, UNIT_RELAY),
	    units_count(&d->units, UNIT_TUNNEL), nkept);
	reap_retired(d);
	d->ready_sent = 0;
	check_ready();
}
