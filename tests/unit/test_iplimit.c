/* Unit tests for the per-address connection count and token bucket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "tests/unit/sockaddr_of.h"

#include "relay/iplimit.h"


#define SA(x)	((struct sockaddr *)&(x))

static void
conns_per_ip(void **state)
{
	struct iplimit		*l = iplimit_new(2, 0, 100);
	struct sockaddr_storage	 a = sa_of("10.0.0.1"), b = sa_of("10.0.0.2"),
				 a6 = sa_of("::ffff:10.0.0.1");

	assert_non_null(l);
	assert_int_equal(iplimit_check(l, SA(a), 0), IPL_OK);
	assert_int_equal(iplimit_hold(l, SA(a), 0), 0);
	assert_int_equal(iplimit_check(l, SA(a), 0), IPL_OK);
	/* The same client through a dual-stack listener. */
	assert_int_equal(iplimit_hold(l, SA(a6), 0), 0);
	assert_int_equal(iplimit_check(l, SA(a), 0), IPL_TOO_MANY);
	assert_int_equal(iplimit_check(l, SA(b), 0), IPL_OK);
	iplimit_release(l, SA(a));
	assert_int_equal(iplimit_check(l, SA(a), 0), IPL_OK);
	iplimit_release(l, SA(a));
	/* Without a rate, an address with no connection is forgotten. */
	assert_int_equal(iplimit_size(l), 1);
	iplimit_free(l);
}

static void
token_bucket(void **state)
{
	struct iplimit		*l = iplimit_new(0, 3, 100);
	struct sockaddr_storage	 a = sa_of("2001:db8::1"),
				 b = sa_of("2001:db8::2");
	int			 i;

	for (i = 0; i < 3; i++)
		assert_int_equal(iplimit_check(l, SA(a), 1000), IPL_OK);
	assert_int_equal(iplimit_check(l, SA(a), 1000), IPL_RATE);
	assert_int_equal(iplimit_check(l, SA(a), 1100), IPL_RATE);
	/* Others have their own bucket. */
	assert_int_equal(iplimit_check(l, SA(b), 1100), IPL_OK);
	/* 3 per second: one token every 333 ms. */
	assert_int_equal(iplimit_check(l, SA(a), 1334), IPL_OK);
	assert_int_equal(iplimit_check(l, SA(a), 1334), IPL_RATE);
	/* A long silence refills up to the burst, not beyond. */
	for (i = 0; i < 3; i++)
		assert_int_equal(iplimit_check(l, SA(a), 60000), IPL_OK);
	assert_int_equal(iplimit_check(l, SA(a), 60000), IPL_RATE);
	/* A clock that goes back changes nothing. */
	assert_int_equal(iplimit_check(l, SA(a), 10), IPL_RATE);
	iplimit_free(l);
}

static void
bounded_table(void **state)
{
	struct iplimit		*l = iplimit_new(1, 1, 4);
	struct sockaddr_storage	 s[6];
	char			 host[32];
	int			 i;

	for (i = 0; i < 6; i++) {
		snprintf(host, sizeof(host), "192.0.2.%d", i + 1);
		s[i] = sa_of(host);
	}
	/* Four busy clients fill it: a fifth cannot be tracked. */
	for (i = 0; i < 4; i++) {
		assert_int_equal(iplimit_check(l, SA(s[i]), 0), IPL_OK);
		assert_int_equal(iplimit_hold(l, SA(s[i]), 0), 0);
	}
	assert_int_equal(iplimit_check(l, SA(s[4]), 0), IPL_FULL);
	assert_int_equal(iplimit_hold(l, SA(s[4]), 0), -1);
	/* One leaves, but its bucket is not yet full: still kept. */
	iplimit_release(l, SA(s[1]));
	assert_int_equal(iplimit_check(l, SA(s[4]), 500), IPL_FULL);
	/* A second later it holds nothing worth keeping. */
	assert_int_equal(iplimit_check(l, SA(s[4]), 1000), IPL_OK);
	assert_int_equal(iplimit_size(l), 4);
	/* s[1] starts afresh. */
	iplimit_release(l, SA(s[0]));
	assert_int_equal(iplimit_check(l, SA(s[1]), 2000), IPL_OK);
	assert_int_equal(iplimit_size(l), 4);
	iplimit_free(l);
}

static void
unix_clients_unlimited(void **state)
{
	struct iplimit	*l = iplimit_new(1, 1, 1);
	struct sockaddr	 un = { .sa_family = AF_UNIX };
	int		 i;

	for (i = 0; i < 5; i++) {
		assert_int_equal(iplimit_check(l, &un, 0), IPL_OK);
		assert_int_equal(iplimit_hold(l, &un, 0), 0);
	}
	assert_int_equal(iplimit_size(l), 0);
	iplimit_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conns_per_ip),
		cmocka_unit_test(token_bucket),
		cmocka_unit_test(bounded_table),
		cmocka_unit_test(unix_clients_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
