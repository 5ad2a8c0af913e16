/*
 * One SSH session: connect, handshake, host key, login, then passes that
 * serve its channels and its open slot. libssh2 reads and writes through
 * recv_cb and send_cb, which count what the server sends and batch what
 * goes to it. Everything is non-blocking and driven by the one event loop;
 * how a session ends is told to the tunnel, which judges it.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/dial.h"
#include "relay/log.h"
#include "tunnel/auth.h"
#include "tunnel/budget.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/hostkey.h"
#include "tunnel/lane.h"
#include "tunnel/sendbuf.h"
#include "tunnel/sshcall.h"

#define LOGIN_GRACE_SEC	30
#define SWEEP_ROUNDS	8

/*
 * The fastest ciphers and MACs that libssh2 and OpenSSH share. AES runs on
 * AES-NI, hmac-sha2-256 on the SHA extensions (cheaper per byte than
 * sha2-512 there). libssh2 1.10 has only AES-CTR and plain MACs. 1.11.1
 * has encrypt-then-MAC, offered before the plain MACs, and AES-GCM, whose
 * MAC is built in: it measured a little cheaper than aes128-ctr with
 * hmac-sha2-256-etm (3.4 against 3.5 CPU seconds per GiB up, 2.9 against
 * 3.2 down) and faster, so it comes first. 1.11.0 had both, but checked
 * EtM on receive by the outbound MAC and crashed with AES-GCM in an
 * explicit cipher list: left at 1.10's methods. The chacha20-poly1305 of
 * 1.11.1 is never offered: libssh2's own code, with a length underflow
 * that a malicious server can reach in Debian 13's package.
 */
#if LIBSSH2_VERSION_NUM >= 0x010b01 && defined(LIBSSH2_CIPHER_RUNS)
/* LIBSSH2=patched (third_party/libssh2): AES-CTR goes a packet per cipher
 * call, AES-GCM still a block per call, so CTR is the faster by far. */
#define PREF_CIPHER	"aes128-ctr,aes256-ctr,aes192-ctr," \
			"aes128-gcm@openssh.com,aes256-gcm@openssh.com"
#define PREF_MAC	"hmac-sha2-256-etm@openssh.com," \
			"hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512"
#elif LIBSSH2_VERSION_NUM >= 0x010b01
#define PREF_CIPHER	"aes128-gcm@openssh.com,aes256-gcm@openssh.com," \
			"aes128-ctr,aes256-ctr,aes192-ctr"
#define PREF_MAC	"hmac-sha2-256-etm@openssh.com," \
			"hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512"
#else
#define PREF_CIPHER	"aes128-ctr,aes256-ctr,aes192-ctr"
#define PREF_MAC	"hmac-sha2-256,hmac-sha2-512"
#endif
/*
 * Kex with curve25519 first. 1.11.1 adds ext-info-c and
 * kex-strict-c-v00@openssh.com (strict kex, against Terrapin) to any list
 * it is given; 1.11.0 must be asked for ext-info-c, without which the
 * server sends no server-sig-algs and an RSA key signs with ssh-rsa
 * (SHA-1), which OpenSSH 8.8 and later refuse.
 */
#if LIBSSH2_VERSION_NUM == 0x010b00
#define PREF_KEX_EXT	",ext-info-c"
#else
#define PREF_KEX_EXT	""
#endif
#define PREF_KEX	"curve25519-sha256,curve25519-sha256@libssh.org," \
			"ecdh-sha2-nistp256,ecdh-sha2-nistp384," \
			"diffie-hellman-group14-sha256," \
			"diffie-hellman-group16-sha512" PREF_KEX_EXT

static void	pass(struct lane *, int readable);

/*
 * sshd leaves Nagle on for sessions without a pty, so a small reply it
 * sends while an earlier one is unacknowledged waits for our ACK, which
 * delayed ACK holds back up to 40 ms. The kernel falls back to delayed
 * ACKs by itself, so quick ACKs are asked for again after every read.
 */
