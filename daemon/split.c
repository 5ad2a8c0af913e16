/* The process split: relays here, tunnels in a keeper's workers. */
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "caps/caps.h"
#include "caps/sandbox.h"
#include "daemon/daemon.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/pipepool.h"
#include "relay/resolve.h"
#include "relay/tunproc.h"
#include "relay/workers.h"

/* In a --fork child: the control socket and the tunnels' process are the
 * parent's; a status request or a worker's message must not land here. */
void
as_fork_child(void)
{
	struct daemon	*d = the_daemon;

	listener_free_in_child(d->control);
	d->control = NULL;
	/* First: it lets go of the scrapes waiting for the tunnels. */
	if (d->tunproc != NULL) {
		tunproc_forget(d->tunproc);
		d->tunproc = NULL;
	}
	metrics_close(d, 1);
}

/* In the keeper, once: none of the relays' sockets, no capability at all,
 * its own sandbox. Its workers inherit all of it. */
static void
as_keeper(void *arg)
{
	struct daemon	*d = arg;
	char		 err[256];

	/* Every loop: the relays' loops share their epoll with the relay
	 * process until then. No thread runs them here. */
	if (workers_reinit() == -1)
		fatalx(EX_OSERR, "event_reinit failed in the tunnels' process");
	resolve_after_fork();
	units_give_away(&d->units, UNIT_RELAY);
	/* The relay process's pipes are its own: close our copies. */
	pipepool_drain();
	listener_free_in_child(d->control);
	d->control = NULL;
	metrics_close(d, 1);
	/* Only the relay process speaks to systemd. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	d->keeper_pid = getpid();
	drop_privileges(d, 0);
	if (caps_die_with_parent(d->relay_pid, TUNPROC_PARENT_GONE, err,
	    sizeof(err)) == -1)
		fatalx(EX_OSERR, "%s", err);
	enter_sandbox(&d->cfg);
}

/* In each worker: dies with its keeper. */
static void
as_worker(void *arg, unsigned number)
{
	struct daemon	*d = arg;
	char		 err[256];

	d->starts = number;
	if (workers_reinit() == -1)
		fatalx(EX_OSERR, "event_reinit failed in the tunnels' process");
	if (caps_die_with_parent(d->keeper_pid, SIGKILL, err, sizeof(err)) ==
	    -1)
		fatalx(EX_OSERR, "%s", err);
	/* It signals no other process: not the relay process either. */
	if (!d->cfg.no_sandbox && sandbox_signal_only_self(err, sizeof(err)) ==
	    -1)
		fatalx(EX_OSERR, "%s", err);
}

/* What the relay process asks the tunnels' worker (tunproc.h). */
static char *
worker_answer(void *arg, char kind)
{
	if (kind == 'M')
		return metrics_tunnels_text(arg);
	if (kind == 'J')
		return json_tunnels_text(arg);
	return status_text(arg);
}

/* Without a tunnel and without a config file to add one, there are no
 * tunnels to split off. */
void
split_tunnels(struct daemon *d)
{
	struct tunproc_hooks	h = { as_keeper, as_worker, d };
	pid_t			keeper;
	int			fd;

	if (units_count(&d->units, UNIT_TUNNEL) == 0 && d->cfg.file == NULL)
		return;
	d->relay_pid = getpid();
	switch (tunproc_fork(&h, &keeper, &fd)) {
	case -1:
		fatal(EX_OSERR, "cannot start the tunnels' process");
	case 1:
		if ((d->tunchan = tunchan_new(d->base, fd, worker_answer, d)) ==
		    NULL)
			fatalx(EX_OSERR, "out of memory");
		return;
	}
	units_give_away(&d->units, UNIT_TUNNEL);
	if ((d->tunproc = tunproc_new(d->base, keeper, fd, check_ready)) ==
	    NULL)
		fatalx(EX_OSERR, "out of memory");
}
