/* Unit tests for suspend detection from CLOCK_BOOTTIME and CLOCK_MONOTONIC. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tunnel/clockjump.h"

static void
first_reading_only_primes(void **state)
{
	struct clockjump	cj = { 0 };

	/* Booted long ago, slept before: a large gap is no news. */
	assert_int_equal(clockjump_feed(&cj, 900000, 100000), 0);
	assert_int_equal(clockjump_feed(&cj, 915000, 115000), 0);
}

static void
clocks_in_step_are_no_suspend(void **state)
{
	struct clockjump	cj = { 0 };
	int64_t			t;

	clockjump_feed(&cj, 5000, 5000);
	for (t = 1; t <= 100; t++)
		assert_int_equal(clockjump_feed(&cj, 5000 + t * 15000 + t % 3,
		    5000 + t * 15000), 0);
}

static void
a_suspend_is_reported_with_its_length(void **state)
{
	struct clockjump	cj = { 0 };

	clockjump_feed(&cj, 10000, 10000);
	/* 15 s of monotonic time, 615 s of boottime: slept 600 s. */
	assert_int_equal(clockjump_feed(&cj, 625000, 25000), 600000);
	/* Reported once: the next tick is back in step. */
	assert_int_equal(clockjump_feed(&cj, 640000, 40000), 0);
}

static void
small_drift_stays_below_the_threshold(void **state)
{
	struct clockjump	cj = { 0 };

	clockjump_feed(&cj, 0, 0);
	assert_int_equal(clockjump_feed(&cj, 15000 + CLOCKJUMP_SEC * 1000,
	    15000), 0);
	assert_int_equal(clockjump_feed(&cj, 30000 + CLOCKJUMP_SEC * 1000 +
	    CLOCKJUMP_SEC * 1000 + 1, 30000), CLOCKJUMP_SEC * 1000 + 1);
}

static void
a_shrinking_gap_is_a_new_baseline(void **state)
{
	struct clockjump	cj = { 0 };

	clockjump_feed(&cj, 20000, 10000);
	assert_int_equal(clockjump_feed(&cj, 21000, 20000), 0);
	/* Measured from the new, smaller gap. */
	assert_int_equal(clockjump_feed(&cj, 35000, 30000), 4000);
}

static void
the_live_clocks_show_no_suspend(void **state)
{
	struct clockjump	cj = { 0 };

	assert_int_equal(clockjump_check(&cj), 0);
	assert_int_equal(clockjump_check(&cj), 0);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(first_reading_only_primes),
		cmocka_unit_test(clocks_in_step_are_no_suspend),
		cmocka_unit_test(a_suspend_is_reported_with_its_length),
		cmocka_unit_test(small_drift_stays_below_the_threshold),
		cmocka_unit_test(a_shrinking_gap_is_a_new_baseline),
		cmocka_unit_test(the_live_clocks_show_no_suspend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