static void
quickack(int fd)
{
	int	on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
}


/*
 * Counts bytes from the server: any byte proves it alive. Once a read
 * said EAGAIN, none is tried again until the socket is reported readable:
 * every libssh2 call looks for input, and most would find none. Before
 * the key exchange ends, libssh2 keeps every packet of a type it does not
 * know, and nothing has proved who sends them yet: past TUNNEL_KEX_MAX
 * the connection counts as dead.
 */
static ssize_t
recv_cb(libssh2_socket_t fd, void *buf, size_t len, int flags,
    void **abstract)
{
	struct lane	*l = *abstract;
	ssize_t		 n;

	if (l->drained && !l->sock_dead)
		return -EAGAIN;
	if (l->state == L_HANDSHAKE && l->kex_bytes > TUNNEL_KEX_MAX)
		return -ECONNABORTED;
	if ((n = recv(fd, buf, len, flags)) > 0) {
		l->missed = 0;
		l->rx_bytes += (uint64_t)n;
		*l->env.rx_total += (uint64_t)n;
		if (l->state == L_HANDSHAKE &&
		    (l->kex_bytes += (size_t)n) > TUNNEL_KEX_MAX)
			return -ECONNABORTED;
		quickack(fd);
		return n;
	}
	if (n == 0) {
		l->sock_dead = 1;
		l->sock_errno = 0;
		return -ECONNRESET;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		l->drained = 1;
	else if (errno != EINTR) {
		l->sock_dead = 1;
		l->sock_errno = errno;
	}
	return -errno;
}

/* Sends the batch; see sendbuf_flush. */
static int
flush_out(struct lane *l)
{
	if (sendbuf_pending(l->out) == 0)
		return 0;
	(*l->env.sends_out)++;
	return sendbuf_flush(l->out, l->fd);
}

/* A failed send means the connection is gone, even if nothing reads. */
static void
send_failed(struct lane *l, int error)
{
	l->sock_dead = 1;
	l->sock_errno = error;
	sshcall_kick(l->call);
}

/* A packet bigger than the whole batch, which has left: sent as it is. */
static ssize_t
send_direct(struct lane *l, int fd, const void *buf, size_t len, int flags)
{
	ssize_t	n;
	int	error;

	(*l->env.sends_out)++;
	if ((n = send(fd, buf, len, flags | MSG_NOSIGNAL)) >= 0) {
		if ((size_t)n == len)
			(*l->env.packets_out)++;
		return n;
	}
	error = errno;
	if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR)
		send_failed(l, error);
	return -error;
}

/*
 * Packets join the batch that the end of the pass sends (a call outside a
 * pass asks for one). One that does not fit waits for the batch to leave:
 * libssh2 sees EAGAIN and repeats it, as with a full socket.
 */
static ssize_t
send_cb(libssh2_socket_t fd, const void *buf, size_t len, int flags,
    void **abstract)
{
	struct lane	*l = *abstract;
	int		 error;

	if (l->sock_dead)
		return -EPIPE;
	if (sendbuf_add(l->out, buf, len) == -1) {
		/* No room: the batch leaves first. */
		switch (flush_out(l)) {
		case -1:
			error = errno;
			send_failed(l, error);
			return -error;
		case 1:
			return -EAGAIN;
		}
		if (sendbuf_add(l->out, buf, len) == -1)
			return send_direct(l, fd, buf, len, flags);
	}
	(*l->env.packets_out)++;
	sshcall_poke(l->call);
	return (ssize_t)len;
}

