/*
 * Channel opens. libssh2 keeps one channel open in progress per session:
 * each session has one open slot. The -L and -D connections' opens wait in
 * one queue for the tunnel, and each session's slot takes the next when it
 * is free, so a session busy with a slow open does not hold the others up.
 * A keepalive probe of a session goes through its own slot, ahead of the
 * queue.
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
struct open_slot;

/* Reports the opened channel (an endpoint, now the callee's) or why
 * there is none. */
typedef void	open_done_fn(struct endpoint *, const char *why, void *arg);

/* An empty queue; queued(arg) is called when an open joins it, to have a
 * slot take it. NULL on allocation failure. */
struct opens *opens_new(struct event_base *, struct budget *,
	    void (*queued)(void *), void *arg);
/* Fails every queued open with why (the tunnel is going away). */
void	opens_fail_all(struct opens *, const char *why);
/* Frees the queue, emptied by opens_fail_all. */
void	opens_free(struct opens *);
/* Queues a channel open to to, given up after timeout_sec (0: never);
 * NULL on allocation failure. */
struct open_req *open_request(struct opens *, const struct addr_spec *to,
	    int timeout_sec, open_done_fn *done, void *arg);
/* The same, ahead of every open that waits. */
struct open_req *open_request_first(struct opens *, const struct addr_spec *to,
	    int timeout_sec, open_done_fn *done, void *arg);
/* done is not called for r any more. */
void	open_cancel(struct open_req *r);
/* Whether r went to the server (a slot took it). */
int	open_sent(const struct open_req *r);
/* Opens that wait for a slot. */
size_t	opens_waiting(const struct opens *);

/* A session's slot, whose opens call through sc and become channels of
 * set; NULL on allocation failure. */
struct open_slot *slot_new(struct opens *, struct sshcall *sc,
	    struct chans *set);
/* Frees the slot, after slot_session_lost. */
void	slot_free(struct open_slot *);
/* Runs the slot: its open in progress, its probe, then queued opens; -1
 * if the session failed meanwhile. */
int	slot_service(struct open_slot *);
/* The session is gone: the open the server was working on fails
 * ("tunnel lost"), not repeated behind its back; a probe goes. */
void	slot_session_lost(struct open_slot *);
/* Asks for a keepalive probe (a channel type the server refuses at once)
 * unless one is asked for; returns 1 if it asked now. */
int	slot_probe(struct open_slot *);
/* Whether a probe is asked for or in flight. */
int	slot_probing(const struct open_slot *);
/* Milliseconds for which a channel open of ours (not a probe) has held
 * the slot, or -1 if none holds it. An open nobody waits for any more
 * counts only if abandoned_too. */
long	slot_held_ms(const struct open_slot *, int abandoned_too);

#endif
