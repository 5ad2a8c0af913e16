/*
 * The tunnel: its main session, which carries the -R forwards and is
 * reconnected with a delay that depends on why the last attempt failed;
 * extra sessions opened while slow channel opens hold every session's
 * open slot; keepalive ticks that notice a silent server in every phase.
 * Sessions themselves are lane.c's. Everything is driven by the one event
 * loop.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "relay/log.h"
#include "tunnel/auth.h"
#include "tunnel/budget.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/forward.h"
#include "tunnel/hostkey.h"
#include "tunnel/lane.h"
#include "tunnel/netwatch.h"
#include "tunnel/recheck.h"
#include "tunnel/tunnel.h"
#include "tunnel/tunnel_int.h"

/* A connect with no answer is given up and made again this often: a
 * silent network costs the server nothing, and fresh SYNs find it soon
 * after it heals instead of after the kernel's doubling SYN retries. */
#define CONNECT_PATIENCE_SEC	10
#define YOUNG_SESSION_SEC	10
#define OPEN_PATIENCE_SEC	150	/* above Linux's SYN retry time */

static void	attempt(struct tunnel *);
static enum backoff_reason lost_reason(struct tunnel *);
static void	drop_extras(struct tunnel *);
static int	held_by_open(const struct lane *);
static int	may_add_extra(const struct tunnel *);
static int	add_extra(struct tunnel *, const char *why, int probe);

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	attempt(arg);
}

static int	libssh2_ready;

void
tunnel_libssh2_version(char *buf, size_t len)
{
	const char	*loaded = libssh2_version(0);

#ifdef LIBSSH2_CIPHER_RUNS
	const char	*patched = ", patched: cipher runs";
#else
	const char	*patched = "";
#endif

	if (loaded == NULL || strcmp(loaded, LIBSSH2_VERSION) == 0)
		snprintf(buf, len, "%s%s", LIBSSH2_VERSION, patched);
	else
		snprintf(buf, len, "%s (running %s)%s", LIBSSH2_VERSION, loaded,
		    patched);
}

int
tunnel_global_init(void)
{
	if (!libssh2_ready && libssh2_init(0) == 0)
		libssh2_ready = 1;
	return libssh2_ready ? 0 : -1;
}

void
tunnel_global_exit(void)
{
	if (libssh2_ready)
		libssh2_exit();
	libssh2_ready = 0;
}

static double
jitter(void)
{
	unsigned int	r;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0.5;
	return (double)r / 4294967296.0;
}

/* Drops the main session, its forwards and the extra sessions. */
static void
teardown(struct tunnel *t)
{
	if (t->recheck != NULL)		/* NULL only if tunnel_new failed */
		recheck_cancel(t->recheck);
	event_del(&t->ev_retry);
	event_del(&t->ev_probe);
	if (t->main->state == L_UP)
		fwds_session_down(t->fwds);
	drop_extras(t);
	lane_drop(t->main);
}

/* Ends the attempt or session and schedules the next one. */
static void
retry_later(struct tunnel *t, enum backoff_reason reason, const char *what,
    const char *why)
{
	struct timeval	tv;
	double		delay;
	int		quiet = reason == BACKOFF_UNREACHABLE &&
			    t->backoff.unreachable > 0;

	if (t->main->state == L_UP)
		recheck_note_loss(t->recheck, t->cause ? t->cause : "error",
		    why);
	if (t->main->s != NULL)
		t->ended_by = t->cause ? t->cause : "error";
	t->cause = NULL;
	teardown(t);
	delay = backoff_next(&t->backoff, reason, jitter());
	(quiet ? log_debug : log_warnx)("tunnel %s: %s: %s", t->name, what,
	    why);
	(quiet ? log_debug : log_info)("tunnel %s: next attempt in %g s",
	    t->name, delay);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_assign(&t->ev_retry, t->base, on_retry, t);
	evtimer_add(&t->ev_retry, &tv);
}

