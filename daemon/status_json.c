/*
 * relayd --status --json: the facts of --metrics as one JSON document
 * with stable keys (doc/relayd.8). The tunnels' process writes the
 * "tunnels" array; the relay process writes the rest around it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "relay/relay.h"
#include "relay/textfmt.h"
#include "tunnel/tunnel.h"

static void
json_counts(FILE *fp, const struct service_counts *c)
{
	fprintf(fp, "\"connections_active\":%u,\"connections_total\":%" PRIu64
	    ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64, c->active,
	    c->total, c->bytes_in, c->bytes_out);
}

/* "connect_failures": their sum, then each reason's count. */
static void
json_connect_failures(FILE *fp, const uint64_t *v)
{
	static const char *const names[CF_NREASONS] = CONNECT_FAILURE_NAMES;
	uint64_t		 sum = 0;
	size_t			 i;

	for (i = 0; i < CF_NREASONS; i++)
		sum += v[i];
	fprintf(fp, "\"connect_failures\":%" PRIu64 ",\"connect_failures_by_"
	    "reason\":{", sum);
	for (i = 0; i < CF_NREASONS; i++)
		fprintf(fp, "%s\"%s\":%" PRIu64, i ? "," : "", names[i], v[i]);
	fputc('}', fp);
}

static void
json_relay(FILE *fp, const struct relay *r, int draining)
{
	const char		*name = relay_conf(r)->name;
	const struct refusals	*no;
	struct relay_stats	 st;
	char			 addrs[512], *a, *save = NULL;
	int			 first = 1;

	relay_get_stats(r, &st);
	relay_addrs(r, addrs, sizeof(addrs));
	fputs("{\"name\":", fp);
	json_string(fp, name[0] ? name : "-");
	fputs(",\"addresses\":[", fp);
	for (a = strtok_r(addrs, " ", &save); a != NULL;
	    a = strtok_r(NULL, " ", &save), first = 0) {
		fputs(first ? "" : ",", fp);
		json_string(fp, a);
	}
	fprintf(fp, "],\"listening\":%s,\"udp\":%s,", !draining &&
	    st.nsockets > 0 ? "true" : "false", st.udp ? "true" : "false");
	if (st.udp) {
		fprintf(fp, "\"flows_active\":%u,\"flows_total\":%" PRIu64
		    ",\"datagrams_in\":%" PRIu64 ",\"datagrams_out\":%" PRIu64
		    ",\"dropped\":%" PRIu64 ",\"bytes_in\":%" PRIu64
		    ",\"bytes_out\":%" PRIu64 "}", st.udp_counts.open,
		    st.udp_counts.total, st.udp_counts.dgrams_in,
		    st.udp_counts.dgrams_out, st.udp_counts.dropped,
		    st.udp_counts.bytes_in, st.udp_counts.bytes_out);
		return;
	}
	no = &st.counts.refused;
	json_counts(fp, &st.counts);
	fprintf(fp, ",\"bytes_spliced\":%" PRIu64 ",", st.counts.bytes_spliced);
	json_connect_failures(fp, st.counts.connect_failed);
	fprintf(fp, ",\"refused\":{\"acl\":%" PRIu64 ",\"per_ip\":%" PRIu64
	    ",\"rate\":%" PRIu64 ",\"handshake\":%" PRIu64 ",\"proxy\":%"
	    PRIu64 ",\"tls\":%" PRIu64 ",\"max_conns\":%" PRIu64
	    ",\"held_expired\":%" PRIu64 "}}", no->denied, no->per_ip,
	    no->rate, no->handshake, no->proxy, no->tls, no->max_conns,
	    st.counts.holds.expired);
}

