/*
 * The session's call lock. libssh2 1.10 can hold only one partly sent
 * packet per session: the call that left it must be repeated, and no
 * other call may send, until it completes. Every libssh2 call of the
 * tunnel asks sshcall_may first and reports to sshcall_done after; the
 * holder of a partial packet is recorded as (who, op). A failure of the
 * session is recorded here too, so that whoever called into it can ask
 * sshcall_live whether the session it called is still there to use.
 */
#ifndef TUNNEL_SSHCALL_H
#define TUNNEL_SSHCALL_H

#include <stddef.h>

#include <libssh2.h>
#include <event2/util.h>

struct event_base;
struct sshcall;

enum ssh_op {
	OP_NONE, OP_READ, OP_WRITE, OP_EOF, OP_FREE, OP_OPEN, OP_LISTEN,
	OP_ACCEPT
};

/* A lock with no session yet; pass is run from the loop when a pass is
 * asked for (sshcall_kick). NULL on allocation failure. */
struct sshcall *sshcall_new(struct event_base *,
	    void (*pass)(evutil_socket_t, short, void *), void *arg);
void	sshcall_free(struct sshcall *);
/* Calls go to s from now on. */
void	sshcall_begin(struct sshcall *, LIBSSH2_SESSION *s);
/* The session is gone: forgets it, its holder, its failure and its
 * stop, and any pass asked for. */
void	sshcall_end(struct sshcall *);
/* The session, or NULL between sessions. */
LIBSSH2_SESSION *sshcall_session(const struct sshcall *);

/* Whether who may make the libssh2 call op now. */
int	sshcall_may(struct sshcall *, void *who, enum ssh_op op);
/* Records the outcome of a call: a partial packet makes who its holder.
 * Outside a pass, asks for one. */
void	sshcall_done(struct sshcall *, void *who, enum ssh_op op, int rc);
/* The holder of a partial packet and its op, or NULL. */
void	*sshcall_holder(const struct sshcall *, enum ssh_op *op);

/* Declares the session dead, with libssh2's last error appended; the
 * pass that follows drops it (safe from any callback). */
void	sshcall_fail(struct sshcall *, const char *why);
/* The first failure declared in this session, or NULL. */
const char *sshcall_failure(const struct sshcall *);
/* The tunnel is stopping (the loop was asked to end): no more calls. */
void	sshcall_stop(struct sshcall *);
/*
 * Whether the session the caller called into is still there and fit to
 * use: not failed, not stopped, not dropped. Asked after every call that
 * may have run a callback (a connection's, an open's).
 */
int	sshcall_live(const struct sshcall *);

/* Asks for a pass from the loop (none between sessions). */
void	sshcall_kick(struct sshcall *);
/* A pass runs: new work is seen by it, no kick is needed. */
void	sshcall_in_pass(struct sshcall *, int in_pass);
/* Asks for a pass unless one runs (work done from a callback). */
void	sshcall_poke(struct sshcall *);

/* libssh2's last error message, escaped for logs: it may carry text the
 * server sent. Returns buf. */
const char *ssh_error(LIBSSH2_SESSION *, char *buf, size_t len);

#endif
