/*
 * A service hands connections to the pump: a relay's listeners, or a tunnel
 * forward. It owns its connections, their counters and how the target side
 * is opened (a TCP or unix dial unless its ops say otherwise).
 */
#ifndef RELAY_SERVICE_H
#define RELAY_SERVICE_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <stdint.h>

#include "relay/addr.h"
#include "relay/endpoint.h"

struct conn;
struct service;
struct event_base;

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
	unsigned		 max_conns;
	TAILQ_HEAD(, conn)	 conns;
	unsigned		 active;
	uint64_t		 total;
	uint64_t		 rejected;
	uint64_t		 bytes_in;	/* of closed connections */
	uint64_t		 bytes_out;
};

/* Prepares an empty service; the caller then sets to and the limits. */
void	service_init(struct service *, struct event_base *,
	    const struct service_ops *);
/*
 * Checks --max-conns for a client about to be accepted: returns 1 if it
 * may proceed, 0 if it was counted and logged as rejected.
 */
int	service_admit(struct service *, const struct sockaddr *, socklen_t);
/* Writes "N active, N total, N rejected, in=N out=N" (bytes of closed
 * and live connections) for status reports. */
void	service_describe(const struct service *, char *buf, size_t len);
/* Closes every connection of the service with reason why. */
void	service_close_all(struct service *, const char *why);

/*
 * Starts a connection from an accepted client endpoint (whose callback it
 * takes over) to to, or the service's target when to is NULL. On failure
 * the client is freed and NULL returned.
 */
struct conn *conn_start(struct service *, struct endpoint *client,
	    const char *client_name, const struct addr_spec *to);
/* Same, from an accepted socket. */
struct conn *conn_start_fd(struct service *, int fd, const struct sockaddr *,
	    socklen_t);
/* The opener's reports: the target endpoint is taken over. */
void	conn_target_ready(struct conn *, struct endpoint *target);
void	conn_target_failed(struct conn *, const char *why);
/* The client side, for openers that answer it first (SOCKS). */
struct endpoint *conn_client(struct conn *);
/* Calls hook after every connection closed (one hook per process). */
void	conn_set_closed_hook(void (*hook)(void));
/* Uses up a connection id, so --fork children's ids stay unique. */
void	conn_skip_id(void);
/* Closes c: the one path that frees it and logs its summary line. */
void	conn_close(struct conn *, const char *why);

#endif
