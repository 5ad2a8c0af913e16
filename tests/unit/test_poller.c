/* Unit tests for socket endpoints over the edge-triggered poller: what is
 * wanted and ready is reported again until a read uses it up. */
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "relay/endpoint.h"
#include "relay/poller.h"

struct seen {
	int	calls;
	int	what;
	int	read;		/* read in the callback */
	ssize_t	got;		/* what the last read returned */
};

static void
on_ready(struct endpoint *ep, int what, void *arg)
{
	struct seen	*s = arg;
	char		 buf[64];

	s->calls++;
	s->what = what;
	if (s->read)
		s->got = ep->ops->read(ep, buf, sizeof(buf));
	if (s->read && s->got == 0)
		endpoint_want(ep, 0);	/* EOF: as the pump does */
}

/* A few passes of the loop, none waiting. */
static void
spin(struct event_base *base)
{
	int	i;

	for (i = 0; i < 3; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

struct pair {
	struct event_base	*base;
	struct endpoint		*ep;	/* over sv[0] */
	int			 peer;	/* sv[1] */
	struct seen		 seen;
};

static void
pair_open(struct pair *p)
{
	int	sv[2];

	memset(p, 0, sizeof(*p));
	assert_non_null(p->base = event_base_new());
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	p->peer = sv[1];
	p->ep = endpoint_fd_new(p->base, sv[0], NULL, on_ready, &p->seen);
	assert_non_null(p->ep);
}

static void
pair_close(struct pair *p)
{
	p->ep->ops->free(p->ep);
	close(p->peer);
	poller_free(p->base);
	event_base_free(p->base);
}

/* Not read, a readable socket is reported on every pass, as a level-
 * triggered one would be; read short, it is not, until more comes. */
static void
reported_again_until_read(void **state)
{
	struct pair	p;

	pair_open(&p);
	endpoint_want(p.ep, EP_READ);
	assert_int_equal(write(p.peer, "hello", 5), 5);
	spin(p.base);
	assert_true(p.seen.calls >= 2);
	assert_int_equal(p.seen.what, EP_READ);
	p.seen.read = 1;
	spin(p.base);
	assert_int_equal(p.seen.got, 5);
	p.seen.calls = 0;
	spin(p.base);
	assert_int_equal(p.seen.calls, 0);
	assert_int_equal(write(p.peer, "again", 5), 5);
	spin(p.base);
	assert_int_equal(p.seen.calls, 1);
	pair_close(&p);
}

/* Data with the EOF behind it: the short read that takes the data leaves
 * the EOF to read, and it is reported, with EP_HUP, until it is read. */
static void
eof_behind_data_stays_reported(void **state)
{
	struct pair	p;

	pair_open(&p);
	endpoint_want(p.ep, EP_READ);
	assert_int_equal(write(p.peer, "bye", 3), 3);
	assert_int_equal(shutdown(p.peer, SHUT_WR), 0);
	p.seen.read = 1;
	spin(p.base);
	assert_int_equal(p.seen.what, EP_READ | EP_HUP);
	assert_int_equal(p.seen.got, 0);
	assert_int_equal(p.seen.calls, 2);
	pair_close(&p);
}

/* What arrived while nothing was wanted is reported once it is. */
static void
interest_later_gets_what_came(void **state)
{
	struct pair	p;

	pair_open(&p);
	assert_int_equal(write(p.peer, "early", 5), 5);
	spin(p.base);
	assert_int_equal(p.seen.calls, 0);
	p.seen.read = 1;
	endpoint_want(p.ep, EP_READ);
	spin(p.base);
	assert_int_equal(p.seen.calls, 1);
	assert_int_equal(p.seen.got, 5);
	pair_close(&p);
}

/* A socket closed without a word to the set, its number taken by the
 * next one: the new socket is registered and reported on its own. */
static void
a_number_used_again_is_a_new_socket(void **state)
{
	struct pair	p;
	struct seen	seen2 = { .read = 1 };
	struct endpoint	*ep2;
	int		 sv[2];

	pair_open(&p);
	endpoint_want(p.ep, EP_READ);
	p.ep->ops->free(p.ep);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	ep2 = endpoint_fd_new(p.base, sv[0], NULL, on_ready, &seen2);
	assert_non_null(ep2);
	endpoint_want(ep2, EP_READ);
	assert_int_equal(write(p.peer, "old", 3), -1);	/* EPIPE: gone */
	assert_int_equal(write(sv[1], "new", 3), 3);
	spin(p.base);
	assert_int_equal(p.seen.calls, 0);
	assert_int_equal(seen2.calls, 1);
	assert_int_equal(seen2.got, 3);
	ep2->ops->free(ep2);
	close(sv[1]);
	close(p.peer);
	poller_free(p.base);
	event_base_free(p.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reported_again_until_read),
		cmocka_unit_test(eof_behind_data_stays_reported),
		cmocka_unit_test(interest_later_gets_what_came),
		cmocka_unit_test(a_number_used_again_is_a_new_socket),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