/* Drops the up session for cause ("network change", "keepalive",
 * "probe", "server closed") and schedules the next; not from inside a
 * pass. */
static void
lost(struct tunnel *t, const char *cause, const char *why)
{
	t->cause = cause;
	retry_later(t, lost_reason(t), "lost", why);
}

/* Whether an open of ours (one given up on included) holds l's slot. */
static int
held_by_open(const struct lane *l)
{
	return slot_held_ms(l->slot, 1) >= 0;
}

/* recheck.c's probe: on the main session, or if an open holds its slot,
 * on every other session whose slot is free, or on a new one opened as
 * the witness. */
static int
recheck_probe(void *arg)
{
	struct tunnel	*t = arg;
	struct lane	*l;
	int		 sent = 0;

	if (!held_by_open(t->main)) {
		(void)slot_probe(t->main->slot);
		lane_kick(t->main);
		return 1;
	}
	TAILQ_FOREACH(l, &t->extras, entry) {
		if (l->state != L_UP || held_by_open(l))
			continue;
		(void)slot_probe(l->slot);
		lane_kick(l);
		sent = 2;
	}
	if (sent == 0 && may_add_extra(t) &&
	    add_extra(t, "a witness for a network check", 1) == 0)
		sent = 2;
	return sent;
}

/* recheck.c's verdict. */
static void
on_lost(void *arg, const char *cause, const char *why)
{
	lost(arg, cause, why);
}

/* A failure that the user must fix: fatal until the tunnel was up once. */
static void
refused(struct tunnel *t, int exit_code, const char *why)
{
	if (!t->ever_up) {
		log_warnx("tunnel %s: %s", t->name, why);
		t->exit_code = exit_code;
		teardown(t);
		event_base_loopbreak(t->base);
		return;
	}
	t->cause = "refused";
	retry_later(t, BACKOFF_REFUSED, "refused", why);
}

/* How the main session ended decides when the next one starts. */
static void
main_ended(struct lane *l, const struct lane_ending *e, void *arg)
{
	struct tunnel	*t = arg;

	switch (e->kind) {
	case LANE_UNREACHABLE:
		retry_later(t, BACKOFF_UNREACHABLE, e->what, e->why);
		break;
	case LANE_FAILED:
		retry_later(t, BACKOFF_REFUSED, e->what, e->why);
		break;
	case LANE_REFUSED:
		refused(t, e->exit_code, e->why);
		break;
	case LANE_LOST:
		lost(t, e->cause, e->why);
		break;
	}
}

/*
 * A lost session is retried at once. One that logged in and brought every
 * forward up, or lived, proved the server willing: earlier refusals are
 * forgotten, and if such sessions keep dying soon after login they are
 * retried within a second, not backed off. Sessions that keep dying
 * before their forwards are up are the server saying no, and back off.
 */
static enum backoff_reason
lost_reason(struct tunnel *t)
{
	struct timespec	now;
	int		young;

	if (t->main->state != L_UP)
		return BACKOFF_REFUSED;
	clock_gettime(CLOCK_MONOTONIC, &now);
	young = now.tv_sec - t->up_since.tv_sec < YOUNG_SESSION_SEC;
	t->young_losses = young ? t->young_losses + 1 : 0;
	if (!young || tunnel_ready(t)) {
		backoff_reset(&t->backoff);
		return t->young_losses >= 2 ? BACKOFF_LOST_AGAIN : BACKOFF_LOST;
	}
	return t->young_losses >= 2 ? BACKOFF_REFUSED : BACKOFF_LOST;
}

/*
 * A probe round's verdict (--probe). A failed one reconnects the session,
 * whose forwards are then requested again (a port a stale session holds
 * is refused and retried); failing again after that, it is reported and
 * left: another process holds the port, or the server no longer serves
 * it, and reconnecting again and again would only cut live connections.
 */
