/*
 * The tunnel's session: connect, handshake, host key, authentication, then
 * passes that serve forwards and channels, keepalive probes that notice a
 * silent server, and reconnection with a delay that depends on why the
 * last attempt failed. Everything is non-blocking and driven by the one
 * event loop.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "relay/dial.h"
#include "relay/log.h"
#include "tunnel/auth.h"
#include "tunnel/budget.h"
#include "tunnel/channel.h"
#include "tunnel/chanopen.h"
#include "tunnel/forward.h"
#include "tunnel/hostkey.h"
#include "tunnel/netwatch.h"
#include "tunnel/recheck.h"
#include "tunnel/sendbuf.h"
#include "tunnel/sshcall.h"
#include "tunnel/tunnel.h"
#include "tunnel/tunnel_int.h"

#define LOGIN_GRACE_SEC	30
/* A connect with no answer is given up and made again this often: a
 * silent network costs the server nothing, and fresh SYNs find it soon
 * after it heals instead of after the kernel's doubling SYN retries. */
#define CONNECT_PATIENCE_SEC	10
#define YOUNG_SESSION_SEC	10
#define OPEN_PATIENCE_SEC	150	/* above Linux's SYN retry time */
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

static void	pass(struct tunnel *, int readable);
static void	attempt(struct tunnel *);
static enum backoff_reason lost_reason(struct tunnel *);

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	attempt(arg);
}

static int	libssh2_ready;

void
tunnel_libssh2_version(char *buf, size_t len)
{
	const char	*loaded = libssh2_version(0);

#ifdef LIBSSH2_CIPHER_RUNS
	const char	*patched = ", patched: cipher runs";
#else
	const char	*patched = "";
#endif

	if (loaded == NULL || strcmp(loaded, LIBSSH2_VERSION) == 0)
		snprintf(buf, len, "%s%s", LIBSSH2_VERSION, patched);
	else
		snprintf(buf, len, "%s (running %s)%s", LIBSSH2_VERSION, loaded,
		    patched);
}

int
tunnel_global_init(void)
{
	if (!libssh2_ready && libssh2_init(0) == 0)
		libssh2_ready = 1;
	return libssh2_ready ? 0 : -1;
}

void
tunnel_global_exit(void)
{
	if (libssh2_ready)
		libssh2_exit();
	libssh2_ready = 0;
}

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
	struct tunnel	*t = *abstract;
	ssize_t		 n;

	if (t->drained && !t->sock_dead)
		return -EAGAIN;
	if (t->state == T_HANDSHAKE && t->kex_bytes > TUNNEL_KEX_MAX)
		return -ECONNABORTED;
	if ((n = recv(fd, buf, len, flags)) > 0) {
		t->missed = 0;
		t->rx_bytes += (uint64_t)n;
		if (t->state == T_HANDSHAKE &&
		    (t->kex_bytes += (size_t)n) > TUNNEL_KEX_MAX)
			return -ECONNABORTED;
		quickack(fd);
		return n;
	}
	if (n == 0) {
		t->sock_dead = 1;
		t->sock_errno = 0;
		return -ECONNRESET;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		t->drained = 1;
	else if (errno != EINTR) {
		t->sock_dead = 1;
		t->sock_errno = errno;
	}
	return -errno;
}

/* Sends the batch; see sendbuf_flush. */
static int
flush_out(struct tunnel *t)
{
	if (sendbuf_pending(t->out) == 0)
		return 0;
	t->sends_out++;
	return sendbuf_flush(t->out, t->fd);
}

/* A failed send means the connection is gone, even if nothing reads. */
static void
send_failed(struct tunnel *t, int error)
{
	t->sock_dead = 1;
	t->sock_errno = error;
	sshcall_kick(t->call);
}

