/*
 * The channel-open queue. libssh2 keeps one channel open in progress per
 * session, so every open (a -L or -D connection's channel, a keepalive
 * probe) waits its turn here, is served by the pass, and reports its
 * channel or why there is none.
 */
#ifndef TUNNEL_CHANOPEN_H
#define TUNNEL_CHANOPEN_H

#include "relay/addr.h"
#include "relay/endpoint.h"

struct event_base;
struct sshcall;
struct chans;
struct budget;
struct opens;
struct open_req;

/* Reports the opened channel (an endpoint, now the callee's) or why
 * there is none. */
typedef void	open_done_fn(struct endpoint *, const char *why, void *arg);

/* An empty queue whose opens call through sc and become channels of set;
 * NULL on allocation failure. */
struct opens *opens_new(struct event_base *, struct sshcall *sc,
	    struct chans *set, struct budget *);
/* Fails every queued open with why (the tunnel is going away). */
void	opens_fail_all(struct opens *, const char *why);
/* Frees the queue, emptied by opens_fail_all. */
void	opens_free(struct opens *);
/* Queues a channel open to to, given up after timeout_sec (0: never);
 * NULL on allocation failure. */
struct open_req *open_request(struct opens *, const struct addr_spec *to,
	    int timeout_sec, open_done_fn *done, void *arg);
/* done is not called for r any more. */
void	open_cancel(struct open_req *r);

/* Runs the queue; -1 if the session failed meanwhile. */
int	opens_service(struct opens *);
/* The session is gone: opens not yet sent wait for the next one; one the
 * server was already working on fails ("tunnel lost"), probes go. */
void	opens_session_lost(struct opens *);

/* Queues a keepalive probe (a channel type the server refuses at once)
 * unless one is queued; returns 1 if it queued one now. */
int	opens_probe(struct opens *);
/* Whether a probe is queued. */
int	opens_probing(const struct opens *);
/* Seconds for which a channel open of ours (not a probe) has held the
 * session's one open slot, or -1 if none holds it. */
long	opens_slot_held(const struct opens *);

#endif
