/*
 * An SSH tunnel: one libssh2 session to a server, kept up across failures,
 * carrying -R, -L and -D forwards whose connections the relay pump moves.
 */
#ifndef TUNNEL_TUNNEL_H
#define TUNNEL_TUNNEL_H

#include <stddef.h>
#include <stdio.h>

#include "relay/config.h"

struct event_base;
struct tunnel;

/* The libssh2 version relayd was built with, the one loaded if it differs,
 * and whether it is our patched build: "1.10.0", "1.10.0 (running
 * 1.11.1)", "1.11.1, patched: cipher runs". */
void	tunnel_libssh2_version(char *buf, size_t len);
/* Before any tunnel (again is harmless). Returns -1 if libssh2 fails. */
int	tunnel_global_init(void);
void	tunnel_global_exit(void);
/*
 * The privileged step: reads keys and known hosts, binds -L/-D listeners.
 * The tunnel keeps a copy of the configuration. Returns NULL with a
 * one-line message and a sysexits.h code.
 */
struct tunnel *tunnel_new(struct event_base *, const struct tunnel_conf *,
	    char *err, size_t errlen, int *exitcode);
/* The configuration it runs (its own copy). */
const struct tunnel_conf *tunnel_conf(const struct tunnel *);
/* Starts connecting (after privileges are dropped). */
void	tunnel_start(struct tunnel *);
/*
 * Non-zero when the tunnel met a failure that is fatal at first start
 * (host key, authentication, a forward with --exit-on-forward-failure);
 * the loop was asked to stop and the caller exits with this code.
 */
int	tunnel_exit_code(const struct tunnel *);
/* Writes its state, reconnections and each forward's connections. */
void	tunnel_write_status(const struct tunnel *, FILE *);
/* Whether every forward is up (readiness for systemd). */
int	tunnel_ready(const struct tunnel *);
/* Calls hook whenever a forward comes up (one hook per process). */
void	tunnel_set_up_hook(void (*hook)(void));
/* Live connections through the tunnel's forwards. */
unsigned tunnel_active(const struct tunnel *);
/* Stops taking new connections (-L/-D listeners, -R channels). */
void	tunnel_stop_accepting(struct tunnel *);
/* Closes its -L/-D listening sockets and gives their ports back, copies in
 * other processes included (after tunnel_stop_accepting). */
void	tunnel_close_listeners(struct tunnel *);
/* Closes everything. */
void	tunnel_free(struct tunnel *);

#endif
