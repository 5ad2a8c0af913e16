/*
 * What a tunnel tells of itself: its state and figures for --status,
 * --metrics and --status --json, its readiness, its live connections.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tunnel/forward.h"
#include "tunnel/recheck.h"
#include "tunnel/tunnel.h"
#include "tunnel/tunnel_int.h"

const char *
tunnel_state_name(int state)
{
	static const char *const names[TUNNEL_NSTATES] = { "down",
	    "connecting", "handshaking", "authenticating", "up" };

	return state >= 0 && state < TUNNEL_NSTATES ? names[state] : "?";
}

const char *
tunnel_cause_name(int i)
{
	static const char *const names[TUNNEL_NCAUSES] = { "keepalive",
	    "network change", "resume", "probe", "server closed", "refused",
	    "error" };

	return i >= 0 && i < TUNNEL_NCAUSES ? names[i] : "?";
}

void
tunnel_count_reconnect(struct tunnel *t)
{
	int	i;

	/* Causes not named are errors, the last of them. */
	for (i = 0; i < TUNNEL_NCAUSES - 1; i++)
		if (t->ended_by != NULL &&
		    strcmp(t->ended_by, tunnel_cause_name(i)) == 0)
			break;
	t->reconnects_by[i]++;
}

/* The wall clock time of a CLOCK_MONOTONIC instant. */
static int64_t
wall_of(const struct timespec *mono)
{
	struct timespec	now_mono, now_wall;

	clock_gettime(CLOCK_MONOTONIC, &now_mono);
	clock_gettime(CLOCK_REALTIME, &now_wall);
	return (int64_t)now_wall.tv_sec - (now_mono.tv_sec - mono->tv_sec);
}

void
tunnel_get_stats(const struct tunnel *t, struct tunnel_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->name = t->conf->name[0] ? t->conf->name : "-";
	st->server = t->name;
	st->state = (int)t->main->state;
	st->reconnects = t->sessions > 1 ? t->sessions - 1 : 0;
	memcpy(st->reconnects_by, t->reconnects_by, sizeof(st->reconnects_by));
	st->keepalives_sent = t->keepalives_sent;
	st->keepalives_missed = t->keepalives_missed;
	st->extra_sessions = t->nextra;
	st->probe = t->probe_last;
	st->probe_why = t->probe_last == -1 ? t->probe_why : NULL;
	st->probe_at = t->probe_at;
	st->loss_cause = recheck_last_loss(t->recheck, &st->loss_why,
	    &st->loss_at);
	st->packets = t->packets_out;
	st->writes = t->sends_out;
	st->last_up = t->ever_up ? wall_of(&t->up_since) : 0;
	st->nforwards = fwds_count(t->fwds);
}

void
tunnel_forward_stats(const struct tunnel *t, size_t i,
    struct forward_stats *st)
{
	fwds_stats(t->fwds, i, t->main->state == L_UP, st);
}

void
tunnel_write_status(const struct tunnel *t, FILE *fp)
{
	const char	*name = t->conf->name[0] ? t->conf->name : "-";
	const char	*loss, *why;
	int64_t		 at;

	fprintf(fp, "tunnel %s %s: %s, %u reconnects, %" PRIu64 " packets "
	    "sent in %" PRIu64 " writes\n", name, t->name,
	    tunnel_state_name((int)t->main->state),
	    t->sessions > 1 ? t->sessions - 1 : 0, t->packets_out,
	    t->sends_out);
	if ((loss = recheck_last_loss(t->recheck, &why, &at)) != NULL)
		fprintf(fp, "tunnel %s last loss: %s: %s (%lld s ago)\n", name,
		    loss, why, (long long)(time(NULL) - at));
	if (t->nextra > 0)
		fprintf(fp, "tunnel %s extra sessions: %u\n", name, t->nextra);
	if (t->probe_last != 0)
		fprintf(fp, "tunnel %s probe: %s%s (%lld s ago)\n", name,
		    t->probe_last == 1 ? "ok" : "failed: ", t->probe_last == 1 ?
		    "" : t->probe_why, (long long)(time(NULL) - t->probe_at));
	fwds_write_status(t->fwds, fp, name);
}

int
tunnel_ready(const struct tunnel *t)
{
	return fwds_ready(t->fwds) && t->main->state == L_UP;
}

unsigned
tunnel_active(const struct tunnel *t)
{
	return fwds_active(t->fwds);
}