static void
arm_events(struct lane *l)
{
	int	want_write, want_read = 1;

	if (l->s == NULL)
		return;
	want_write = (libssh2_session_block_directions(l->s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0 ||
	    sendbuf_pending(l->out) > 0;
	/* While a packet is half sent, nothing else may be done: waiting
	 * for input would only spin. */
	if (sshcall_holder(l->call, NULL) != NULL) {
		want_read = 0;
		want_write = 1;
	}
	if (want_read)
		event_add(&l->ev_read, NULL);
	else
		event_del(&l->ev_read);
	if (want_write != l->write_armed) {
		if (want_write)
			event_add(&l->ev_write, NULL);
		else
			event_del(&l->ev_write);
		l->write_armed = want_write;
	}
}

void
lane_drop(struct lane *l)
{
	dial_cancel(l->dial);
	l->dial = NULL;
	event_del(&l->ev_login);
	event_del(&l->ev_keepalive);
	if (l->s == NULL) {
		l->state = L_DOWN;
		return;
	}
	event_del(&l->ev_read);
	event_del(&l->ev_write);
	l->write_armed = 0;
	chans_detach_all(l->chans);
	slot_session_lost(l->slot);
	auth_end(l->auth);
	/* With the socket shut and marked dead (no batching, no waiting
	 * for readability), libssh2 frees at once instead of trying to say
	 * goodbye to a server that may be gone. */
	shutdown(l->fd, SHUT_RDWR);
	l->sock_dead = 1;
	if (libssh2_session_free(l->s) != 0)
		log_debug("tunnel %s: session not freed cleanly", l->name);
	close(l->fd);
	sendbuf_clear(l->out);
	l->s = NULL;
	sshcall_end(l->call);
	l->fd = -1;
	l->sock_dead = 0;
	l->drained = 0;
	l->state = L_DOWN;
}

/* Tells the tunnel; the lane is not touched after. Returns -1. */
static int
ended(struct lane *l, enum lane_end kind, const char *what, int exit_code,
    const char *why)
{
	struct lane_ending	e = { kind, what, NULL, exit_code, why };

	l->env.ended(l, &e, l->env.arg);
	return -1;
}

void
lane_lost(struct lane *l, const char *cause, const char *why)
{
	struct lane_ending	e = { LANE_LOST, "lost", cause, 0, why };

	l->env.ended(l, &e, l->env.arg);
}

static void
on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct lane	*l = arg;

	l->env.tick(l, l->env.arg);
}

static void
on_login_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)ended(arg, LANE_FAILED, "lost", 0, "login took too long");
}

/* "cipher C, mac M" of one direction. An AEAD cipher (AES-GCM) carries
 * its own MAC, for which libssh2 reports a made-up name. */
static void
describe_crypt(LIBSSH2_SESSION *s, int crypt, int mac, char *buf,
    size_t len)
{
	const char	*c = libssh2_session_methods(s, crypt);
	const char	*m = libssh2_session_methods(s, mac);

	if (c != NULL && (strstr(c, "-gcm@") != NULL ||
	    strstr(c, "poly1305") != NULL))
		m = "(implicit)";
	snprintf(buf, len, "cipher %s, mac %s", c ? c : "?", m ? m : "?");
}

static void
log_methods(struct lane *l)
{
	const char	*kex = libssh2_session_methods(l->s, LIBSSH2_METHOD_KEX);
	const char	*hk = libssh2_session_methods(l->s,
			    LIBSSH2_METHOD_HOSTKEY);
	const char	*comp = libssh2_session_methods(l->s,
			    LIBSSH2_METHOD_COMP_CS);
	char		 out[160], in[160];

	describe_crypt(l->s, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_MAC_CS,
	    out, sizeof(out));
	describe_crypt(l->s, LIBSSH2_METHOD_CRYPT_SC, LIBSSH2_METHOD_MAC_SC,
	    in, sizeof(in));
	/* Each direction is negotiated on its own; they differ only when
	 * the server's preferences say so. */
	if (strcmp(out, in) == 0)
		log_debug("tunnel %s: kex %s, host key %s, %s, compression %s",
		    l->name, kex ? kex : "?", hk ? hk : "?", out,
		    comp ? comp : "?");
	else
		log_debug("tunnel %s: kex %s, host key %s, out: %s, in: %s, "
		    "compression %s", l->name, kex ? kex : "?", hk ? hk : "?",
		    out, in, comp ? comp : "?");
}

