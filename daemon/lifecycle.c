/* From start to exit: readiness, the watchdog, draining, reaping, the end. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "relay/bufpool.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/pipepool.h"
#include "relay/relay.h"
#include "relay/resolve.h"
#include "relay/service.h"
#include "relay/systemd.h"
#include "relay/tunproc.h"
#include "relay/workers.h"
#include "tunnel/tunnel.h"

struct daemon	*the_daemon;

static unsigned
active_conns(const struct daemon *d)
{
	return units_active(&d->units) + units_active(&d->retired);
}

void
reap_retired(struct daemon *d)
{
	struct unit	*u, *next;

	/* Before the counts are read: a close after this wakes us. */
	if (!TAILQ_EMPTY(&d->retired))
		atomic_store(&d->watch_closes, 1);
	for (u = TAILQ_FIRST(&d->retired); u != NULL; u = next) {
		next = TAILQ_NEXT(u, entry);
		if (unit_active(u) > 0)
			continue;
		TAILQ_REMOVE(&d->retired, u, entry);
		unit_free(u);
	}
	atomic_store(&d->watch_closes, d->draining ||
	    !TAILQ_EMPTY(&d->retired));
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	reap_retired(arg);
}

static void
on_closed_in_worker(evutil_socket_t fd, short what, void *arg)
{
	drained_check();
}

void
watch_closed(struct daemon *d)
{
	if ((d->closed_ev = event_new(d->base, -1, 0, on_closed_in_worker,
	    d)) == NULL)
		fatalx(EX_OSERR, "out of memory");
	conn_set_closed_hook(drained_check);
}

/*
 * The unit that called us is still on the stack: free from the loop.
 * A worker loop's connection tells the main loop, which does the rest,
 * but only when there is a rest to do: waking another loop costs system
 * calls in both. The flag is set before the main loop reads the counts
 * and the close counted itself down before we read the flag, so one of
 * the two sees the other.
 */
void
drained_check(void)
{
	struct daemon	*d = the_daemon;
	struct timeval	 now = { 0, 0 };

	if (!workers_on_main()) {
		if (atomic_load(&d->watch_closes))
			event_active(d->closed_ev, EV_TIMEOUT, 0);
		return;
	}
	if (!TAILQ_EMPTY(&d->retired))
		event_base_once(d->base, -1, EV_TIMEOUT, on_reap, d, &now);
	if (d->draining && active_conns(d) == 0)
		event_base_loopbreak(d->base);
}

void
check_ready(void)
{
	struct daemon		*d = the_daemon;
	const struct unit	*u;
	char			 status[128];

	if (d->ready_sent)
		return;
	TAILQ_FOREACH(u, &d->units, entry)
		if (!unit_ready(u))
			return;
	if (d->tunproc != NULL && !tunproc_ready(d->tunproc))
		return;
	if (d->tunchan != NULL) {	/* the relay process tells systemd */
		log_flush();	/* "forward ... up" before READY=1 */
		tunchan_ready(d->tunchan);
		d->ready_sent = 1;
		return;
	}
	snprintf(status, sizeof(status), "serving: %zu relays, %zu tunnels",
	    units_count(&d->units, UNIT_RELAY),
	    units_count(&d->units, UNIT_TUNNEL));
	snprintf(d->status, sizeof(d->status), "%s", status);
	sysd_ready(status);
	d->ready_sent = 1;
}

/* STATUS= says what /healthz says, when that changed. */
static void
say_status(struct daemon *d, const char *tunnels_why)
{
	char	*why = relays_health(d), status[sizeof(d->status)];

	if (why == NULL && tunnels_why != NULL)
		snprintf(status, sizeof(status), "degraded: %s", tunnels_why);
	else if (why != NULL)
		snprintf(status, sizeof(status), "degraded: %s", why);
	else
		snprintf(status, sizeof(status), "serving: %zu relays, %zu "
		    "tunnels", units_count(&d->units, UNIT_RELAY),
		    units_count(&d->units, UNIT_TUNNEL));
	free(why);
	if (strcmp(status, d->status) == 0)
		return;
	snprintf(d->status, sizeof(d->status), "%s", status);
	sysd_status(status);
}