static void
on_probe_round(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel	*t = arg;
	char		 why[sizeof(t->probe_why)], lost_why[400];
	int		 verdict = fwds_probe_round(t->fwds, why, sizeof(why));

	if (verdict == 0)
		return;
	if (verdict == 1 && t->probe_last == -1)
		log_info("tunnel %s: probe: every forward comes back again",
		    t->name);
	t->probe_at = time(NULL);
	if (verdict == 1) {
		t->probe_last = 1;
		t->probe_reconnected = 0;
		return;
	}
	/* Said once, and again when it says something else. */
	if (t->probe_reconnected == 1 || (t->probe_reconnected == 2 &&
	    strcmp(why, t->probe_why) != 0)) {
		log_warnx("tunnel %s: probe failed again after a reconnect: "
		    "%s", t->name, why);
		t->probe_reconnected = 2;
	}
	t->probe_last = -1;
	snprintf(t->probe_why, sizeof(t->probe_why), "%s", why);
	if (!t->probe_reconnected) {
		t->probe_reconnected = 1;
		snprintf(lost_why, sizeof(lost_why), "probe failed: %s", why);
		lost(t, "probe", lost_why);
	}
}

static void
main_up(struct lane *l, void *arg)
{
	struct tunnel	*t = arg;
	struct timeval	 tv = { 0, 0 };

	log_info("tunnel %s: authenticated as %s with %s", t->name, t->user,
	    auth_method(t->auth));
	t->ever_up = 1;
	if (++t->sessions > 1)
		tunnel_count_reconnect(t);
	clock_gettime(CLOCK_MONOTONIC, &t->up_since);
	event_del(&t->ev_retry);
	recheck_session_up(t->recheck, l->fd);
	fwds_session_up(t->fwds, t->sessions == 1,
	    recheck_held_until(t->recheck));
	if (t->conf->probe > 0) {
		tv.tv_sec = t->conf->probe;
		event_add(&t->ev_probe, &tv);
	}
	lane_kick(l);
}

/* The main session's pass serves the forwards too. */
static int
main_serve(void *arg)
{
	struct tunnel	*t = arg;

	return fwds_service(t->fwds);
}

/* The connect has its own deadline, no longer than a silent server is
 * given: unanswered, it is "cannot connect" and retried within a second;
 * the login deadline and the count of silence start once connected. */
static int
connect_patience(const struct tunnel *t)
{
	int	patience = (t->conf->keepalive_count + 1) * t->conf->keepalive;

	return patience > CONNECT_PATIENCE_SEC ? CONNECT_PATIENCE_SEC :
	    patience;
}

static void
attempt(struct tunnel *t)
{
	(t->backoff.unreachable > 0 ? log_debug : log_info)("tunnel %s: "
	    "connecting", t->name);
	lane_connect(t->main, connect_patience(t));
}

/*
 * Extra sessions. libssh2 opens one channel at a time per session, and a
 * server connecting to a target that drops SYNs holds that open for up to
 * two minutes. When opens wait and every up session's slot has been held
 * for SLOW_OPEN_MS, more sessions are opened, one per waiting open, up to
 * EXTRA_MAX; they carry -L and -D channels only and close after
 * EXTRA_IDLE_SEC without one. An extra session that fails to log in
 * stops more from being tried for EXTRA_REFUSED_SEC (the server may limit
 * a user's sessions): the opens then wait their turn as with one session.
 */
#define SLOW_OPEN_MS		200
#define EXTRA_MAX		7	/* beside the main session */
#define EXTRA_CONNECTING_MAX	4	/* under sshd's MaxStartups */
#define EXTRA_IDLE_SEC		10
#define EXTRA_REFUSED_SEC	30

static int
extras_refused(const struct tunnel *t)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < t->extras_refused_until;
}

static int
may_add_extra(const struct tunnel *t)
{
	return t->main->state == L_UP && t->nextra < EXTRA_MAX &&
	    !extras_refused(t);
}

