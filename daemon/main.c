/*
 * relayd: binds its listeners, gives up root but CAP_NET_BIND_SERVICE, and
 * relays connections in one or more event loops (--workers) and keeps SSH
 * tunnels up. The main thread's loop owns tunnels, signals, the control
 * socket, reloads and systemd; relays accept in every loop.
 */
#include <signal.h>
#include <sysexits.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "relay/log.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/systemd.h"
#include "relay/workers.h"
#include "tunnel/tunnel.h"

/* The configuration, and what it asks for that ends here. */
static void
configure(struct daemon *d, int argc, char **argv)
{
	keep_std_fds_open();
	signal(SIGPIPE, SIG_IGN);
	d->argc = argc;
	d->argv = argv;
	load_config(&d->cfg, argc, argv);
	if (d->cfg.json && !d->cfg.status)
		fatalx(EX_USAGE, "--json goes with --status");
	if (d->cfg.status)
		print_status(&d->cfg);
	if (d->cfg.check)
		check_only(&d->cfg);
	log_init(d->cfg.log_level, d->cfg.use_syslog || d->cfg.daemonize);
	pump_set_splice(!d->cfg.no_splice);
	d->from_root = lookup_user(&d->cfg, &d->user);
}

/* While privileged: binds, detaches, and splits the tunnels off. */
static void
open_privileged(struct daemon *d, unsigned nloops)
{
	char	err[256];

	if ((d->base = workers_init(nloops, err, sizeof(err))) == NULL)
		fatalx(EX_OSERR, "%s", err);
	open_units(d);
	open_control(d);
	open_metrics(d);
	sysd_close_unused_sockets();
	if (d->cfg.daemonize && (daemonize(), workers_reinit() == -1))
		fatalx(EX_OSERR, "event_reinit failed");
	if (d->cfg.pidfile != NULL)
		write_pidfile(d->cfg.pidfile);
	split_tunnels(d);
}

/* In the relay process: the drop, then the worker loops' threads, which
 * inherit the dropped privileges and the sandbox. */
static void
become_relays(struct daemon *d, unsigned nloops)
{
	char	err[256];

	drop_privileges(d, 1);
	enter_sandbox(&d->cfg);
	if (workers_run(err, sizeof(err)) == -1)
		fatalx(EX_OSERR, "%s", err);
	if (nloops > 1)
		log_info("accepting in %u event loops", nloops);
}

/* Hooks, signals, and every unit started. */
static void
start_units(struct daemon *d)
{
	struct unit	*u;

	relay_set_forked_hook(as_fork_child);
	tunnel_set_up_hook(check_ready);
	watch_signals(d);
	TAILQ_FOREACH(u, &d->units, entry)
		unit_start(u);
	/* A restarted worker catches up with reloads its keeper missed. */
	if (d->tunchan != NULL && d->starts > 1 && d->cfg.file != NULL) {
		log_info("tunnels restarted: reading %s again", d->cfg.file);
		reload(d);
	}
	start_watchdog(d);
	if (d->tunchan == NULL)
		log_info("ready");
	check_ready();
}

int
main(int argc, char **argv)
{
	static struct daemon	d;
	unsigned		nloops;

	TAILQ_INIT(&d.units);
	TAILQ_INIT(&d.retired);
	the_daemon = &d;
	configure(&d, argc, argv);
	nloops = workers_wanted(&d.cfg);
	open_privileged(&d, nloops);
	watch_closed(&d);
	if (d.tunchan == NULL)
		become_relays(&d, nloops);
	start_units(&d);

	/* The loop's lines go out once per pass, not one write each. */
	(void)log_batch(d.base);
	event_base_dispatch(d.base);
	log_batch_end();

	return close_everything(&d);
}