static int
step_auth(struct lane *l)
{
	char	err[512];

	switch (auth_step(l->auth, l->s, l->env.user, err, sizeof(err))) {
	case AUTH_AGAIN:
		return 0;
	case AUTH_OK:
		l->state = L_UP;
		event_del(&l->ev_login);
		l->env.up(l, l->env.arg);
		sshcall_kick(l->call);
		return 0;
	case AUTH_REFUSED:
		return ended(l, LANE_REFUSED, "refused", EX_NOPERM, err);
	case AUTH_BAD_KEY:
		return ended(l, LANE_REFUSED, "refused", EX_DATAERR, err);
	case AUTH_ERROR:
	default:
		return ended(l, LANE_FAILED, "lost", 0, err);
	}
}

static int
step_handshake(struct lane *l)
{
	const struct addr_spec	*sv = l->env.server;
	char			 err[512], msg[256];
	int			 rc;

	rc = libssh2_session_handshake(l->s, l->fd);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;
	if (rc != 0 && l->kex_bytes > TUNNEL_KEX_MAX) {
		snprintf(err, sizeof(err), "the server sent more than %d KiB "
		    "before the key exchange ended", TUNNEL_KEX_MAX / 1024);
		return ended(l, LANE_FAILED, "handshake failed", 0, err);
	}
	if (rc != 0) {
		snprintf(err, sizeof(err), "%s%s", ssh_error(l->s, msg,
		    sizeof(msg)), rc == LIBSSH2_ERROR_KEX_FAILURE ?
		    hostkeys_kex_hint(l->env.hostkeys) : "");
		return ended(l, LANE_FAILED, "handshake failed", 0, err);
	}
	log_methods(l);
	if (hostkeys_verify(l->env.hostkeys, l->s, sv->host, sv->port,
	    l->name, err, sizeof(err)) == -1)
		return ended(l, LANE_REFUSED, "refused", EX_NOPERM, err);
	l->state = L_AUTH;
	auth_begin(l->auth);
	return step_auth(l);
}

/*
 * Makes libssh2 process input it has read but not yet handled. A channel
 * read drains everything. Without a channel, a probe's channel open
 * handles a packet per call; its answer is input too, so a pass that
 * began with a probe in flight starts no other (they would never end).
 * Returns 1 if it acted, 0 if not, -1 if the session failed.
 */
static int
drain(struct lane *l, int probing)
{
	if (chans_drain(l->chans))
		return 1;
	if (probing || !slot_probe(l->slot))
		return 0;
	return slot_service(l->slot) == -1 ? -1 : 1;
}

/*
 * Serves the session until nothing changes. libssh2 reads the socket for
 * every channel at once, so any call may bring input for a channel
 * already served in this round: rounds repeat while input arrives, is
 * left unprocessed, or bytes move.
 */
static void
step_up(struct lane *l)
{
	uint64_t	rx, moved;
	int		round, probing = slot_probing(l->slot), acted;

	for (round = 0; round < SWEEP_ROUNDS; round++) {
		rx = l->rx_bytes;
		moved = chans_moved(l->chans);
		chans_resume(l->chans);
		if (!sshcall_live(l->call))
			return;
		if (slot_service(l->slot) == -1 ||
		    (l->env.serve != NULL && l->env.serve(l->env.arg) == -1) ||
		    chans_sweep(l->chans) == -1 || chans_reap(l->chans) == -1)
			return;
		acted = 0;
		if (!l->drained && sshcall_holder(l->call, NULL) == NULL &&
		    (acted = drain(l, probing)) == -1)
			return;
		if (sshcall_holder(l->call, NULL) != NULL ||
		    (l->rx_bytes == rx && chans_moved(l->chans) == moved &&
		    (l->drained || !acted)))
			return;
	}
	/* Still busy: yield to the rest of the loop, then carry on. */
	sshcall_kick(l->call);
}

