/*
 * A service hands connections to the pump: a relay's listeners, or a tunnel
 * forward. It owns its connections (relay/conn.h), their counters and how
 * the target side is opened (a TCP or unix dial unless its ops say
 * otherwise). Its bookkeeping lives in relay/conn.c, its admission and
 * refusals in relay/admit.c.
 */
#ifndef RELAY_SERVICE_H
#define RELAY_SERVICE_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <stdint.h>

#include "relay/addr.h"
#include "relay/conn.h"	/* a service's users start its connections */
#include "relay/endpoint.h"

struct acl_rule;
struct iplimit;
struct service;
struct event;
struct event_base;
struct tls_client;
struct route_table;

/* Closed connections by how long they lived (seconds, upper bounds;
 * one bucket more for longer ones), for --metrics. */
#define CONN_DURATION_BOUNDS	{ 0.01, 0.1, 1, 10, 60, 600, 3600 }
#define CONN_DURATION_NBUCKETS	8

/* Time from starting the dial that reached the target to its answer
 * (seconds, upper bounds; one bucket more), for --metrics: from a target
 * on loopback to one across a slow WAN or behind a held retry. */
#define CONNECT_TIME_BOUNDS	{ 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, \
				    0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
#define CONNECT_TIME_NBUCKETS	14

/* Why a connection's target was not reached, as far as the dial tells. */
enum connect_failure {
	CF_REFUSED,		/* ECONNREFUSED, or no unix socket there */
	CF_UNREACHABLE,		/* no route to the network or host */
	CF_TIMEOUT,		/* --connect-timeout passed */
	CF_DNS,			/* the name did not resolve */
	CF_TLS,			/* the TLS handshake with the target */
	CF_OTHER,		/* anything else (resources, a lost tunnel) */
	CF_NREASONS
};
/* Their names in --metrics and --status --json, in the enum's order. */
#define CONNECT_FAILURE_NAMES	{ "refused", "unreachable", "timeout", \
				    "dns", "tls", "other" }

/* Connections refused before a target was opened, by reason. */
struct refusals {
	uint64_t	denied;		/* --allow/--deny */
	uint64_t	per_ip;		/* --max-conns-per-ip, table full */
	uint64_t	rate;		/* --rate */
	uint64_t	handshake;	/* failed or too slow step, or no
					 * room for one (SOCKS, routing) */
	uint64_t	proxy;		/* the same, reading a PROXY header */
	uint64_t	tls;		/* a client's TLS handshake */
	uint64_t	max_conns;	/* --max-conns reached */
	/* The log says at most a few lines a second about them. */
	int64_t		log_sec;
	unsigned	logged;
	uint64_t	quiet;		/* refused without a line */
};

/* Connections held by --connect-retry (counts of this service). */
struct holds {
	unsigned	now;		/* held at this moment */
	uint64_t	total;		/* ever held */
	uint64_t	expired;	/* gave up: "connect retry expired"
					 * (not a connect failure) */
	uint64_t	over;		/* not held: --max-held reached */
};

struct service_ops {
	/*
	 * Starts opening the target side of c towards to, and reports later
	 * (never before returning) with conn_target_ready or
	 * conn_target_failed. Returns a handle for cancel, or NULL when it
	 * could not start (nothing will be reported). NULL: dial to.
	 */
	void	*(*open)(struct service *, struct conn *,
		    const struct addr_spec *to);
	/* Abandons an open in progress; no report follows. */
	void	 (*cancel)(void *handle);
	/* Told after each connection closed (may be NULL). */
	void	 (*closed)(struct service *);
};