static void
extra_up(struct lane *l, void *arg)
{
	struct tunnel	*t = arg;

	log_info("tunnel %s: up", l->name);
	lane_kick(l);
	event_active(&t->ev_spread, EV_TIMEOUT, 0);
}

static void
remove_extra(struct tunnel *t, struct lane *l)
{
	struct auth	*auth;

	TAILQ_REMOVE(&t->extras, l, entry);
	t->nextra--;
	auth = l->auth;
	lane_free(l);		/* ends its login first */
	auth_free(auth);
}

/* An extra session ends on its own: its channels end with it. */
static void
extra_ended(struct lane *l, const struct lane_ending *e, void *arg)
{
	struct tunnel	*t = arg;
	struct timespec	 now;

	if (l->state != L_UP) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		t->extras_refused_until = now.tv_sec + EXTRA_REFUSED_SEC;
		/* Unless the server said no, a session that could not log
		 * in is the witness's word that the server is not answering. */
		if (e->kind != LANE_REFUSED)
			t->silent_until = now.tv_sec + EXTRA_REFUSED_SEC;
		log_warnx("tunnel %s: %s: %s; no extra session for %d s",
		    l->name, e->what, e->why, EXTRA_REFUSED_SEC);
	} else
		log_info("tunnel %s: %s: %s", l->name, e->what, e->why);
	remove_extra(t, l);
	event_active(&t->ev_spread, EV_TIMEOUT, 0);
}

/* A new extra session, with a probe asked for once it is up if probe;
 * -1 if out of memory. */
static int
add_extra(struct tunnel *t, const char *why, int probe)
{
	struct lane_env	 env = t->main->env;
	struct lane	*l;
	struct auth	*auth;
	char		 name[sizeof(t->name) + 32];

	snprintf(name, sizeof(name), "%s: extra session %u", t->name,
	    ++t->extra_seq);
	env.up = extra_up;
	env.ended = extra_ended;
	env.serve = NULL;
	if ((auth = auth_share(t->auth)) == NULL ||
	    (l = lane_new(&env, name, auth)) == NULL) {
		auth_free(auth);
		return -1;
	}
	TAILQ_INSERT_TAIL(&t->extras, l, entry);
	t->nextra++;
	if (probe)
		(void)slot_probe(l->slot);
	log_info("tunnel %s: connecting (%s)", l->name, why);
	lane_connect(l, connect_patience(t));	/* may end it at once */
	return 0;
}

static void
drop_extras(struct tunnel *t)
{
	struct lane	*l;

	event_del(&t->ev_spread);
	while ((l = TAILQ_FIRST(&t->extras)) != NULL)
		remove_extra(t, l);
}

/* The main session, then the extra ones. */
static struct lane *
next_lane(struct tunnel *t, struct lane *l)
{
	return l == NULL ? t->main : l == t->main ?
	    TAILQ_FIRST(&t->extras) : TAILQ_NEXT(l, entry);
}

/*
 * Opens wait: sessions whose slot is free take them (kicked); if every
 * slot has been held for SLOW_OPEN_MS, sessions are added for the opens
 * that sessions still logging in will not take; sooner, the check comes
 * again when the youngest hold turns slow.
 */
static void
spread(struct tunnel *t)
{
	size_t		 waiting = opens_waiting(t->opens), connecting = 0;
	long		 held, youngest = -1;
	size_t		 kicked = 0;
	struct lane	*l;
	struct timeval	 tv = { 0, SLOW_OPEN_MS * 1000 };

	if (waiting == 0 || t->main->state != L_UP)
		return;
	for (l = t->main; l != NULL; l = next_lane(t, l)) {
		if (l->state != L_UP)
			connecting++;
		else if ((held = slot_held_ms(l->slot, 1)) < 0) {
			lane_kick(l);
			kicked++;
		} else if (youngest == -1 || held < youngest)
			youngest = held;
	}
	if (kicked + connecting >= waiting)
		return;
	/* Sessions kicked now may find their slot held by the time the
	 * opens beyond them would be served: look again then. */
	if (kicked > 0 || youngest < SLOW_OPEN_MS) {
		if (kicked == 0)
			tv.tv_usec = (SLOW_OPEN_MS - youngest) * 1000;
		evtimer_add(&t->ev_spread, &tv);
		return;
	}
	for (; waiting > connecting && connecting < EXTRA_CONNECTING_MAX &&
	    may_add_extra(t); connecting++)
		add_extra(t, "channel opens wait", 0);
}