/* The step of the session's phase; -1 if the lane ended. */
static int
step(struct lane *l)
{
	switch (l->state) {
	case L_HANDSHAKE:
		return step_handshake(l);
	case L_AUTH:
		return step_auth(l);
	case L_UP:
		step_up(l);
		return 0;
	default:
		return 0;
	}
}

/* A dead socket is the cause of whatever failed with it. */
static void
failed(struct lane *l, const char *failure)
{
	struct lane_ending	e = { LANE_LOST, "lost", "error", 0, NULL };
	char			why[200];

	if (l->sock_dead && l->sock_errno != 0)
		snprintf(why, sizeof(why), "%s", strerror(l->sock_errno));
	else if (l->sock_dead) {
		snprintf(why, sizeof(why), "server closed the connection");
		e.cause = "server closed";
	} else
		snprintf(why, sizeof(why), "%s", failure);
	e.why = why;
	l->env.ended(l, &e, l->env.arg);
}

static void
pass(struct lane *l, int readable)
{
	const char	*failure;

	if (l->s == NULL)
		return;
	sshcall_in_pass(l->call, 1);
	if (readable)
		l->drained = 0;
	if (step(l) == -1)
		return;
	/* Handshake and login calls handle one packet each: more may wait. */
	if (l->state != L_UP && !l->drained &&
	    !(libssh2_session_block_directions(l->s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND))
		sshcall_kick(l->call);
	if (flush_out(l) == -1) {
		l->sock_dead = 1;
		l->sock_errno = errno;
	}
	sshcall_in_pass(l->call, 0);
	failure = sshcall_failure(l->call);
	if (l->sock_dead || failure != NULL) {
		failed(l, failure);
		return;
	}
	arm_events(l);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	pass(arg, 1);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	pass(arg, 0);
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	pass(arg, 0);
}

void
lane_kick(struct lane *l)
{
	sshcall_kick(l->call);
}

/* Dead peers are noticed by the kernel too: keepalives on an idle socket,
 * and a bound on how long sent data may stay unacknowledged. */
static void
tune_socket(struct lane *l, int fd)
{
	const struct tunnel_conf *tc = l->env.conf;
	int	on = 1, idle = tc->keepalive, cnt = tc->keepalive_count;
	int	timeout_ms = (idle * cnt > 10 ? idle * cnt : 10) * 1000;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms,
	    sizeof(timeout_ms));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* 1.11.1 deprecates callback_set for callback_set2, which takes a
 * generic function pointer instead of a data pointer. */
static void
set_callbacks(LIBSSH2_SESSION *s)
{
#if LIBSSH2_VERSION_NUM >= 0x010b01
	libssh2_session_callback_set2(s, LIBSSH2_CALLBACK_RECV,
	    (libssh2_cb_generic *)recv_cb);
	libssh2_session_callback_set2(s, LIBSSH2_CALLBACK_SEND,
	    (libssh2_cb_generic *)send_cb);
#else
	libssh2_session_callback_set(s, LIBSSH2_CALLBACK_RECV, (void *)recv_cb);
	libssh2_session_callback_set(s, LIBSSH2_CALLBACK_SEND, (void *)send_cb);
#endif
}

/* libssh2 allocates through the budget; the session's abstract pointer
 * is the lane, for these and for recv_cb and send_cb. */
static void *
ssh_alloc(size_t len, void **abstract)
{
	struct lane	*l = *abstract;

	return budget_alloc(l->env.budget, len);
}

static void *
ssh_realloc(void *p, size_t len, void **abstract)
{
	struct lane	*l = *abstract;

	return budget_realloc(l->env.budget, p, len);
}

static void
ssh_free(void *p, void **abstract)
{
	struct lane	*l = *abstract;

	budget_release(l->env.budget, p);
}

static int
new_session(struct lane *l)
{
	const struct addr_spec	*sv = l->env.server;

	l->kex_bytes = 0;
	if ((l->s = libssh2_session_init_ex(ssh_alloc, ssh_free, ssh_realloc,
	    l)) == NULL)
		return -1;
	sshcall_begin(l->call, l->s);
	libssh2_session_set_blocking(l->s, 0);
	set_callbacks(l->s);
	libssh2_session_method_pref(l->s, LIBSSH2_METHOD_KEX, PREF_KEX);
	libssh2_session_method_pref(l->s, LIBSSH2_METHOD_CRYPT_CS, PREF_CIPHER);
	libssh2_session_method_pref(l->s, LIBSSH2_METHOD_CRYPT_SC, PREF_CIPHER);
	libssh2_session_method_pref(l->s, LIBSSH2_METHOD_MAC_CS, PREF_MAC);
	libssh2_session_method_pref(l->s, LIBSSH2_METHOD_MAC_SC, PREF_MAC);
	if (l->env.conf->compress)
		libssh2_session_flag(l->s, LIBSSH2_FLAG_COMPRESS, 1);
	hostkeys_prefer(l->env.hostkeys, l->s, sv->host, sv->port);
	return 0;
}

static void
on_dialled(int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why, void *arg)
{
	struct lane	*l = arg;
	struct timeval	 tv = { LOGIN_GRACE_SEC, 0 };
	struct timeval	 tick = { l->env.conf->keepalive, 0 };

	l->dial = NULL;
	if (fd == -1) {
		(void)ended(l, LANE_UNREACHABLE, "cannot connect", 0, why);
		return;
	}
	l->fd = fd;
	tune_socket(l, fd);
	evtimer_add(&l->ev_login, &tv);
	/* Silence is counted from here. */
	l->missed = 0;
	l->rx_at_tick = l->rx_bytes;
	l->total_at_tick = *l->env.rx_total;
	event_add(&l->ev_keepalive, &tick);
	if (new_session(l) == -1) {
		close(fd);
		l->fd = -1;
		(void)ended(l, LANE_FAILED, "lost", 0, "out of memory");
		return;
	}
	l->state = L_HANDSHAKE;
	event_assign(&l->ev_read, l->env.base, fd, EV_READ | EV_PERSIST,
	    on_read, l);
	event_assign(&l->ev_write, l->env.base, fd, EV_WRITE | EV_PERSIST,
	    on_write, l);
	pass(l, 0);
}

void
lane_connect(struct lane *l, int patience_sec)
{
	l->state = L_CONNECTING;
	if ((l->dial = dial_start(l->env.base, l->env.server, patience_sec,
	    on_dialled, l)) == NULL)
		(void)ended(l, LANE_UNREACHABLE, "cannot connect", 0,
		    "out of memory");
}

struct lane *
lane_new(const struct lane_env *env, const char *name, struct auth *auth)
{
	struct lane	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->env = *env;
	l->fd = -1;
	l->auth = auth;
	snprintf(l->name, sizeof(l->name), "%s", name);
	evtimer_assign(&l->ev_login, env->base, on_login_deadline, l);
	event_assign(&l->ev_keepalive, env->base, -1, EV_PERSIST, on_keepalive,
	    l);
	if ((l->out = malloc(sizeof(*l->out))) == NULL ||
	    (l->call = sshcall_new(env->base, on_kick, l)) == NULL ||
	    (l->chans = chans_new(l->call)) == NULL ||
	    (l->slot = slot_new(env->opens, l->call, l->chans)) == NULL) {
		lane_free(l);
		return NULL;
	}
	sendbuf_clear(l->out);
	return l;
}

void
lane_free(struct lane *l)
{
	if (l == NULL)
		return;
	lane_drop(l);
	slot_free(l->slot);
	chans_free(l->chans);
	sshcall_free(l->call);
	free(l->out);
	free(l);
}
