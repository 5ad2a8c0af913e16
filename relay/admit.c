/*
 * Who may connect: the access list and per-address limits a service
 * applies before it opens anything, and a log of refusals that a flood
 * cannot turn into a flood of lines.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "relay/acl.h"
#include "relay/iplimit.h"
#include "relay/log.h"
#include "relay/service.h"

#define REFUSALS_PER_SEC	5	/* lines; the rest are counted */

uint64_t
service_now_ms(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

const char *
service_check(struct service *svc, const struct sockaddr *sa, int limits)
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
	switch (iplimit_check(svc->iplimit, sa, service_now_ms())) {
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

void
service_log_refusal(struct service *svc, const char *client,
    const char *why)
{
	/* Loops of one relay (--workers) share the count of lines. */
	static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
	struct refusals		*r = svc->refusal_log != NULL ?
				    svc->refusal_log : &svc->refused;
	int64_t			 sec = (int64_t)(service_now_ms() / 1000);
	uint64_t		 quiet = 0;
	int			 say;

	pthread_mutex_lock(&lock);
	if (sec != r->log_sec) {
		quiet = r->quiet;
		r->log_sec = sec;
		r->logged = 0;
		r->quiet = 0;
	}
	if (!(say = r->logged++ < REFUSALS_PER_SEC))
		r->quiet++;
	pthread_mutex_unlock(&lock);
	if (quiet > 0)
		log_warnx("%s%s%" PRIu64 " more connections refused "
		    "without a log line", svc->tag ? svc->tag : "",
		    svc->tag ? ": " : "", quiet);
	if (say)
		log_warnx("%s%srefused %s: %s", svc->tag ? svc->tag : "",
		    svc->tag ? ": " : "", client, why);
}

void
service_describe_refusals(const struct service *svc, char *buf, size_t len)
{
	const struct refusals	*r = &svc->refused;

	if (svc->nacl == 0 && svc->iplimit == NULL && svc->step == NULL)
		return;
	snprintf(buf, len, "; refused: denied=%" PRIu64 " per-ip=%" PRIu64
	    " rate=%" PRIu64 " handshake=%" PRIu64, r->denied, r->per_ip,
	    r->rate, r->handshake);
}
