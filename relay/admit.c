/*
 * Who may connect, all in one place: --max-conns, the access list and the
 * per-address limits a service applies before it opens anything, and a
 * log of refusals that a flood cannot turn into a flood of lines.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "relay/acl.h"
#include "relay/addr.h"
#include "relay/clock.h"
#include "relay/iplimit.h"
#include "relay/log.h"
#include "relay/service.h"

#define REFUSALS_PER_SEC	5	/* lines; the rest are counted */

static pthread_mutex_t	refusals_lock = PTHREAD_MUTEX_INITIALIZER;

/* The access list and, if limits, the per-address limits for sa:
 * returns NULL, or why it is refused (counted by reason). */
static const char *
admit_check(struct service *svc, const struct sockaddr *sa, int limits)
{
	const struct acl_rule	*rule;
	static _Thread_local char why[96];	/* per loop (--workers) */
	char			 net[64];

	if (!acl_permits(svc->acl, svc->nacl, sa, &rule)) {
		svc->refused.denied++;
		if (rule == NULL)
			return "denied (no --allow matches)";
		cidr_format(&rule->net, net, sizeof(net));
		snprintf(why, sizeof(why), "denied by --deny %s", net);
		return why;
	}
	if (!limits || svc->iplimit == NULL)
		return NULL;
	switch (iplimit_check(svc->iplimit, sa, mono_ms())) {
	case IPL_OK:
		return NULL;
	case IPL_TOO_MANY:
		svc->refused.per_ip++;
		return "--max-conns-per-ip reached";
	case IPL_RATE:
		svc->refused.rate++;
		return "--rate exceeded";
	case IPL_FULL:
		break;
	}
	svc->refused.per_ip++;
	return "too many client addresses to track";
}

/* Takes a --max-conns slot: 0 if they are all taken (counted). */
static int
admit_slot(struct service *svc)
{
	unsigned	max = svc->max_conns;

	if (svc->conn_slots == NULL)
		return 1;
	if (atomic_fetch_add(svc->conn_slots, 1) < max || max == 0)
		return 1;
	atomic_fetch_sub(svc->conn_slots, 1);
	svc->refused.max_conns++;
	return 0;
}

void
service_release(struct service *svc)
{
	if (svc->conn_slots != NULL)
		atomic_fetch_sub(svc->conn_slots, 1);
}

/* Whether the service's step tells the client's real address. */
static int
learns_origin(const struct service *svc)
{
	return svc->step != NULL && svc->step->learns_origin;
}

int
service_admit(struct service *svc, const struct sockaddr *sa,
    socklen_t salen)
{
	const char	*why;
	char		 name[ADDR_STR_MAX], full[64];

	if (!admit_slot(svc)) {
		snprintf(full, sizeof(full), "--max-conns %u reached",
		    svc->max_conns);
		why = full;
	} else if ((why = admit_check(svc, sa, !learns_origin(svc))) == NULL)
		return 1;	/* with a PROXY header, the limits wait for
				 * the address it will tell */
	else
		service_release(svc);
	svc->rejected++;
	addr_sa_format(sa, salen, name, sizeof(name));
	service_log_refusal(svc, name, why);
	return 0;
}

const char *
service_admit_origin(struct service *svc, const struct sockaddr *sa,
    int *held)
{
	const char	*why;

	if (learns_origin(svc) && (why = admit_check(svc, sa, 1)) != NULL)
		return why;
	if (svc->iplimit == NULL)
		return NULL;
	if (iplimit_hold(svc->iplimit, sa, mono_ms()) == -1) {
		svc->refused.per_ip++;
		return "too many client addresses to track";
	}
	*held = 1;
	return NULL;
}

/*
 * Takes the count of refusals that went without a line: those of the
 * last second if sec starts a new one (which resets the count of lines),
 * or with all, those of this second so far. Called under the lock.
 */
static uint64_t
refusals_take(struct refusals *r, int64_t sec, int all)
{
	uint64_t	quiet = 0;

	if (sec != r->log_sec) {
		quiet = r->quiet;
		r->log_sec = sec;
		r->logged = 0;
		r->quiet = 0;
	} else if (all) {
		quiet = r->quiet;
		r->quiet = 0;
	}
	return quiet;
}

static void
say_quiet(struct service *svc, uint64_t quiet)
{
	if (quiet > 0)
		log_warnx("%s%s%" PRIu64 " more connections refused "
		    "without a log line", svc->tag ? svc->tag : "",
		    svc->tag ? ": " : "", quiet);
}

static void	refusals_arm(struct service *);

/* The second's count, said once it is over even if no refusal follows
 * (all: at once, the service is going away). */
static void
refusals_say(struct service *svc, int all)
{
	struct refusals	*r = svc->refusal_log != NULL ? svc->refusal_log :
			    &svc->refused;
	uint64_t	 quiet;
	int		 early;

	pthread_mutex_lock(&refusals_lock);
	quiet = refusals_take(r, (int64_t)(mono_ms() / 1000), all);
	early = r->quiet > 0;	/* the timer ran ahead of the clock */
	pthread_mutex_unlock(&refusals_lock);
	say_quiet(svc, quiet);
	if (early && !all)
		refusals_arm(svc);
}

static void
refusals_flush(evutil_socket_t fd, short what, void *arg)
{
	refusals_say(arg, 0);
}

/* Arms the flush for just after the current second of mono_ms. */
static void
refusals_arm(struct service *svc)
{
	struct timeval	tv;
	uint64_t	ms = 1000 - mono_ms() % 1000 + 20;

	if (svc->refusal_flush == NULL && (svc->refusal_flush = evtimer_new(
	    svc->base, refusals_flush, svc)) == NULL)
		return;		/* said with the next refusal instead */
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(svc->refusal_flush, &tv);
}

void
service_log_refusal(struct service *svc, const char *client,
    const char *why)
{
	struct refusals		*r = svc->refusal_log != NULL ?
				    svc->refusal_log : &svc->refused;
	int64_t			 sec = (int64_t)(mono_ms() / 1000);
	uint64_t		 quiet;
	int			 say, arm = 0;

	/* Loops of one relay (--workers) share the count of lines. */
	pthread_mutex_lock(&refusals_lock);
	quiet = refusals_take(r, sec, 0);
	if (!(say = r->logged++ < REFUSALS_PER_SEC))
		arm = r->quiet++ == 0;
	pthread_mutex_unlock(&refusals_lock);
	say_quiet(svc, quiet);
	if (say)
		log_warnx("%s%srefused %s: %s", svc->tag ? svc->tag : "",
		    svc->tag ? ": " : "", client, why);
	if (arm)
		refusals_arm(svc);
}

void
service_log_refusals_end(struct service *svc)
{
	if (svc->refusal_flush == NULL)
		return;
	if (evtimer_pending(svc->refusal_flush, NULL))
		refusals_say(svc, 1);
	event_free(svc->refusal_flush);
	svc->refusal_flush = NULL;
}

