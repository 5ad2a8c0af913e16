/*
 * A relayed connection (relay/conn.c): its phases from accept to the pump,
 * the reports its service's opener and step give it, and its one close
 * path. A connection belongs to a service (relay/service.h).
 */
#ifndef RELAY_CONN_H
#define RELAY_CONN_H

#include <sys/socket.h>
#include <stddef.h>

#include "relay/addr.h"
#include "relay/endpoint.h"

struct conn;
struct service;
struct tls_client;

/*
 * Where a connection is, in the order it goes. A phase is left only
 * forwards, except HELD and OPENING, which alternate while
 * --connect-retry dials again. Closing is possible from every phase.
 */
enum conn_phase {
	CONN_NEW,		/* made; its step or handshake not begun */
	CONN_STEP,		/* the service's step reads the client */
	CONN_CLIENT_HANDSHAKE,	/* the client endpoint's own set-up (TLS) */
	CONN_OPENING,		/* last checks, then the target is opened */
	CONN_HELD,		/* the target refused: dialled again soon */
	CONN_TARGET_HANDSHAKE,	/* the target endpoint's own set-up (TLS) */
	CONN_PREAMBLE,		/* the target gets its first bytes (a PROXY
				 * header, what the step read) */
	CONN_PUMPING		/* bytes flow both ways */
};

/*
 * A step between accept and dial, run on the client before anything is
 * opened (reading a PROXY header, a TLS handshake). It is bounded by the
 * service's handshake_timeout and ends with conn_step_done, or with
 * conn_refuse when the client fails it.
 */
struct conn_step {
	const char	*name;		/* "PROXY header", for reasons */
	/* Starts on c; returns its state, or NULL when out of memory. */
	void	*(*start)(struct conn *);
	/* The client endpoint is ready (EP_* bits): go on with the step. */
	void	 (*ready)(struct conn *, void *state, int what);
	/* Frees the state (the step ended, or the connection closed). */
	void	 (*free)(void *state);
	/* It tells the client's real address (a PROXY header): the
	 * per-address limits wait for it. Otherwise they apply at accept.
	 * Its refusals are then counted as "proxy", else "handshake". */
	int	 learns_origin;
};

/*
 * Starts a connection from an accepted client endpoint (whose callback it
 * takes over) to to, or the service's target when to is NULL. On failure
 * the client is freed and NULL returned.
 */
struct conn *conn_start(struct service *, struct endpoint *client,
	    const char *client_name, const struct addr_spec *to);
/* Same, from an accepted socket's endpoint (ep wraps fd, whose
 * addresses go to checks, logs and PROXY headers). */
struct conn *conn_start_socket(struct service *, struct endpoint *ep, int fd,
	    const struct sockaddr *, socklen_t);
/* Same, from an accepted socket. */
struct conn *conn_start_fd(struct service *, int fd, const struct sockaddr *,
	    socklen_t);
/* The opener's reports: the target endpoint is taken over. */
void	conn_target_ready(struct conn *, struct endpoint *target);
void	conn_target_failed(struct conn *, const char *why);
/* The service c belongs to. */
struct service *conn_service(struct conn *);
/* The client side, for openers that answer it first (SOCKS). */
struct endpoint *conn_client(struct conn *);
/* Calls hook after every connection closed (one hook per process; it
 * runs in the loop the connection lived in). */
void	conn_set_closed_hook(void (*hook)(void));
/* Uses up a connection id, so --fork children's ids stay unique. */
void	conn_skip_id(void);
/* Closes c: the one path that frees it and logs its summary line. */
void	conn_close(struct conn *, const char *why);
/* Closes c, refused before its target was opened: logged as a refusal
 * (rate-limited), not as a connection. */
void	conn_refuse(struct conn *, const char *why);
/* The same for a client whose TLS handshake failed inside a step. */
void	conn_refuse_tls(struct conn *, const char *why);
/* Ends the service's step: c's target is opened (after the access checks
 * on the address the step may have learnt). */
void	conn_step_done(struct conn *);
/* The client's address as the step learnt it (a PROXY header): used in
 * logs, checks and the PROXY header sent on. */
void	conn_set_origin(struct conn *, const struct sockaddr *src,
	    socklen_t srclen, const struct sockaddr *dst, socklen_t dstlen);
/* The step picked c's target: to (and tls, or NULL) must outlive c; route
 * (or NULL) is named in its summary line. */
void	conn_set_target(struct conn *, const struct addr_spec *to,
	    struct tls_client *tls, const char *route);
/* Bytes the target gets before any from the pump (copied); 0 or -1 when
 * out of memory. */
int	conn_push_target(struct conn *, const void *, size_t);

#endif
