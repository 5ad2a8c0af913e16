/* A tunnel's figures for --metrics and --status --json. */
#include <string.h>
#include <time.h>

#include "tunnel/tunnel.h"
#include "tunnel/tunnel_int.h"

const char *
tunnel_state_name(int state)
{
	static const char *const names[TUNNEL_NSTATES] = { "down",
	    "connecting", "handshaking", "authenticating", "up" };

	return state >= 0 && state < TUNNEL_NSTATES ? names[state] : "?";
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
	st->state = (int)t->state;
	st->reconnects = t->sessions > 1 ? t->sessions - 1 : 0;
	st->packets = t->packets_out;
	st->writes = t->sends_out;
	st->last_up = t->ever_up ? wall_of(&t->up_since) : 0;
	st->nforwards = t->nfwds;
}

/* -R is up once the server listens for it; -L and -D while they listen
 * here and the session they need is up. */
void
tunnel_forward_stats(const struct tunnel *t, size_t i,
    struct forward_stats *st)
{
	const struct fwd	*f = &t->fwds[i];

	memset(st, 0, sizeof(*st));
	st->name = f->name;
	if (f->spec->kind == FWD_REMOTE) {
		st->up = t->state == T_UP && f->state == FWD_UP;
		st->port = st->up ? f->bound_port : 0;
	} else
		st->up = t->state == T_UP && f->local != NULL;
	service_count(&f->svc, &st->counts);
}