static void
on_spread(evutil_socket_t fd, short what, void *arg)
{
	spread(arg);
}

/* An open joined the queue. */
static void
on_queued(void *arg)
{
	spread(arg);
}

/*
 * An extra session with no channel and no open for EXTRA_IDLE_SEC closes,
 * but one is kept while another session's slot is held, as the server's
 * witness.
 */
static void
close_idle(struct tunnel *t)
{
	struct lane	*l, *next;
	struct timespec	 now;
	int		 witness_needed = held_by_open(t->main);

	TAILQ_FOREACH(l, &t->extras, entry)
		if (slot_held_ms(l->slot, 0) >= 0)
			witness_needed = 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (l = TAILQ_FIRST(&t->extras); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (l->state != L_UP || !chans_empty(l->chans) ||
		    slot_held_ms(l->slot, 0) >= 0 ||
		    opens_waiting(t->opens) > 0) {
			l->idle_since.tv_sec = 0;
			continue;
		}
		if (l->idle_since.tv_sec == 0)
			l->idle_since = now;
		else if (now.tv_sec - l->idle_since.tv_sec < EXTRA_IDLE_SEC)
			continue;
		else if (witness_needed && !held_by_open(l))
			witness_needed = 0;	/* this one stays */
		else {
			log_info("tunnel %s: closed, idle", l->name);
			remove_extra(t, l);
		}
	}
}

/*
 * Keepalives: each tick of a session without a byte from the server is a
 * miss, whether or not a probe could ask for one (none can before login).
 * A session whose open slot holds a channel open of ours can send no
 * probe, and the server owes it no byte until its connect ends: bytes on
 * another session then vouch for the server, and one is opened as the
 * witness if there is none. Only when no other session can be had is
 * that silence given OPEN_PATIENCE_SEC before it counts.
 */
static int
vouched_for(const struct tunnel *t, const struct lane *l)
{
	return t->rx_total - l->total_at_tick > l->rx_bytes - l->rx_at_tick;
}

static void
check_lane(struct tunnel *t, struct lane *l, int vouched, int witness)
{
	long	held = slot_held_ms(l->slot, 1);
	char	why[128];

	if (held >= 0 && held < OPEN_PATIENCE_SEC * 1000L && vouched)
		l->missed = 0;		/* as if the byte had come here */
	if (l->missed >= t->conf->keepalive_count) {
		if (l->state == L_UP)
			snprintf(why, sizeof(why), "no answer to %d keepalives",
			    l->missed);
		else
			snprintf(why, sizeof(why), "server silent for %d s "
			    "during login", l->missed * t->conf->keepalive);
		lane_lost(l, "keepalive", why);
		return;
	}
	if (held >= 0 && !witness && held < OPEN_PATIENCE_SEC * 1000L)
		return;
	/* Cleared by any byte from the server; a probe asks for one. */
	l->missed++;
	if (l->state == L_UP && slot_probe(l->slot))
		t->keepalives_sent++;
	lane_kick(l);
}

/* Sessions whose open slot an open of ours holds, and the others. */
static void
count_slots(struct tunnel *t, int *held, int *free)
{
	struct lane	*l;

	*held = *free = 0;
	for (l = t->main; l != NULL; l = next_lane(t, l)) {
		if (held_by_open(l))
			(*held)++;
		else
			(*free)++;
	}
}

