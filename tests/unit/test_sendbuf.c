/* Unit tests for the session's batch of outgoing packets. */
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tunnel/sendbuf.h"

static struct sendbuf	sb;
static char		pkt[SENDBUF_SIZE];

static void
fill(char *p, size_t len, unsigned seed)
{
	size_t	i;

	for (i = 0; i < len; i++)
		p[i] = (char)(seed + i * 31 + i / 253);
}

/* Non-blocking stream pair with the smallest buffers the kernel allows. */
static void
pair(int sv[2])
{
	int	small = 4096;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
}

/* Packets are taken while they fit, whole or not at all. */
static void
takes_what_fits(void **state)
{
	sendbuf_clear(&sb);
	assert_int_equal(sendbuf_add(&sb, pkt, 100), 0);
	assert_int_equal(sendbuf_add(&sb, pkt, SENDBUF_SIZE - 100), 0);
	assert_int_equal(sendbuf_pending(&sb), SENDBUF_SIZE);
	assert_int_equal(sendbuf_add(&sb, pkt, 1), -1);
	assert_int_equal(sendbuf_pending(&sb), SENDBUF_SIZE);
	sendbuf_clear(&sb);
	assert_int_equal(sendbuf_pending(&sb), 0);
	assert_int_equal(sendbuf_add(&sb, pkt, SENDBUF_SIZE + 1), -1);
}

/* Reads whatever waits on fd into got; returns the new count. */
static size_t
take(int fd, char *got, size_t have, size_t cap)
{
	ssize_t	n;

	while (have < cap && (n = recv(fd, got + have, cap - have,
	    MSG_DONTWAIT)) > 0)
		have += (size_t)n;
	return have;
}

/*
 * A full socket leaves the rest waiting (1); the room a partial send freed
 * at the front is used again; once the reader drains, every byte arrives
 * exactly once and in order.
 */
static void
a_full_socket_keeps_the_rest(void **state)
{
	static char	got[2 * SENDBUF_SIZE], want[2 * SENDBUF_SIZE];
	size_t		chunk = 20000, wanted = 0, have = 0, room;
	int		sv[2], i, rc;

	pair(sv);
	sendbuf_clear(&sb);
	fill(want, sizeof(want), 3);
	for (i = 0; i < 3; i++, wanted += chunk)
		assert_int_equal(sendbuf_add(&sb, want + wanted, chunk), 0);
	assert_int_equal(sendbuf_add(&sb, want + wanted, chunk), -1);
	assert_int_equal(sendbuf_flush(&sb, sv[0]), 1);
	assert_true(sendbuf_pending(&sb) > 0 && sendbuf_pending(&sb) < wanted);
	/* Only fits once the bytes already sent make room at the front. */
	room = SENDBUF_SIZE - sendbuf_pending(&sb);
	assert_true(room > SENDBUF_SIZE - wanted);
	assert_int_equal(sendbuf_add(&sb, want + wanted, room), 0);
	wanted += room;
	do {
		have = take(sv[1], got, have, sizeof(got));
		rc = sendbuf_flush(&sb, sv[0]);
		assert_int_not_equal(rc, -1);
	} while (rc == 1);
	assert_int_equal(sendbuf_pending(&sb), 0);
	have = take(sv[1], got, have, sizeof(got));
	assert_int_equal(have, wanted);
	assert_memory_equal(got, want, wanted);
	close(sv[0]);
	close(sv[1]);
}

/* A peer gone is an error to handle (EPIPE), never a SIGPIPE. */
static void
a_closed_peer_fails(void **state)
{
	int	sv[2];

	pair(sv);
	close(sv[1]);
	sendbuf_clear(&sb);
	assert_int_equal(sendbuf_add(&sb, pkt, 10), 0);
	assert_int_equal(sendbuf_flush(&sb, sv[0]), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(takes_what_fits),
		cmocka_unit_test(a_full_socket_keeps_the_rest),
		cmocka_unit_test(a_closed_peer_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
