/*
 * End-to-end probes of -R forwards (--probe). Through a channel of its
 * own, the tunnel connects to the port the server listens on for a
 * forward, as the server's visitors do, and sends a token; the forward
 * must bring the token back to this tunnel as an accepted channel, which
 * is caught here and never reaches the target. A port that some other
 * process or a stale session answers, or that nothing listens on any
 * more, fails the probe.
 */
#ifndef TUNNEL_PROBE_H
#define TUNNEL_PROBE_H

#include "relay/endpoint.h"

struct event_base;
struct opens;
struct probes;

/* What a probe found: the token came back; nothing listens at the
 * address; something else answered; no answer to the open yet. */
enum probe_result { PROBE_OK, PROBE_REFUSED, PROBE_ELSEWHERE, PROBE_PENDING };

/* NULL on allocation failure. */
struct probes *probes_new(struct event_base *, struct opens *,
	    const char *tunnel_name);
void	probes_free(struct probes *);
/* Starts a probe of host:port; *slot receives its result when the round
 * ends (probes_end), why the server's answer to a refused open. -1 if
 * out of memory. */
int	probes_send(struct probes *, const char *host, int port,
	    enum probe_result *slot, char *why, size_t whylen);
/* Ends the round: the results are in their slots; probes not yet
 * answered are PROBE_PENDING, those opened but never caught
 * PROBE_ELSEWHERE. Their channels are closed. */
void	probes_end(struct probes *);
/* Whether an accepted channel now may be a probe's: a token left in the
 * last few seconds and is not back yet. */
int	probes_awaited(const struct probes *);
/*
 * Looks at the first bytes of ep, a channel the server opened (chan_new): a probe's token is
 * answered (the channel closed); anything else, or nothing within a
 * second, goes to visitor with the bytes read put back first.
 */
void	probes_catch(struct probes *, struct endpoint *ep,
	    void (*visitor)(struct endpoint *, void *), void *arg);

#endif