/* A witness is a session that a probe can leave: one whose slot is free
 * (or will be, once it has logged in). */
static void
on_tick(struct lane *l, void *arg)
{
	struct tunnel	*t = arg;
	struct timespec	 now;
	int		 held, free, witness, vouched = vouched_for(t, l);

	l->rx_at_tick = l->rx_bytes;
	l->total_at_tick = t->rx_total;
	if (l->missed > 0 && l->state == L_UP && !(held_by_open(l) &&
	    vouched))
		t->keepalives_missed++;
	count_slots(t, &held, &free);
	if (held > 0 && free == 0 && may_add_extra(t)) {
		add_extra(t, "a witness while opens are pending", 0);
		free++;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	witness = free > 0 || now.tv_sec < t->silent_until;
	if (l == t->main) {
		recheck_tick(t->recheck);
		close_idle(t);
		spread(t);
	}
	check_lane(t, l, vouched, witness);
}

static void
default_user(struct tunnel *t, const struct tunnel_conf *tc)
{
	struct passwd	*pw;

	if (tc->dest.user[0] != '\0')
		snprintf(t->user, sizeof(t->user), "%s", tc->dest.user);
	else if ((pw = getpwuid(getuid())) != NULL)
		snprintf(t->user, sizeof(t->user), "%s", pw->pw_name);
	else
		snprintf(t->user, sizeof(t->user), "%u", (unsigned)getuid());
}

static int
known_hosts_path(const struct tunnel_conf *tc, char *buf, size_t len)
{
	const char	*home = getenv("HOME");
	struct passwd	*pw;

	if (tc->known_hosts != NULL)
		return snprintf(buf, len, "%s", tc->known_hosts) < (int)len ?
		    0 : -1;
	if (home == NULL && (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	return snprintf(buf, len, "%s/.ssh/known_hosts", home ? home : "/") <
	    (int)len ? 0 : -1;
}

static void
name_server(struct tunnel *t, const struct tunnel_conf *tc)
{
	struct in6_addr	v6;

	default_user(t, tc);
	snprintf(t->name, sizeof(t->name), strchr(tc->dest.host, ':') ?
	    "%s@[%s]:%u" : "%s@%s:%u", t->user, tc->dest.host, tc->dest.port);
	t->server.kind = ADDR_INET;
	snprintf(t->server.host, sizeof(t->server.host), "%s", tc->dest.host);
	t->server.port = tc->dest.port;
	t->server.numeric = inet_pton(AF_INET6, tc->dest.host, &v6) == 1 ||
	    inet_pton(AF_INET, tc->dest.host, &v6) == 1;
}

/* The main session's lane, whose call lock and channels the forwards use
 * for -R; -1 if out of memory. */
static int
new_main(struct tunnel *t)
{
	struct lane_env	env = { t->base, t->conf, &t->server, t->user,
			    t->hostkeys, t->budget, t->opens, &t->packets_out,
			    &t->sends_out, &t->rx_total, main_up, main_ended,
			    main_serve, on_tick, t };

	return (t->main = lane_new(&env, t->name, t->auth)) == NULL ? -1 : 0;
}

/* The parts each file of the tunnel keeps for it; -1 if out of memory. */
static int
new_parts(struct tunnel *t)
{
	return (t->budget = budget_new(t->name)) == NULL ||
	    (t->opens = opens_new(t->base, t->budget, on_queued, t)) == NULL ?
	    -1 : 0;
}

/* Host keys, the user's keys, the main session and the forwards, whose
 * -L and -D listeners are bound now. */
static int
load(struct tunnel *t, char *err, size_t errlen, int *exitcode)
{
	struct recheck_env	 re = { t->base, t->name, recheck_probe, NULL,
				    &t->rx_total, on_lost, t };
	struct fwds_env		 fe = { t->base, t->conf, t->name, NULL, NULL,
				    t->opens, t->budget };
	char			 path[4096];

	*exitcode = EX_NOINPUT;
	if (known_hosts_path(t->conf, path, sizeof(path)) == -1 ||
	    (t->hostkeys = hostkeys_load(path, t->conf->accept_new_host_key,
	    err, errlen)) == NULL ||
	    (t->auth = auth_load(t->conf, err, errlen, exitcode)) == NULL)
		return -1;
	*exitcode = EX_OSERR;
	snprintf(err, errlen, "out of memory");
	if (new_main(t) == -1)
		return -1;
	re.rx_bytes = &t->main->rx_bytes;
	if ((t->recheck = recheck_new(&re)) == NULL)
		return -1;
	fe.sc = t->main->call;
	fe.set = t->main->chans;
	return (t->fwds = fwds_new(&fe, err, errlen, exitcode)) == NULL ?
	    -1 : 0;
}

struct tunnel *
tunnel_new(struct event_base *base, const struct tunnel_conf *tc, char *err,
    size_t errlen, int *exitcode)
{
	struct tunnel	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	t->base = base;
	TAILQ_INIT(&t->extras);
	evtimer_assign(&t->ev_retry, base, on_retry, t);
	evtimer_assign(&t->ev_spread, base, on_spread, t);
	event_assign(&t->ev_probe, base, -1, EV_PERSIST, on_probe_round, t);
	if ((t->conf = tunnel_conf_dup(tc)) == NULL || new_parts(t) == -1) {
		tunnel_free(t);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	name_server(t, t->conf);
	if (load(t, err, errlen, exitcode) == -1) {
		tunnel_free(t);
		return NULL;
	}
	return t;
}

/*
 * A network change: while the session is up, recheck.c judges whether it
 * may have cut it. Waiting after a failed connect, a new address or route
 * may be the way to the server, so try now. Refusals keep their delay.
 */
static void
on_netchange(const struct netchange *nc, void *arg)
{
	struct tunnel	*t = arg;
	struct timeval	 now = { 0, 0 };

	if (t->main->state == L_UP)
		recheck_netchange(t->recheck, nc);
	else if (t->main->state == L_DOWN && !nc->removed &&
	    t->backoff.unreachable > 0 && evtimer_pending(&t->ev_retry, NULL))
		evtimer_add(&t->ev_retry, &now);
}

void
tunnel_start(struct tunnel *t)
{
	struct timeval	now = { 0, 0 };
	char		err[160];

	evtimer_add(&t->ev_retry, &now);
	/* A failure only logs: keepalives remain. */
	if ((t->netwatch = netwatch_new(t->base, on_netchange, t, err,
	    sizeof(err))) == NULL)
		log_warnx("tunnel %s: not watching network changes (%s); "
		    "keepalives alone notice a changed network", t->name, err);
}

const struct tunnel_conf *
tunnel_conf(const struct tunnel *t)
{
	return t->conf;
}

int
tunnel_exit_code(const struct tunnel *t)
{
	if (t == NULL)
		return 0;
	return t->exit_code != 0 || t->fwds == NULL ? t->exit_code :
	    fwds_exit_code(t->fwds);
}

void
tunnel_set_up_hook(void (*hook)(void))
{
	fwds_set_up_hook(hook);
}

void
tunnel_stop_accepting(struct tunnel *t)
{
	fwds_stop_accepting(t->fwds);
}

void
tunnel_close_listeners(struct tunnel *t)
{
	fwds_close_listeners(t->fwds);
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	if (t->main != NULL)
		teardown(t);
	event_del(&t->ev_retry);
	netwatch_free(t->netwatch);
	if (t->opens != NULL)
		opens_fail_all(t->opens, "shutdown");
	fwds_free(t->fwds);
	recheck_free(t->recheck);
	lane_free(t->main);
	opens_free(t->opens);
	hostkeys_free(t->hostkeys);
	auth_free(t->auth);
	budget_free(t->budget);
	tunnel_conf_free(t->conf);
	free(t);
}
