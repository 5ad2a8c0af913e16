/*
 * What --metrics exposes, in Prometheus's text format: the relay
 * process's families (relays, UDP relays, the process) and the tunnels'
 * (tunnels, forwards), which their own process writes and the relay
 * process appends. Every family is written whole in one place, so the two
 * parts never share one. Also the health both processes report.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "relay/relay.h"
#include "relay/textfmt.h"
#include "tunnel/tunnel.h"

struct relay_fact {
	const char		*name;
	struct relay_stats	 st;
};

/* Every running relay's figures, summed over its loops. */
static struct relay_fact *
relay_facts(const struct daemon *d, size_t *n)
{
	const struct unit	*u;
	struct relay_fact	*f;
	const char		*name;
	size_t			 i = 0;

	*n = units_count(&d->units, UNIT_RELAY);
	if ((f = calloc(*n + 1, sizeof(*f))) == NULL)
		return NULL;
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_RELAY || i == *n)
			continue;
		name = relay_conf(u->obj)->name;
		f[i].name = name[0] ? name : "-";
		relay_get_stats(u->obj, &f[i].st);
		i++;
	}
	*n = i;
	return f;
}

/* One family with one sample per relay (of the kind udp says), the value
 * at offset off of struct relay_stats, a uint64_t (or unsigned). */
static void
relay_family(FILE *fp, const struct relay_fact *f, size_t n, int udp,
    const char *name, const char *type, const char *help, size_t off,
    int is_unsigned)
{
	struct expo_label	l = { "relay", NULL };
	const char		*p;
	size_t			i;

	expo_family(fp, name, type, help);
	for (i = 0; i < n; i++) {
		if (f[i].st.udp != udp)
			continue;
		l.value = f[i].name;
		p = (const char *)&f[i].st + off;
		expo_u64(fp, name, &l, 1, is_unsigned ?
		    *(const unsigned *)(const void *)p :
		    *(const uint64_t *)(const void *)p);
	}
}

#define RS(field)	offsetof(struct relay_stats, field)

static const char *const connect_failure_names[CF_NREASONS] =
    CONNECT_FAILURE_NAMES;

/* A family with one sample per relay and value of a label: in and out. */
static void
relay_dir_family(FILE *fp, const struct relay_fact *f, size_t n, int udp,
    const char *name, const char *help, size_t off_in, size_t off_out)
{
	struct expo_label	l[2] = { { "relay", NULL }, { "direction", NULL } };
	size_t			i;

	expo_family(fp, name, "counter", help);
	for (i = 0; i < n; i++) {
		if (f[i].st.udp != udp)
			continue;
		l[0].value = f[i].name;
		l[1].value = "in";
		expo_u64(fp, name, l, 2, *(const uint64_t *)(const void *)
		    ((const char *)&f[i].st + off_in));
		l[1].value = "out";
		expo_u64(fp, name, l, 2, *(const uint64_t *)(const void *)
		    ((const char *)&f[i].st + off_out));
	}
}

/* The most reasons a family of reason_family has. */
#define REASONS_MAX	8

/* A family of TCP relays' counters by reason: nv (<= REASONS_MAX) values
 * of each relay, taken by get, named by reasons. */
static void
reason_family(FILE *fp, const struct relay_fact *f, size_t n,
    const char *name, const char *help, const char *const *reasons,
    size_t nv, void (*get)(const struct service_counts *, uint64_t *))
{
	struct expo_label	l[2] = { { "relay", NULL },
				    { "reason", NULL } };
	uint64_t		v[REASONS_MAX];
	size_t			i, j;

	expo_family(fp, name, "counter", help);
	for (i = 0; i < n; i++) {
		if (f[i].st.udp)
			continue;
		get(&f[i].st.counts, v);
		l[0].value = f[i].name;
		for (j = 0; j < nv; j++) {
			l[1].value = reasons[j];
			expo_u64(fp, name, l, 2, v[j]);
		}
	}
}