char *
status_json(const struct daemon *d, const char *tunnels, const char *health)
{
	const struct unit	*u;
	struct procstat		 ps;
	char			*text = NULL;
	size_t			 len = 0;
	int			 first = 1;
	FILE			*fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	procstat_read(&ps);
	fputs("{\"version\":", fp);
	json_string(fp, RELAYD_VERSION);
	fprintf(fp, ",\"pid\":%ld,\"start_time\":%.3f,\"healthy\":%s,"
	    "\"reason\":", (long)getpid(), ps.start_time, health == NULL ?
	    "true" : "false");
	if (health != NULL)
		json_string(fp, health);
	else
		fputs("null", fp);
	fputs(",\"relays\":[", fp);
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_RELAY)
			continue;
		fputs(first ? "" : ",", fp);
		json_relay(fp, u->obj, d->draining);
		first = 0;
	}
	fprintf(fp, "],\"tunnels\":%s}\n", tunnels != NULL ? tunnels : "[]");
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ------------------------------------------------ in the tunnels' process */

/* "reconnects_by_cause", "keepalives_sent", "keepalives_missed",
 * "extra_sessions", "probe" and "last_loss" (null before the first). */
static void
json_tunnel_losses(FILE *fp, const struct tunnel_stats *st)
{
	int	c;

	fputs(",\"reconnects_by_cause\":{", fp);
	for (c = 0; c < TUNNEL_NCAUSES; c++) {
		fputs(c ? "," : "", fp);
		json_string(fp, tunnel_cause_name(c));
		fprintf(fp, ":%" PRIu64, st->reconnects_by[c]);
	}
	fprintf(fp, "},\"keepalives_sent\":%" PRIu64 ",\"keepalives_missed\":%"
	    PRIu64 ",\"extra_sessions\":%u,\"probe\":",
	    st->keepalives_sent, st->keepalives_missed, st->extra_sessions);
	if (st->probe == 0)
		fputs("null", fp);
	else {
		fprintf(fp, "{\"ok\":%s,\"why\":", st->probe == 1 ? "true" :
		    "false");
		if (st->probe_why != NULL)
			json_string(fp, st->probe_why);
		else
			fputs("null", fp);
		fprintf(fp, ",\"at\":%" PRId64 "}", st->probe_at);
	}
	fputs(",\"last_loss\":", fp);
	if (st->loss_cause == NULL) {
		fputs("null", fp);
		return;
	}
	fputs("{\"cause\":", fp);
	json_string(fp, st->loss_cause);
	fputs(",\"why\":", fp);
	json_string(fp, st->loss_why);
	fprintf(fp, ",\"at\":%" PRId64 "}", st->loss_at);
}

static void
json_tunnel(FILE *fp, const struct tunnel *t)
{
	struct tunnel_stats	st;
	struct forward_stats	fs;
	size_t			i;

	tunnel_get_stats(t, &st);
	fputs("{\"name\":", fp);
	json_string(fp, st.name);
	fputs(",\"server\":", fp);
	json_string(fp, st.server);
	fprintf(fp, ",\"state\":\"%s\",\"reconnects\":%u,\"packets_sent\":%"
	    PRIu64 ",\"writes\":%" PRIu64 ",\"last_connected\":",
	    tunnel_state_name(st.state), st.reconnects, st.packets, st.writes);
	if (st.last_up > 0)
		fprintf(fp, "%" PRId64, st.last_up);
	else
		fputs("null", fp);
	json_tunnel_losses(fp, &st);
	fputs(",\"forwards\":[", fp);
	for (i = 0; i < st.nforwards; i++) {
		tunnel_forward_stats(t, i, &fs);
		fputs(i ? ",{\"name\":" : "{\"name\":", fp);
		json_string(fp, fs.name);
		fprintf(fp, ",\"up\":%s,\"port\":", fs.up ? "true" : "false");
		if (fs.port > 0)
			fprintf(fp, "%d,", fs.port);
		else
			fputs("null,", fp);
		json_counts(fp, &fs.counts);
		fputc('}', fp);
	}
	fputs("]}", fp);
}

char *
json_tunnels_text(const struct daemon *d)
{
	const struct unit	*u;
	char			*text = NULL, health[512];
	size_t			 len = 0;
	int			 first = 1;
	FILE			*fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	tunnels_health(d, health, sizeof(health));
	fprintf(fp, "%s\n[", health);
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_TUNNEL)
			continue;
		fputs(first ? "" : ",", fp);
		json_tunnel(fp, u->obj);
		first = 0;
	}
	fputc(']', fp);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
