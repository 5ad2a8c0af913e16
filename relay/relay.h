/* A relay: its listeners and the connections they accepted. */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stddef.h>
#include <sys/types.h>

#include "relay/config.h"

struct event_base;
struct relay;

/*
 * Binds every listener of conf (the privileged step); accepting starts with
 * relay_start. Returns NULL with a one-line message and a sysexits.h code.
 */
struct relay *relay_new(struct event_base *, const struct relay_conf *conf,
	    char *err, size_t errlen, int *exitcode);
/* Starts accepting and logs each listening address. */
void	relay_start(struct relay *);
/* Stops accepting; live connections go on. */
void	relay_stop_accepting(struct relay *);
/* Live connections (or --fork children). */
unsigned relay_active(const struct relay *);
/* Stops accepting and closes every connection ("end=shutdown"). */
void	relay_stop(struct relay *);
/* Frees a stopped relay. */
void	relay_free(struct relay *);
/* Reaps exited --fork children; call on SIGCHLD. */
void	relay_reap_children(void);
/* Asks every --fork child to stop; call when the daemon exits. */
void	relay_kill_children(void);

#endif
