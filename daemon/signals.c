/* The signals the daemon acts on: reload, status, drain, stop, children. */
#include <signal.h>
#include <sysexits.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "relay/log.h"
#include "relay/relay.h"
#include "relay/tunproc.h"

/* A child that is not a --fork child: the tunnels' keeper. */
static void
on_other_child(pid_t pid, int status)
{
	struct daemon	*d = the_daemon;
	int		 code;

	if (d->tunproc == NULL || !tunproc_reaped(d->tunproc, pid, status,
	    &code))
		return;
	if (d->draining && code == 0)
		return;
	/* Not asked to stop (someone else signalled it): no success, so that
	 * a service manager restarts relayd. */
	if (code == 0) {
		log_warnx("the tunnels' process ended: stopping");
		code = EX_SOFTWARE;
	}
	d->tun_code = code;
	event_base_loopbreak(d->base);
}

/* The tunnels' process hears every signal but SIGCHLD too. */
static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon	*d = arg;

	if (d->tunproc != NULL && sig != SIGCHLD)
		tunproc_signal(d->tunproc, (int)sig);
	switch (sig) {
	case SIGCHLD:
		relay_reap_children(on_other_child);
		drained_check();	/* a draining --fork relayd may be done */
		return;
	case SIGHUP:
		if (d->cfg.file != NULL)
			log_info("SIGHUP: reloading %s", d->cfg.file);
		reload(d);
		return;
	case SIGUSR1:
		log_status(d);
		return;
	case SIGTERM:
		log_info("SIGTERM: shutting down");
		start_drain(d);
		return;
	default:
		log_info("signal %d: shutting down", (int)sig);
		event_base_loopbreak(d->base);
	}
}

void
watch_signals(struct daemon *d)
{
	const int	sigs[NSIGNALS] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP,
			    SIGQUIT, SIGUSR1 };
	sigset_t	set;
	size_t		i;

	sigemptyset(&set);
	for (i = 0; i < NSIGNALS; i++) {
		d->sigs[i] = evsignal_new(d->base, sigs[i], on_signal, d);
		if (d->sigs[i] == NULL || evsignal_add(d->sigs[i], NULL) == -1)
			fatalx(EX_OSERR, "cannot watch signal %d", sigs[i]);
		sigaddset(&set, sigs[i]);
	}
	/* Blocked while the tunnels' process was forked: watched now. */
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}