static const char *const refusal_names[] = { "acl", "per-ip", "rate",
    "handshake", "proxy", "tls", "max-conns", "held-expired" };
#define NREFUSALS	(sizeof(refusal_names) / sizeof(refusal_names[0]))
_Static_assert(NREFUSALS <= REASONS_MAX && CF_NREASONS <= REASONS_MAX,
    "more reasons than reason_family takes");

static void
get_refusals(const struct service_counts *c, uint64_t *v)
{
	v[0] = c->refused.denied;
	v[1] = c->refused.per_ip;
	v[2] = c->refused.rate;
	v[3] = c->refused.handshake;
	v[4] = c->refused.proxy;
	v[5] = c->refused.tls;
	v[6] = c->refused.max_conns;
	v[7] = c->holds.expired;
}

static void
get_connect_failures(const struct service_counts *c, uint64_t *v)
{
	memcpy(v, c->connect_failed, sizeof(c->connect_failed));
}

/* A histogram per TCP relay: the buckets at offset buckets of struct
 * service_counts (uint64_t, one more than bounds), the sum at sum. */
static void
histogram_family(FILE *fp, const struct relay_fact *f, size_t n,
    const char *name, const char *help, const double *bounds, size_t nb,
    size_t buckets, size_t sum)
{
	struct expo_label	 l = { "relay", NULL };
	const char		*c;
	size_t			 i;

	expo_family(fp, name, "histogram", help);
	for (i = 0; i < n; i++) {
		if (f[i].st.udp)
			continue;
		l.value = f[i].name;
		c = (const char *)&f[i].st.counts;
		expo_histogram(fp, name, &l, 1, bounds,
		    (const uint64_t *)(const void *)(c + buckets), nb,
		    *(const double *)(const void *)(c + sum));
	}
}

static void
time_families(FILE *fp, const struct relay_fact *f, size_t n)
{
	static const double	connect[] = CONNECT_TIME_BOUNDS;
	static const double	lived[] = CONN_DURATION_BOUNDS;

	histogram_family(fp, f, n, "relayd_relay_connect_duration_seconds",
	    "How long the dial that reached the target took.", connect,
	    sizeof(connect) / sizeof(connect[0]),
	    offsetof(struct service_counts, connect_time),
	    offsetof(struct service_counts, connect_time_sum));
	histogram_family(fp, f, n, "relayd_relay_connection_duration_seconds",
	    "How long closed connections lived.", lived,
	    sizeof(lived) / sizeof(lived[0]),
	    offsetof(struct service_counts, duration),
	    offsetof(struct service_counts, duration_sum));
}

static void
listening_family(FILE *fp, const struct relay_fact *f, size_t n,
    int draining)
{
	struct expo_label	l = { "relay", NULL };
	size_t			i;

	expo_family(fp, "relayd_relay_listening", "gauge", "1 if the relay "
	    "is listening, else 0.");
	for (i = 0; i < n; i++) {
		l.value = f[i].name;
		expo_u64(fp, "relayd_relay_listening", &l, 1,
		    !draining && f[i].st.nsockets > 0);
	}
}