struct service {
	const struct service_ops *ops;
	struct event_base	*base;
	const char		*tag;		/* NULL, or shown in conn logs */
	const struct addr_spec	*to;		/* default target */
	int			 connect_timeout;
	int			 idle_timeout;
	struct tls_client	*tls_to;	/* NULL, or TLS to targets */
	/* --max-conns: at most max_conns connections at once (0: no limit)
	 * over every service sharing *conn_slots (a relay's loops, and a
	 * drain waits for them); NULL: none counted. */
	unsigned		 max_conns;
	_Atomic unsigned	*conn_slots;
	TAILQ_HEAD(, conn)	 conns;
	unsigned		 active;
	uint64_t		 total;
	uint64_t		 rejected;
	uint64_t		 bytes_in;	/* of closed connections */
	uint64_t		 bytes_out;
	uint64_t		 bytes_spliced;	/* of in + out */
	/* Closed while their target was being opened, by reason. */
	uint64_t		 connect_failed[CF_NREASONS];
	uint64_t		 connect_time[CONNECT_TIME_NBUCKETS];
	double			 connect_time_sum;	/* seconds */
	uint64_t		 duration[CONN_DURATION_NBUCKETS];
	double			 duration_sum;	/* seconds */
	/* Before the target is opened: who may connect, and a step. */
	const struct acl_rule	*acl;		/* nacl rules, not owned */
	size_t			 nacl;
	struct iplimit		*iplimit;	/* NULL: no per-address limits */
	const struct conn_step	*step;		/* NULL: dial at once */
	int			 handshake_timeout;	/* seconds */
	int			 send_proxy;	/* PROXY version to send, or 0 */
	struct refusals		 refused;
	/* Where the log's few-lines-a-second state lives when several
	 * services share it (a relay's loops); NULL: in refused. */
	struct refusals		*refusal_log;
	struct event		*refusal_flush;	/* says a second's count */
	int			 screens;	/* refuses in a handshake of
						 * its own (SOCKS) */
	/* --connect-retry: a client whose target refuses is held and the
	 * dial repeated for up to connect_retry seconds (0: never), with at
	 * most max_held held at once over every service sharing *held_slots
	 * (a relay's loops; service_init points it at held_own). */
	int			 connect_retry;
	unsigned		 max_held;
	_Atomic unsigned	*held_slots;
	_Atomic unsigned	 held_own;
	struct holds		 holds;
	/* The routes its step picks a target from (relay/route_step.h),
	 * and this loop's count of connections each took. */
	const struct route_table *routes;
	uint64_t		*routed;	/* per route, then "default" */
};

struct service_counts {
	unsigned		 active;
	uint64_t		 total;
	uint64_t		 rejected;
	uint64_t		 bytes_in;	/* closed and live connections */
	uint64_t		 bytes_out;
	uint64_t		 bytes_spliced;	/* of in + out */
	uint64_t		 connect_failed[CF_NREASONS];
	uint64_t		 connect_time[CONNECT_TIME_NBUCKETS];
	double			 connect_time_sum;
	uint64_t		 duration[CONN_DURATION_NBUCKETS];
	double			 duration_sum;
	struct refusals		 refused;	/* the counts only */
	int			 refuses;	/* some service has a reason to */
	struct holds		 holds;
	int			 retries;	/* some service has connect_retry */
};

/* Prepares an empty service; the caller then sets to and the limits. */
void	service_init(struct service *, struct event_base *,
	    const struct service_ops *);
/*
 * Admission of a client about to be accepted (admit.c): takes a
 * --max-conns slot, then checks the access list and (unless a step will
 * tell the real address first) the per-address limits. Returns 1 if it
 * may proceed (holding the slot until service_release), 0 if it was
 * counted and logged as rejected.
 */
int	service_admit(struct service *, const struct sockaddr *, socklen_t);
/* Gives back the --max-conns slot service_admit took. */
void	service_release(struct service *);
/*
 * Admission's last word on the client's final address sa (after a step
 * that may have learnt it): the access list and limits again if there
 * was a step, then a place in the per-address table (*held set to 1;
 * iplimit_release gives it back). Returns NULL, or why it is refused
 * (counted by reason, not yet logged).
 */
const char *service_admit_origin(struct service *, const struct sockaddr *,
	    int *held);
/* Logs a refusal of client, a few lines a second at most; the others
 * are counted in a line said once their second is over. */
void	service_log_refusal(struct service *, const char *client,
	    const char *why);
/* Says the count still owed and stops the log's timer (the service is
 * going away). */
void	service_log_refusals_end(struct service *);
/* Writes "N active, N total, N rejected, in=N out=N spliced=N" (bytes of
 * closed and live connections) for status reports. */
void	service_describe(const struct service *, char *buf, size_t len);
/* Adds the service's counts to *sum (services of one relay in several
 * loops add up to the relay's). */
void	service_count(const struct service *, struct service_counts *sum);
/* Writes counts as service_describe does. */
void	service_counts_describe(const struct service_counts *, char *buf,
	    size_t len);
/* Closes every connection of the service with reason why. */
void	service_close_all(struct service *, const char *why);

#endif