/* A packet bigger than the whole batch, which has left: sent as it is. */
static ssize_t
send_direct(struct tunnel *t, int fd, const void *buf, size_t len, int flags)
{
	ssize_t	n;
	int	error;

	t->sends_out++;
	if ((n = send(fd, buf, len, flags | MSG_NOSIGNAL)) >= 0) {
		if ((size_t)n == len)
			t->packets_out++;
		return n;
	}
	error = errno;
	if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR)
		send_failed(t, error);
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
	struct tunnel	*t = *abstract;
	int		 error;

	if (t->sock_dead)
		return -EPIPE;
	if (sendbuf_add(t->out, buf, len) == -1) {
		/* No room: the batch leaves first. */
		switch (flush_out(t)) {
		case -1:
			error = errno;
			send_failed(t, error);
			return -error;
		case 1:
			return -EAGAIN;
		}
		if (sendbuf_add(t->out, buf, len) == -1)
			return send_direct(t, fd, buf, len, flags);
	}
	t->packets_out++;
	sshcall_poke(t->call);
	return (ssize_t)len;
}

static void
arm_events(struct tunnel *t)
{
	int	want_write, want_read = 1;

	if (t->s == NULL)
		return;
	want_write = (libssh2_session_block_directions(t->s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0 ||
	    sendbuf_pending(t->out) > 0;
	/* While a packet is half sent, nothing else may be done: waiting
	 * for input would only spin. */
	if (sshcall_holder(t->call, NULL) != NULL) {
		want_read = 0;
		want_write = 1;
	}
	if (want_read)
		event_add(&t->ev_read, NULL);
	else
		event_del(&t->ev_read);
	if (want_write != t->write_armed) {
		if (want_write)
			event_add(&t->ev_write, NULL);
		else
			event_del(&t->ev_write);
		t->write_armed = want_write;
	}
}

/* Drops the session and everything that lived in it. */
static void
teardown(struct tunnel *t)
{
	dial_cancel(t->dial);
	t->dial = NULL;
	recheck_cancel(t->recheck);
	event_del(&t->ev_keepalive);
	event_del(&t->ev_retry);
	if (t->s == NULL)
		return;
	event_del(&t->ev_read);
	event_del(&t->ev_write);
	t->write_armed = 0;
	fwds_session_down(t->fwds);
	chans_detach_all(t->chans);
	opens_session_lost(t->opens);
	auth_end(t->auth);
	/* With the socket shut and marked dead (no batching, no waiting
	 * for readability), libssh2 frees at once instead of trying to say
	 * goodbye to a server that may be gone. */
	shutdown(t->fd, SHUT_RDWR);
	t->sock_dead = 1;
	if (libssh2_session_free(t->s) != 0)
		log_debug("tunnel %s: session not freed cleanly", t->name);
	close(t->fd);
	sendbuf_clear(t->out);
	t->s = NULL;
	sshcall_end(t->call);
	t->fd = -1;
	t->sock_dead = 0;
	t->drained = 0;
	t->state = T_DOWN;
}

static double
jitter(void)
{
	unsigned int	r;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0.5;
	return (double)r / 4294967296.0;
}

/* Ends the attempt or session and schedules the next one. */
static void
retry_later(struct tunnel *t, enum backoff_reason reason, const char *what,
    const char *why)
{
	struct timeval	tv;
	double		delay;
	int		quiet = reason == BACKOFF_UNREACHABLE &&
			    t->backoff.unreachable > 0;

	if (t->state == T_UP)
		recheck_note_loss(t->recheck, t->cause ? t->cause : "error",
		    why);
	if (t->s != NULL)
		t->ended_by = t->cause ? t->cause : "error";
	t->cause = NULL;
	teardown(t);
	delay = backoff_next(&t->backoff, reason, jitter());
	(quiet ? log_debug : log_warnx)("tunnel %s: %s: %s", t->name, what,
	    why);
	(quiet ? log_debug : log_info)("tunnel %s: next attempt in %g s",
	    t->name, delay);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_assign(&t->ev_retry, t->base, on_retry, t);
	evtimer_add(&t->ev_retry, &tv);
}

/* Drops the up session for cause ("network change", "keepalive",
 * "probe", "server closed") and schedules the next; not from inside a
 * pass. */
static void
lost(struct tunnel *t, const char *cause, const char *why)
{
	t->cause = cause;
	retry_later(t, lost_reason(t), "lost", why);
}

/* recheck.c's verdict. */
static void
on_lost(void *arg, const char *cause, const char *why)
{
	lost(arg, cause, why);
}

/* A failure that the user must fix: fatal until the tunnel was up once. */
static void
refused(struct tunnel *t, int exit_code, const char *why)
{
	if (!t->ever_up) {
		log_warnx("tunnel %s: %s", t->name, why);
		t->exit_code = exit_code;
		teardown(t);
		event_base_loopbreak(t->base);
		return;
	}
	t->cause = "refused";
	retry_later(t, BACKOFF_REFUSED, "refused", why);
}

static void
on_login_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel	*t = arg;

	retry_later(t, BACKOFF_REFUSED, "lost", "login took too long");
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
log_methods(struct tunnel *t)
{
	const char	*kex = libssh2_session_methods(t->s, LIBSSH2_METHOD_KEX);
	const char	*hk = libssh2_session_methods(t->s,
			    LIBSSH2_METHOD_HOSTKEY);
	const char	*comp = libssh2_session_methods(t->s,
			    LIBSSH2_METHOD_COMP_CS);
	char		 out[160], in[160];

	describe_crypt(t->s, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_MAC_CS,
	    out, sizeof(out));
	describe_crypt(t->s, LIBSSH2_METHOD_CRYPT_SC, LIBSSH2_METHOD_MAC_SC,
	    in, sizeof(in));
	/* Each direction is negotiated on its own; they differ only when
	 * the server's preferences say so. */
	if (strcmp(out, in) == 0)
		log_debug("tunnel %s: kex %s, host key %s, %s, compression %s",
		    t->name, kex ? kex : "?", hk ? hk : "?", out,
		    comp ? comp : "?");
	else
		log_debug("tunnel %s: kex %s, host key %s, out: %s, in: %s, "
		    "compression %s", t->name, kex ? kex : "?", hk ? hk : "?",
		    out, in, comp ? comp : "?");
}

static void
step_handshake(struct tunnel *t)
{
	char	err[512], msg[256];
	int	rc;

	rc = libssh2_session_handshake(t->s, t->fd);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return;
	if (rc != 0 && t->kex_bytes > TUNNEL_KEX_MAX) {
		snprintf(err, sizeof(err), "the server sent more than %d KiB "
		    "before the key exchange ended", TUNNEL_KEX_MAX / 1024);
		retry_later(t, BACKOFF_REFUSED, "handshake failed", err);
		return;
	}
	if (rc != 0) {
		snprintf(err, sizeof(err), "%s%s", ssh_error(t->s, msg,
		    sizeof(msg)), rc == LIBSSH2_ERROR_KEX_FAILURE ?
		    hostkeys_kex_hint(t->hostkeys) : "");
		retry_later(t, BACKOFF_REFUSED, "handshake failed", err);
		return;
	}
	log_methods(t);
	if (hostkeys_verify(t->hostkeys, t->s, t->server.host,
	    t->server.port, t->name, err, sizeof(err)) == -1) {
		refused(t, EX_NOPERM, err);
		return;
	}
	t->state = T_AUTH;
	auth_begin(t->auth);
	pass(t, 0);
}

/*
 * A lost session is retried at once. One that logged in and brought every
 * forward up, or lived, proved the server willing: earlier refusals are
 * forgotten, and if such sessions keep dying soon after login they are
 * retried within a second, not backed off. Sessions that keep dying
 * before their forwards are up are the server saying no, and back off.
 */
static enum backoff_reason
lost_reason(struct tunnel *t)
{
	struct timespec	now;
	int		young;

	if (t->state != T_UP)
		return BACKOFF_REFUSED;
	clock_gettime(CLOCK_MONOTONIC, &now);
	young = now.tv_sec - t->up_since.tv_sec < YOUNG_SESSION_SEC;
	t->young_losses = young ? t->young_losses + 1 : 0;
	if (!young || tunnel_ready(t)) {
		backoff_reset(&t->backoff);
		return t->young_losses >= 2 ? BACKOFF_LOST_AGAIN : BACKOFF_LOST;
	}
	return t->young_losses >= 2 ? BACKOFF_REFUSED : BACKOFF_LOST;
}

/*
 * Whether a channel open of ours holds libssh2's one open slot, and with
 * it the probe, for less than a kernel takes to give up on a connect: the
 * server may be connecting to a target that drops SYNs, and owes no byte
 * until then. A silence then is no sign of a dead server.
 */
static int
open_pending(struct tunnel *t)
{
	long	held = opens_slot_held(t->opens);

	return held >= 0 && held < OPEN_PATIENCE_SEC;
}

/*
 * Silence is counted from the connection's first byte on: each tick
 * without a byte from the server is a miss, whether or not a probe could
 * ask for one (none can before login), but while a channel open of ours
 * is pending, for up to OPEN_PATIENCE_SEC.
 */
static void
keepalive_tick(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel	*t = arg;
	char		 why[128];

	recheck_tick(t->recheck);
	if (t->missed > 0 && t->state == T_UP)
		t->keepalives_missed++;
	if (t->missed >= t->conf->keepalive_count) {
		if (t->state == T_UP)
			snprintf(why, sizeof(why), "no answer to %d keepalives",
			    t->missed);
		else
			snprintf(why, sizeof(why), "server silent for %d s "
			    "during login", t->missed * t->conf->keepalive);
		lost(t, "keepalive", why);
		return;
	}
	if (open_pending(t))
		return;
	/* Cleared by any byte from the server; a probe asks for one. */
	t->missed++;
	if (t->state == T_UP && opens_probe(t->opens))
		t->keepalives_sent++;
	sshcall_kick(t->call);
}

static void
became_up(struct tunnel *t)
{
	log_info("tunnel %s: authenticated as %s with %s", t->name, t->user,
	    auth_method(t->auth));
	t->state = T_UP;
	t->ever_up = 1;
	clock_gettime(CLOCK_MONOTONIC, &t->up_since);
	event_del(&t->ev_retry);
	recheck_session_up(t->recheck, t->fd);
	fwds_session_up(t->fwds, t->sessions == 1,
	    recheck_held_until(t->recheck));
	sshcall_kick(t->call);
}

static void
step_auth(struct tunnel *t)
{
	char	err[512];

	switch (auth_step(t->auth, t->s, t->user, err, sizeof(err))) {
	case AUTH_AGAIN:
		return;
	case AUTH_OK:
		became_up(t);
		sshcall_kick(t->call);
		return;
	case AUTH_REFUSED:
		refused(t, EX_NOPERM, err);
		return;
	case AUTH_BAD_KEY:
		refused(t, EX_DATAERR, err);
		return;
	case AUTH_ERROR:
		retry_later(t, BACKOFF_REFUSED, "lost", err);
		return;
	}
}

/*
 * Makes libssh2 process input it has read but not yet handled. A channel
 * read drains everything. Without a channel, a probe's channel open
 * handles a packet per call; its answer is input too, so a pass that
 * began with a probe in flight starts no other (they would never end).
 * Returns 1 if it acted, 0 if not, -1 if the tunnel failed.
 */
static int
drain(struct tunnel *t, int probing)
{
	if (chans_drain(t->chans))
		return 1;
	if (probing || !opens_probe(t->opens))
		return 0;
	return opens_service(t->opens) == -1 ? -1 : 1;
}

/*
 * Serves the session until nothing changes. libssh2 reads the socket for
 * every channel at once, so any call may bring input for a channel
 * already served in this round: rounds repeat while input arrives, is
 * left unprocessed, or bytes move.
 */
static void
step_up(struct tunnel *t)
{
	uint64_t	rx, moved;
	int		round, probing = opens_probing(t->opens), acted;

	for (round = 0; round < SWEEP_ROUNDS; round++) {
		rx = t->rx_bytes;
		moved = chans_moved(t->chans);
		chans_resume(t->chans);
		if (!sshcall_live(t->call))
			return;
		if (opens_service(t->opens) == -1 ||
		    fwds_service(t->fwds) == -1 ||
		    chans_sweep(t->chans) == -1 || chans_reap(t->chans) == -1)
			return;
		acted = 0;
		if (!t->drained && sshcall_holder(t->call, NULL) == NULL &&
		    (acted = drain(t, probing)) == -1)
			return;
		if (sshcall_holder(t->call, NULL) != NULL ||
		    (t->rx_bytes == rx && chans_moved(t->chans) == moved &&
		    (t->drained || !acted)))
			return;
	}
	/* Still busy: yield to the rest of the loop, then carry on. */
	sshcall_kick(t->call);
}

static void
pass(struct tunnel *t, int readable)
{
	const char	*failure;
	char		 why[200];

	if (t->s == NULL)
		return;
	sshcall_in_pass(t->call, 1);
	if (readable)
		t->drained = 0;
	switch (t->state) {
	case T_HANDSHAKE:
		step_handshake(t);
		break;
	case T_AUTH:
		step_auth(t);
		break;
	case T_UP:
		step_up(t);
		break;
	default:
		break;
	}
	/* Handshake and login calls handle one packet each: more may wait. */
	if (t->s != NULL && t->state != T_UP && !t->drained &&
	    !(libssh2_session_block_directions(t->s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND))
		sshcall_kick(t->call);
	if (t->s != NULL && flush_out(t) == -1) {
		t->sock_dead = 1;
		t->sock_errno = errno;
	}
	sshcall_in_pass(t->call, 0);
	failure = sshcall_failure(t->call);
	if (t->s != NULL && (t->sock_dead || failure != NULL)) {
		/* A dead socket is the cause of whatever failed with it. */
		if (t->sock_dead && t->sock_errno != 0)
			snprintf(why, sizeof(why), "%s",
			    strerror(t->sock_errno));
		else if (t->sock_dead)
			snprintf(why, sizeof(why), "server closed the "
			    "connection");
		else
			snprintf(why, sizeof(why), "%s", failure);
		lost(t, t->sock_dead && t->sock_errno == 0 ?
		    "server closed" : "error", why);
		return;
	}
	arm_events(t);
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

/* Dead peers are noticed by the kernel too: keepalives on an idle socket,
 * and a bound on how long sent data may stay unacknowledged. */
static void
tune_socket(struct tunnel *t, int fd)
{
	int	on = 1, idle = t->conf->keepalive, cnt = t->conf->keepalive_count;
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
 * is the tunnel, for these and for recv_cb and send_cb. */
static void *
ssh_alloc(size_t len, void **abstract)
{
	struct tunnel	*t = *abstract;

	return budget_alloc(t->budget, len);
}

static void *
ssh_realloc(void *p, size_t len, void **abstract)
{
	struct tunnel	*t = *abstract;

	return budget_realloc(t->budget, p, len);
}

static void
ssh_free(void *p, void **abstract)
{
	struct tunnel	*t = *abstract;

	budget_release(t->budget, p);
}

static int
new_session(struct tunnel *t)
{
	t->kex_bytes = 0;
	budget_reset(t->budget);
	if ((t->s = libssh2_session_init_ex(ssh_alloc, ssh_free, ssh_realloc,
	    t)) == NULL)
		return -1;
	sshcall_begin(t->call, t->s);
	libssh2_session_set_blocking(t->s, 0);
	set_callbacks(t->s);
	libssh2_session_method_pref(t->s, LIBSSH2_METHOD_KEX, PREF_KEX);
	libssh2_session_method_pref(t->s, LIBSSH2_METHOD_CRYPT_CS, PREF_CIPHER);
	libssh2_session_method_pref(t->s, LIBSSH2_METHOD_CRYPT_SC, PREF_CIPHER);
	libssh2_session_method_pref(t->s, LIBSSH2_METHOD_MAC_CS, PREF_MAC);
	libssh2_session_method_pref(t->s, LIBSSH2_METHOD_MAC_SC, PREF_MAC);
	if (t->conf->compress)
		libssh2_session_flag(t->s, LIBSSH2_FLAG_COMPRESS, 1);
	hostkeys_prefer(t->hostkeys, t->s, t->server.host, t->server.port);
	return 0;
}

static void
on_dialled(int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why, void *arg)
{
	struct tunnel	*t = arg;
	struct timeval	 tv = { LOGIN_GRACE_SEC, 0 };
	struct timeval	 tick = { t->conf->keepalive, 0 };

	t->dial = NULL;
	if (fd == -1) {
		retry_later(t, BACKOFF_UNREACHABLE, "cannot connect", why);
		return;
	}
	t->fd = fd;
	tune_socket(t, fd);
	evtimer_assign(&t->ev_retry, t->base, on_login_deadline, t);
	evtimer_add(&t->ev_retry, &tv);
	t->missed = 0;
	event_add(&t->ev_keepalive, &tick);
	if (new_session(t) == -1) {
		close(fd);
		t->fd = -1;
		retry_later(t, BACKOFF_REFUSED, "lost", "out of memory");
		return;
	}
	if (++t->sessions > 1)
		tunnel_count_reconnect(t);
	t->state = T_HANDSHAKE;
	event_assign(&t->ev_read, t->base, fd, EV_READ | EV_PERSIST, on_read,
	    t);
	event_assign(&t->ev_write, t->base, fd, EV_WRITE | EV_PERSIST,
	    on_write, t);
	pass(t, 0);
}

/* The connect has its own deadline, no longer than a silent server is
 * given: unanswered, it is "cannot connect" and retried within a second;
 * the login deadline and the count of silence start once connected. */
static void
attempt(struct tunnel *t)
{
	int	patience = (t->conf->keepalive_count + 1) * t->conf->keepalive;

	if (patience > CONNECT_PATIENCE_SEC)
		patience = CONNECT_PATIENCE_SEC;
	(t->backoff.unreachable > 0 ? log_debug : log_info)("tunnel %s: "
	    "connecting", t->name);
	t->state = T_CONNECTING;
	if ((t->dial = dial_start(t->base, &t->server, patience,
	    on_dialled, t)) == NULL)
		retry_later(t, BACKOFF_UNREACHABLE, "cannot connect",
		    "out of memory");
}

static void
default_user(struct tunnel *t, const struct tunnel_conf *tc)
{
	struct passwd	*pw;

	if (tc->dest.user[0] != '\0')
		snprintf(t->user, sizeof(t->user), "%s", tc->dest.user);
	else if ((pw = getpwuid(getuid())) != NULL)
		snprintf(t->user, sizeof(t->user), "%s", pw->pw_name);
	else
		snprintf(t->user, sizeof(t->user), "%u", (unsigned)getuid());
}

static int
known_hosts_path(const struct tunnel_conf *tc, char *buf, size_t len)
{
	const char	*home = getenv("HOME");
	struct passwd	*pw;

	if (tc->known_hosts != NULL)
		return snprintf(buf, len, "%s", tc->known_hosts) < (int)len ?
		    0 : -1;
	if (home == NULL && (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	return snprintf(buf, len, "%s/.ssh/known_hosts", home ? home : "/") <
	    (int)len ? 0 : -1;
}

/* The parts each file of the tunnel keeps for it; -1 if out of memory. */
static int
new_parts(struct tunnel *t)
{
	struct recheck_env	re = { t->base, t->name, NULL, &t->rx_bytes,
				    on_lost, t };

	if ((t->call = sshcall_new(t->base, on_kick, t)) == NULL ||
	    (t->budget = budget_new(t->name)) == NULL ||
	    (t->chans = chans_new(t->call)) == NULL ||
	    (t->opens = opens_new(t->base, t->call, t->chans,
	    t->budget)) == NULL)
		return -1;
	re.opens = t->opens;
	return (t->recheck = recheck_new(&re)) == NULL ? -1 : 0;
}

static void
free_parts(struct tunnel *t)
{
	recheck_free(t->recheck);
	if (t->opens != NULL)
		opens_free(t->opens);
	chans_free(t->chans);
	budget_free(t->budget);
	sshcall_free(t->call);
	tunnel_conf_free(t->conf);
	free(t->out);
	free(t);
}

static void
name_server(struct tunnel *t, const struct tunnel_conf *tc)
{
	struct in6_addr	v6;

	default_user(t, tc);
	snprintf(t->name, sizeof(t->name), strchr(tc->dest.host, ':') ?
	    "%s@[%s]:%u" : "%s@%s:%u", t->user, tc->dest.host, tc->dest.port);
	t->server.kind = ADDR_INET;
	snprintf(t->server.host, sizeof(t->server.host), "%s", tc->dest.host);
	t->server.port = tc->dest.port;
	t->server.numeric = inet_pton(AF_INET6, tc->dest.host, &v6) == 1 ||
	    inet_pton(AF_INET, tc->dest.host, &v6) == 1;
}

/* Host keys, the user's keys and the forwards, whose -L and -D listeners
 * are bound now. */
static int
load(struct tunnel *t, char *err, size_t errlen, int *exitcode)
{
	struct fwds_env	 fe = { t->base, t->conf, t->name, t->call, t->chans,
			    t->opens, t->budget };
	char		 path[4096];

	*exitcode = EX_NOINPUT;
	if (known_hosts_path(t->conf, path, sizeof(path)) == -1 ||
	    (t->hostkeys = hostkeys_load(path, t->conf->accept_new_host_key,
	    err, errlen)) == NULL ||
	    (t->auth = auth_load(t->conf, err, errlen, exitcode)) == NULL)
		return -1;
	return (t->fwds = fwds_new(&fe, err, errlen, exitcode)) == NULL ?
	    -1 : 0;
}

struct tunnel *
tunnel_new(struct event_base *base, const struct tunnel_conf *tc, char *err,
    size_t errlen, int *exitcode)
{
	struct tunnel	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	t->base = base;
	t->fd = -1;
	if ((t->out = malloc(sizeof(*t->out))) == NULL ||
	    (t->conf = tunnel_conf_dup(tc)) == NULL || new_parts(t) == -1) {
		free_parts(t);
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	sendbuf_clear(t->out);
	name_server(t, t->conf);
	evtimer_assign(&t->ev_retry, base, on_login_deadline, t);
	event_assign(&t->ev_keepalive, base, -1, EV_PERSIST, keepalive_tick, t);
	if (load(t, err, errlen, exitcode) == -1) {
		tunnel_free(t);
		return NULL;
	}
	return t;
}

/*
 * A network change: while the session is up, recheck.c judges whether it
 * may have cut it. Waiting after a failed connect, a new address or route
 * may be the way to the server, so try now. Refusals keep their delay.
 */
static void
on_netchange(const struct netchange *nc, void *arg)
{
	struct tunnel	*t = arg;
	struct timeval	 now = { 0, 0 };

	if (t->state == T_UP)
		recheck_netchange(t->recheck, nc);
	else if (t->state == T_DOWN && !nc->removed &&
	    t->backoff.unreachable > 0 && evtimer_pending(&t->ev_retry, NULL))
		evtimer_add(&t->ev_retry, &now);
}

void
tunnel_start(struct tunnel *t)
{
	struct timeval	now = { 0, 0 };
	char		err[160];

	evtimer_assign(&t->ev_retry, t->base, on_retry, t);
	evtimer_add(&t->ev_retry, &now);
	/* A failure only logs: keepalives remain. */
	if ((t->netwatch = netwatch_new(t->base, on_netchange, t, err,
	    sizeof(err))) == NULL)
		log_warnx("tunnel %s: not watching network changes (%s); "
		    "keepalives alone notice a changed network", t->name, err);
}

const struct tunnel_conf *
tunnel_conf(const struct tunnel *t)
{
	return t->conf;
}

int
tunnel_exit_code(const struct tunnel *t)
{
	if (t == NULL)
		return 0;
	return t->exit_code != 0 || t->fwds == NULL ? t->exit_code :
	    fwds_exit_code(t->fwds);
}

void
tunnel_set_up_hook(void (*hook)(void))
{
	fwds_set_up_hook(hook);
}

void
tunnel_stop_accepting(struct tunnel *t)
{
	fwds_stop_accepting(t->fwds);
}

void
tunnel_close_listeners(struct tunnel *t)
{
	fwds_close_listeners(t->fwds);
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	teardown(t);
	netwatch_free(t->netwatch);
	opens_fail_all(t->opens, "shutdown");
	fwds_free(t->fwds);
	hostkeys_free(t->hostkeys);
	auth_free(t->auth);
	free_parts(t);
}