/* The tunnels' process answered: its first line is their health. */
static void
on_tunnels_health(void *arg, const char *text, const char *why)
{
	struct daemon	*d = arg;
	char		 line[200];
	size_t		 n;

	if (text == NULL && why == NULL)
		return;			/* a --fork child's copy */
	if (text == NULL) {
		snprintf(line, sizeof(line), "tunnels: %s", why);
		say_status(d, line);
		return;
	}
	n = strcspn(text, "\n");
	snprintf(line, sizeof(line), "%.*s", (int)n, text);
	say_status(d, strcmp(line, "ok") == 0 ? NULL : line);
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct daemon	*d = arg;
	char		 why[200];

	sysd_watchdog_ping();
	if (!d->ready_sent)
		return;
	if (d->tunproc != NULL) {
		tunproc_ask(d->tunproc, 'M', on_tunnels_health, d);
		return;
	}
	tunnels_health(d, why, sizeof(why));
	say_status(d, strcmp(why, "ok") == 0 ? NULL : why);
}

void
start_watchdog(struct daemon *d)
{
	uint64_t	usec = sysd_watchdog_usec();
	struct timeval	tv;

	if (usec == 0)
		return;
	/* Twice per interval, as systemd advises. */
	tv.tv_sec = (time_t)(usec / 2 / 1000000);
	tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
	if ((d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog,
	    d)) == NULL || event_add(d->watchdog, &tv) == -1)
		log_warnx("cannot start the systemd watchdog");
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon	*d = arg;

	log_info("drain timeout: closing %u connections", active_conns(d));
	event_base_loopbreak(d->base);
}

void
start_drain(struct daemon *d)
{
	struct timeval	 tv = { d->cfg.drain_timeout, 0 };
	struct unit	*u;
	unsigned	 n;

	atomic_store(&d->watch_closes, 1);	/* before the count */
	n = active_conns(d);
	sysd_stopping();
	if (d->draining || n == 0 || d->cfg.drain_timeout == 0) {
		event_base_loopbreak(d->base);
		return;
	}
	d->draining = 1;
	TAILQ_FOREACH(u, &d->units, entry)
		unit_stop_accepting(u);
	log_info("draining %u connections for up to %d s", n,
	    d->cfg.drain_timeout);
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	if (d->drain_timer == NULL || evtimer_add(d->drain_timer, &tv) == -1)
		event_base_loopbreak(d->base);
}

/* The daemon's own events. */
static void
free_events(struct daemon *d)
{
	size_t	i;

	for (i = 0; i < NSIGNALS; i++)
		event_free(d->sigs[i]);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	if (d->watchdog != NULL)
		event_free(d->watchdog);
	if (d->closed_ev != NULL)
		event_free(d->closed_ev);
}

/* The first failure wins: a tunnel's, then the keeper's. */
int
close_everything(struct daemon *d)
{
	int	code, keeper;

	relay_kill_children();
	listener_free(d->control);
	code = units_exit_code(&d->units);
	units_free(&d->units);
	units_free(&d->retired);
	tunchan_free(d->tunchan);
	if (code == 0)
		code = d->tun_code;
	if (d->tunproc != NULL && (keeper = tunproc_finish(d->tunproc,
	    d->cfg.drain_timeout + 2)) != 0 && code == 0)
		code = keeper;
	metrics_close(d, 0);	/* after the tunnels' last answers */
	tunnel_global_exit();
	resolve_shutdown();
	free_events(d);
	workers_shutdown();	/* frees d->base too */
	bufpool_drain();
	pipepool_drain();
	if (d->cfg.pidfile != NULL && d->tunchan == NULL)
		(void)unlink(d->cfg.pidfile);
	config_free(&d->cfg);
	return code;
}