static void
write_relays(FILE *fp, const struct relay_fact *f, size_t n, int draining)
{
	listening_family(fp, f, n, draining);
	relay_family(fp, f, n, 0, "relayd_relay_connections_total", "counter",
	    "Connections accepted (and not refused at once).",
	    RS(counts.total), 0);
	relay_family(fp, f, n, 0, "relayd_relay_connections_active", "gauge",
	    "Connections open now.", RS(counts.active), 1);
	reason_family(fp, f, n, "relayd_relay_refused_total", "Connections "
	    "refused before their target was reached, by reason.",
	    refusal_names, NREFUSALS, get_refusals);
	relay_dir_family(fp, f, n, 0, "relayd_relay_bytes_total", "Bytes "
	    "relayed: in from clients to targets, out back to clients.",
	    RS(counts.bytes_in), RS(counts.bytes_out));
	relay_family(fp, f, n, 0, "relayd_relay_bytes_spliced_total",
	    "counter", "Bytes of both directions moved by splice(2).",
	    RS(counts.bytes_spliced), 0);
	reason_family(fp, f, n, "relayd_relay_connect_failures_total",
	    "Connections whose target was not reached, by reason.",
	    connect_failure_names, CF_NREASONS, get_connect_failures);
	time_families(fp, f, n);
	relay_family(fp, f, n, 1, "relayd_udp_flows_active", "gauge",
	    "UDP flows open now.", RS(udp_counts.open), 1);
	relay_family(fp, f, n, 1, "relayd_udp_flows_total", "counter",
	    "UDP flows opened.", RS(udp_counts.total), 0);
	relay_dir_family(fp, f, n, 1, "relayd_udp_datagrams_total",
	    "Datagrams relayed: in from clients, out as replies.",
	    RS(udp_counts.dgrams_in), RS(udp_counts.dgrams_out));
	relay_dir_family(fp, f, n, 1, "relayd_udp_bytes_total",
	    "Datagram bytes relayed: in from clients, out as replies.",
	    RS(udp_counts.bytes_in), RS(udp_counts.bytes_out));
	relay_family(fp, f, n, 1, "relayd_udp_dropped_total", "counter",
	    "Datagrams dropped (truncated, no flow, send failed).",
	    RS(udp_counts.dropped), 0);
}

static void
write_process(FILE *fp)
{
	struct procstat	ps;

	procstat_read(&ps);
	expo_family(fp, "process_cpu_seconds_total", "counter", "User and "
	    "system CPU time of the relay process, in seconds.");
	expo_double(fp, "process_cpu_seconds_total", NULL, 0, ps.cpu_seconds);
	if (ps.rss_bytes >= 0) {
		expo_family(fp, "process_resident_memory_bytes", "gauge",
		    "Resident memory of the relay process, in bytes.");
		expo_u64(fp, "process_resident_memory_bytes", NULL, 0,
		    (uint64_t)ps.rss_bytes);
	}
	if (ps.open_fds >= 0) {
		expo_family(fp, "process_open_fds", "gauge", "Open file "
		    "descriptors of the relay process.");
		expo_u64(fp, "process_open_fds", NULL, 0,
		    (uint64_t)ps.open_fds);
	}
	if (ps.max_fds >= 0) {
		expo_family(fp, "process_max_fds", "gauge", "Its limit of "
		    "open file descriptors.");
		expo_u64(fp, "process_max_fds", NULL, 0, (uint64_t)ps.max_fds);
	}
	expo_family(fp, "process_start_time_seconds", "gauge", "When the "
	    "relay process started, in seconds since the epoch.");
	expo_double(fp, "process_start_time_seconds", NULL, 0, ps.start_time);
}

char *
metrics_relays_text(const struct daemon *d, const char *health)
{
	struct expo_label	 l = { "version", RELAYD_VERSION };
	struct relay_fact	*f;
	char			*text = NULL;
	size_t			 len = 0, n;
	FILE			*fp;

	if ((f = relay_facts(d, &n)) == NULL)
		return NULL;
	if ((fp = open_memstream(&text, &len)) == NULL) {
		free(f);
		return NULL;
	}
	expo_family(fp, "relayd_build_info", "gauge", "Always 1; the version "
	    "is a label.");
	expo_u64(fp, "relayd_build_info", &l, 1, 1);
	expo_family(fp, "relayd_healthy", "gauge", "1 when every relay "
	    "listens and every forward is up (as /healthz), else 0.");
	expo_u64(fp, "relayd_healthy", NULL, 0, health == NULL);
	write_relays(fp, f, n, d->draining);
	write_process(fp);
	free(f);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

char *
relays_health(const struct daemon *d)
{
	const struct unit	*u;
	struct relay_stats	 st;
	const char		*name;
	char			*why = NULL;

	if (d->draining)
		return strdup("draining: shutting down");
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_RELAY)
			continue;
		relay_get_stats(u->obj, &st);
		if (st.nsockets > 0)
			continue;
		name = relay_conf(u->obj)->name;
		if (asprintf(&why, "relay %s: not listening", name[0] ? name :
		    "-") == -1)
			return strdup("out of memory");
		return why;
	}
	return NULL;
}

