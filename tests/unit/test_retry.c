/* Unit tests for --connect-retry's schedule. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/retry.h"

static void
refused_and_unreachable_are_worth_a_retry(void **state)
{
	assert_true(retry_worth(ECONNREFUSED));
	assert_true(retry_worth(ENETUNREACH));
	assert_true(retry_worth(EHOSTUNREACH));
	/* A silent target already had --connect-timeout; a name, a lookup. */
	assert_false(retry_worth(ETIMEDOUT));
	assert_false(retry_worth(ENOENT));
	assert_false(retry_worth(EMFILE));
	assert_false(retry_worth(0));
}

static void
delays_are_jittered_within_bounds(void **state)
{
	uint32_t	rnd = 1;
	long		ms, lo = 1000, hi = 0;
	int		i;

	for (i = 0; i < 10000; i++) {
		ms = retry_delay_ms(0, 60000, retry_rand(&rnd));
		assert_in_range(ms, RETRY_MIN_MS, RETRY_MIN_MS +
		    RETRY_JITTER_MS);
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
	}
	/* The jitter spreads the attempts over the whole interval. */
	assert_true(lo < RETRY_MIN_MS + 10);
	assert_true(hi > RETRY_MIN_MS + RETRY_JITTER_MS - 10);
	assert_int_equal(retry_delay_ms(0, 60000, 0), RETRY_MIN_MS);
	assert_int_equal(retry_delay_ms(0, 60000, RETRY_JITTER_MS),
	    RETRY_MIN_MS + RETRY_JITTER_MS);
}

static void
never_past_the_deadline(void **state)
{
	/* 40 ms left: the last attempt is at the deadline itself. */
	assert_int_equal(retry_delay_ms(5960, 6000, 149), 40);
	assert_int_equal(retry_delay_ms(5999, 6000, 0), 1);
	/* Then it gives up. */
	assert_int_equal(retry_delay_ms(6000, 6000, 0), -1);
	assert_int_equal(retry_delay_ms(7000, 6000, 0), -1);
}

static void
a_hold_of_five_seconds_makes_20_to_50_attempts(void **state)
{
	uint32_t	rnd = 12345;
	uint64_t	now = 1000000, until = now + 5000;
	long		ms;
	int		attempts = 0;

	while ((ms = retry_delay_ms(now, until, retry_rand(&rnd))) >= 0) {
		now += (uint64_t)ms;
		attempts++;
	}
	assert_int_equal(now, until);
	assert_in_range(attempts, 5000 / (RETRY_MIN_MS + RETRY_JITTER_MS),
	    5000 / RETRY_MIN_MS + 1);
}

static void
rand_never_sticks_at_zero(void **state)
{
	uint32_t	s = 0;

	assert_int_not_equal(retry_rand(&s), 0);
	assert_int_not_equal(s, 0);
	assert_int_not_equal(retry_rand(&s), retry_rand(&s));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refused_and_unreachable_are_worth_a_retry),
		cmocka_unit_test(delays_are_jittered_within_bounds),
		cmocka_unit_test(never_past_the_deadline),
		cmocka_unit_test(a_hold_of_five_seconds_makes_20_to_50_attempts),
		cmocka_unit_test(rand_never_sticks_at_zero),
	};

	return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
