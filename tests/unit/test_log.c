/* Unit tests for escaping peer-supplied bytes before they are logged. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "relay/log.h"

static void
escapes_what_could_forge_lines(void **state)
{
	char	out[64];

	assert_string_equal(log_escape(out, sizeof(out), "ok text", 7),
	    "ok text");
	assert_string_equal(log_escape(out, sizeof(out), "a\nrelayd: x", 11),
	    "a\\x0arelayd: x");
	assert_string_equal(log_escape(out, sizeof(out), "\r\t\x1b[31m", 7),
	    "\\x0d\\x09\\x1b[31m");
	assert_string_equal(log_escape(out, sizeof(out), "nul\0byte", 8),
	    "nul\\x00byte");
	assert_string_equal(log_escape(out, sizeof(out), "back\\slash", 10),
	    "back\\x5cslash");
	assert_string_equal(log_escape(out, sizeof(out), "\xc3\xa9\x7f", 3),
	    "\\xc3\\xa9\\x7f");
}

static void
truncates_without_splitting_an_escape(void **state)
{
	char	out[8];

	assert_string_equal(log_escape(out, sizeof(out), "abcdefghij", 10),
	    "abcdefg");
	assert_string_equal(log_escape(out, sizeof(out), "abcde\n", 6),
	    "abcde");
	assert_string_equal(log_escape(out, 1, "abc", 3), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes_what_could_forge_lines),
		cmocka_unit_test(truncates_without_splitting_an_escape),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