/* ------------------------------------------------ in the tunnels' process */

/* The tunnels' running units, with their figures. */
struct tunnel_fact {
	const struct tunnel	*t;
	struct tunnel_stats	 st;
};

static struct tunnel_fact *
tunnel_facts(const struct daemon *d, size_t *n)
{
	const struct unit	*u;
	struct tunnel_fact	*f;
	size_t			 i = 0;

	*n = units_count(&d->units, UNIT_TUNNEL);
	if ((f = calloc(*n + 1, sizeof(*f))) == NULL)
		return NULL;
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_TUNNEL || i == *n)
			continue;
		f[i].t = u->obj;
		tunnel_get_stats(u->obj, &f[i].st);
		i++;
	}
	*n = i;
	return f;
}

void
tunnels_health(const struct daemon *d, char *buf, size_t len)
{
	const struct unit	*u;
	struct tunnel_stats	 st;
	struct forward_stats	 fs;
	size_t			 i;

	snprintf(buf, len, "ok");
	TAILQ_FOREACH(u, &d->units, entry) {
		if (u->kind != UNIT_TUNNEL)
			continue;
		tunnel_get_stats(u->obj, &st);
		for (i = 0; i < st.nforwards; i++) {
			tunnel_forward_stats(u->obj, i, &fs);
			if (!fs.up) {
				snprintf(buf, len, "tunnel %s forward %s: "
				    "down (tunnel %s)", st.name, fs.name,
				    tunnel_state_name(st.state));
				return;
			}
		}
		if (st.state != TUNNEL_NSTATES - 1) {
			snprintf(buf, len, "tunnel %s: %s", st.name,
			    tunnel_state_name(st.state));
			return;
		}
		if (st.probe == -1) {
			snprintf(buf, len, "tunnel %s: probe failed: %s",
			    st.name, st.probe_why);
			return;
		}
	}
}

/* One sample per tunnel, the value at offset off of struct tunnel_stats
 * (a uint64_t, or the int64_t last_up). */
static void
tunnel_family(FILE *fp, const struct tunnel_fact *f, size_t n,
    const char *name, const char *type, const char *help, size_t off)
{
	struct expo_label	l = { "tunnel", NULL };
	size_t			i;

	expo_family(fp, name, type, help);
	for (i = 0; i < n; i++) {
		l.value = f[i].st.name;
		expo_u64(fp, name, &l, 1, *(const uint64_t *)(const void *)
		    ((const char *)&f[i].st + off));
	}
}

#define TS(field)	offsetof(struct tunnel_stats, field)

static void
reconnects_family(FILE *fp, const struct tunnel_fact *f, size_t n)
{
	const char		*name = "relayd_tunnel_reconnects_total";
	struct expo_label	 l[2] = { { "tunnel", NULL },
				    { "cause", NULL } };
	size_t			 i;
	int			 c;

	expo_family(fp, name, "counter", "Main SSH sessions logged in after "
	    "the first, by what ended the session before.");
	for (i = 0; i < n; i++)
		for (c = 0; c < TUNNEL_NCAUSES; c++) {
			l[0].value = f[i].st.name;
			l[1].value = tunnel_cause_name(c);
			expo_u64(fp, name, l, 2, f[i].st.reconnects_by[c]);
		}
}

