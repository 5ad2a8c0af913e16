/* Unit tests for retry delays. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tunnel/backoff.h"

static void
refusals_double_to_a_minute(void **state)
{
	struct backoff	b = { 0 };
	const double	want[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };
	size_t		i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.5),
		    want[i], 1e-9);
}

static void
jitter_stays_within_twenty_percent(void **state)
{
	struct backoff	b = { .refusals = 10 };

	assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.0), 48.0, 1e-9);
	assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.999999), 72.0,
	    1e-3);
	b.refusals = 0;
	/* Never below a second, whatever the jitter. */
	assert_true(backoff_next(&b, BACKOFF_REFUSED, 0.0) >= 1.0);
}

static void
unreachable_is_retried_at_most_a_second_apart(void **state)
{
	struct backoff	b = { 0 };
	const double	want[] = { 0.25, 0.5, 1, 1, 1 };
	size_t		i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_float_equal(backoff_next(&b, BACKOFF_UNREACHABLE, 0.9),
		    want[i], 1e-9);
	/* Refusal history is kept apart from unreachability. */
	assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.5), 1.0, 1e-9);
}

static void
lost_session_reconnects_at_once_and_reset_forgets(void **state)
{
	struct backoff	b = { 0 };

	backoff_next(&b, BACKOFF_REFUSED, 0.5);
	backoff_next(&b, BACKOFF_REFUSED, 0.5);
	assert_float_equal(backoff_next(&b, BACKOFF_LOST, 0.5), 0.0, 1e-9);
	backoff_reset(&b);
	assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.5), 1.0, 1e-9);
}

static void
lost_again_is_retried_at_most_a_second_apart(void **state)
{
	struct backoff	b = { 0 };
	const double	want[] = { 0.25, 0.5, 1, 1 };
	size_t		i;

	backoff_next(&b, BACKOFF_UNREACHABLE, 0.5);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_float_equal(backoff_next(&b, BACKOFF_LOST_AGAIN, 0.5),
		    want[i], 1e-9);
	/* The attempt after it is unreachable afresh, and a session that
	 * lived starts the quick retries over. */
	assert_int_equal(b.unreachable, 0);
	assert_float_equal(backoff_next(&b, BACKOFF_LOST, 0.5), 0.0, 1e-9);
	assert_float_equal(backoff_next(&b, BACKOFF_LOST_AGAIN, 0.5), 0.25,
	    1e-9);
	/* A success forgets refusals but not the run of quick losses. */
	backoff_next(&b, BACKOFF_REFUSED, 0.5);
	backoff_reset(&b);
	assert_float_equal(backoff_next(&b, BACKOFF_REFUSED, 0.5), 1.0, 1e-9);
	assert_float_equal(backoff_next(&b, BACKOFF_LOST_AGAIN, 0.5), 0.5,
	    1e-9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refusals_double_to_a_minute),
		cmocka_unit_test(jitter_stays_within_twenty_percent),
		cmocka_unit_test(unreachable_is_retried_at_most_a_second_apart),
		cmocka_unit_test(lost_session_reconnects_at_once_and_reset_forgets),
		cmocka_unit_test(lost_again_is_retried_at_most_a_second_apart),
	};

	return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
