/* Unit tests for the Prometheus exposition and JSON string writers, and
 * the HTTP request heads the metrics listener reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "relay/httphead.h"
#include "relay/textfmt.h"

/* What fn wrote, as a malloc'd string. */
static char *
captured(FILE *fp, char **text)
{
	fclose(fp);
	return *text;
}

static void
label_values_are_escaped(void **state)
{
	struct expo_label	 l[2] = { { "relay", "a\"b\\c\nd" },
				    { "forward", "-R 80:h:80" } };
	char			*text = NULL;
	size_t			 len;
	FILE			*fp = open_memstream(&text, &len);

	expo_u64(fp, "relayd_x_total", l, 2, 42);
	expo_u64(fp, "relayd_y", NULL, 0, 0);
	assert_string_equal(captured(fp, &text),
	    "relayd_x_total{relay=\"a\\\"b\\\\c\\nd\",forward=\"-R 80:h:80\"} "
	    "42\nrelayd_y 0\n");
	free(text);
}

static void
invalid_utf8_becomes_replacement(void **state)
{
	char	*text = NULL;
	size_t	 len;
	FILE	*fp = open_memstream(&text, &len);

	expo_escape(fp, "\xc3\xa9|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
	assert_string_equal(captured(fp, &text), "\xc3\xa9|\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd");
	free(text);
}

static void
family_and_histogram(void **state)
{
	struct expo_label	 l = { "relay", "-" };
	const double		 bounds[] = { 0.5, 10 };
	const uint64_t		 counts[] = { 1, 2, 3 };
	char			*text = NULL;
	size_t			 len;
	FILE			*fp = open_memstream(&text, &len);

	expo_family(fp, "relayd_d_seconds", "histogram", "How long.");
	expo_histogram(fp, "relayd_d_seconds", &l, 1, bounds, counts, 2, 1.5);
	assert_string_equal(captured(fp, &text),
	    "# HELP relayd_d_seconds How long.\n"
	    "# TYPE relayd_d_seconds histogram\n"
	    "relayd_d_seconds_bucket{relay=\"-\",le=\"0.5\"} 1\n"
	    "relayd_d_seconds_bucket{relay=\"-\",le=\"10\"} 3\n"
	    "relayd_d_seconds_bucket{relay=\"-\",le=\"+Inf\"} 6\n"
	    "relayd_d_seconds_sum{relay=\"-\"} 1.5\n"
	    "relayd_d_seconds_count{relay=\"-\"} 6\n");
	free(text);
}

static void
json_strings(void **state)
{
	char	*text = NULL;
	size_t	 len;
	FILE	*fp = open_memstream(&text, &len);

	json_string(fp, "a\"b\\c\nd\te\x01\x7f\xc3\xa9\xfe");
	assert_string_equal(captured(fp, &text), "\"a\\\"b\\\\c\\nd\\te"
	    "\\u0001\\u007f\xc3\xa9\xef\xbf\xbd\"");
	free(text);
}

static void
heads(void **state)
{
	struct http_head	 h;
	const char		*get = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n"
				    "\r\nbody";
	char			 big[HTTP_HEAD_MAX + 10];

	assert_int_equal(http_head_parse(get, strlen(get), &h),
	    strlen(get) - 4);
	assert_string_equal(h.method, "GET");
	assert_string_equal(h.path, "/metrics");
	assert_int_equal(h.minor, 1);
	assert_int_equal(http_head_parse("HEAD /healthz HTTP/1.0\n\n", 24,
	    &h), 24);
	assert_string_equal(h.method, "HEAD");
	assert_int_equal(http_head_parse(get, 20, &h), 0);
	assert_int_equal(http_head_parse("GET /x HTTP/1.1\r\nHost", 21, &h), 0);
	assert_int_equal(http_head_parse("GET x HTTP/1.1\r\n\r\n", 18, &h), -1);
	assert_int_equal(http_head_parse("get /x HTTP/1.1\r\n\r\n", 19, &h),
	    -1);
	assert_int_equal(http_head_parse("GET /x HTTP/2.0\r\n\r\n", 19, &h),
	    -1);
	assert_int_equal(http_head_parse("GET /x HTTP/1.1\r\nbare\r\n\r\n",
	    25, &h), -1);
	assert_int_equal(http_head_parse("GET /\x01 HTTP/1.1\r\n", 18, &h),
	    -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
	assert_int_equal(http_head_parse(big, HTTP_HEAD_MAX - 1, &h), 0);
	assert_int_equal(http_head_parse(big, sizeof(big), &h), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_values_are_escaped),
		cmocka_unit_test(invalid_utf8_becomes_replacement),
		cmocka_unit_test(family_and_histogram),
		cmocka_unit_test(json_strings),
		cmocka_unit_test(heads),
	};

	return cmocka_run_group_tests_name("textfmt", tests, NULL, NULL);
}