static void
state_family(FILE *fp, const struct tunnel_fact *f, size_t n)
{
	const char		*name = "relayd_tunnel_state";
	struct expo_label	 l[2] = { { "tunnel", NULL }, { "state", NULL } };
	size_t			 i;
	int			 s;

	expo_family(fp, name, "gauge", "1 for the state the SSH session is "
	    "in, 0 for the others.");
	for (i = 0; i < n; i++)
		for (s = 0; s < TUNNEL_NSTATES; s++) {
			l[0].value = f[i].st.name;
			l[1].value = tunnel_state_name(s);
			expo_u64(fp, name, l, 2, f[i].st.state == s);
		}
}

/* which: 0 up, 1 connections, 2 active, 3 bytes in and out. */
static void
forward_family(FILE *fp, const struct tunnel_fact *f, size_t n,
    const char *name, const char *type, const char *help, int which)
{
	struct expo_label	 l[3] = { { "tunnel", NULL },
				    { "forward", NULL }, { "direction", NULL } };
	struct forward_stats	 fs;
	size_t			 i, j;

	expo_family(fp, name, type, help);
	for (i = 0; i < n; i++)
		for (j = 0; j < f[i].st.nforwards; j++) {
			tunnel_forward_stats(f[i].t, j, &fs);
			l[0].value = f[i].st.name;
			l[1].value = fs.name;
			if (which == 0)
				expo_u64(fp, name, l, 2, (uint64_t)fs.up);
			else if (which == 1)
				expo_u64(fp, name, l, 2, fs.counts.total);
			else if (which == 2)
				expo_u64(fp, name, l, 2, fs.counts.active);
			else {
				l[2].value = "in";
				expo_u64(fp, name, l, 3, fs.counts.bytes_in);
				l[2].value = "out";
				expo_u64(fp, name, l, 3, fs.counts.bytes_out);
			}
		}
}

char *
metrics_tunnels_text(const struct daemon *d)
{
	struct tunnel_fact	*f;
	char			*text = NULL, health[512];
	size_t			 len = 0, n;
	FILE			*fp;

	if ((f = tunnel_facts(d, &n)) == NULL)
		return NULL;
	if ((fp = open_memstream(&text, &len)) == NULL) {
		free(f);
		return NULL;
	}
	tunnels_health(d, health, sizeof(health));
	fprintf(fp, "%s\n", health);
	state_family(fp, f, n);
	reconnects_family(fp, f, n);
	tunnel_family(fp, f, n, "relayd_tunnel_keepalives_sent_total",
	    "counter", "Keepalive probes sent to the server.",
	    TS(keepalives_sent));
	tunnel_family(fp, f, n, "relayd_tunnel_keepalives_missed_total",
	    "counter", "Keepalive intervals in which the up session heard "
	    "nothing from the server.", TS(keepalives_missed));
	tunnel_family(fp, f, n, "relayd_tunnel_extra_sessions", "gauge",
	    "Sessions open beside the main one while slow channel opens "
	    "hold slots.", TS(extra_sessions));
	tunnel_family(fp, f, n, "relayd_tunnel_ssh_packets_sent_total",
	    "counter", "SSH packets sent, every session.", TS(packets));
	tunnel_family(fp, f, n, "relayd_tunnel_ssh_writes_total", "counter",
	    "send(2) calls that carried them.", TS(writes));
	tunnel_family(fp, f, n, "relayd_tunnel_last_connected_timestamp_"
	    "seconds", "gauge", "When the last session logged in, in seconds "
	    "since the epoch (0: never).", TS(last_up));
	forward_family(fp, f, n, "relayd_forward_up", "gauge", "1 if the "
	    "forward is up (a -R forward: the server listens for it).", 0);
	forward_family(fp, f, n, "relayd_forward_connections_total",
	    "counter", "Connections through the forward.", 1);
	forward_family(fp, f, n, "relayd_forward_connections_active", "gauge",
	    "Connections through the forward open now.", 2);
	forward_family(fp, f, n, "relayd_forward_bytes_total", "counter",
	    "Bytes through the forward: in from the side that connected, out "
	    "back to it.", 3);
	free(f);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
