/*
 * SSH channels as pump endpoints, and the set of them a session carries.
 * There is no descriptor per channel: the tunnel's passes tell the pump
 * when a channel may be read or written.
 */
#ifndef TUNNEL_CHANNEL_H
#define TUNNEL_CHANNEL_H

#include <stdint.h>

#include <libssh2.h>

#include "relay/endpoint.h"

struct sshcall;
struct chans;

/* An empty set whose channels call through sc; NULL on allocation
 * failure. */
struct chans *chans_new(struct sshcall *sc);
/* Frees the set (after chans_detach_all: no channel is left). */
void	chans_free(struct chans *);
/* Wraps ch as an endpoint of the set; NULL on allocation failure (ch is
 * then still the caller's). The endpoint's free closes the channel. */
struct endpoint *chan_new(struct chans *, LIBSSH2_CHANNEL *ch);

/* The channel holding a half-sent read or write repeats it first. */
void	chans_resume(struct chans *);
/* Offers readiness once to every channel the pump waits on; -1 if the
 * session failed meanwhile. */
int	chans_sweep(struct chans *);
/* Sends pending EOFs and frees closing channels; -1 if the session
 * failed meanwhile. */
int	chans_reap(struct chans *);
/* Lets libssh2 process buffered input through a zero-length read on a
 * channel; 0 if there is none to read on. */
int	chans_drain(struct chans *);
/* Puts len bytes back in front of what the channel endpoint ep reads
 * next (bytes read to look at them); -1 if out of memory. */
int	chan_unread(struct endpoint *ep, const void *buf, size_t len);
/* Whether the set has no channel, live or closing. */
int	chans_empty(const struct chans *);
/* Channel bytes moved so far, to see progress. */
uint64_t chans_moved(const struct chans *);
/* Detaches every channel from a dying session and tells their owners. */
void	chans_detach_all(struct chans *);

#endif
