/* Unit tests for SOCKS5 greeting and request parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tunnel/socks.h"

static void
greeting(void **state)
{
	const uint8_t	ok[] = { 5, 2, 2, 0 }, noauth_missing[] = { 5, 1, 2 },
			v4[] = { 4, 1, 0 }, zero[] = { 5, 0 };
	size_t		used = 0;

	assert_int_equal(socks_parse_greeting(ok, 1, &used), SOCKS_NEED_MORE);
	assert_int_equal(socks_parse_greeting(ok, 3, &used), SOCKS_NEED_MORE);
	assert_int_equal(socks_parse_greeting(ok, 4, &used), SOCKS_DONE);
	assert_int_equal(used, 4);
	assert_int_equal(socks_parse_greeting(noauth_missing, 3, &used),
	    SOCKS_BAD);
	assert_int_equal(socks_parse_greeting(v4, 3, &used), SOCKS_BAD);
	assert_int_equal(socks_parse_greeting(zero, 2, &used), SOCKS_BAD);
}

static void
request_ipv4_ipv6_domain(void **state)
{
	const uint8_t	v4[] = { 5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90 };
	uint8_t		v6[22] = { 5, 1, 0, 4 }, dom[] = { 5, 1, 0, 3, 9,
			    'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80 };
	struct addr_spec to;
	size_t		used;
	uint8_t		rep;

	assert_int_equal(socks_parse_request(v4, sizeof(v4), &used, &to, &rep),
	    SOCKS_DONE);
	assert_string_equal(to.host, "127.0.0.1");
	assert_int_equal(to.port, 8080);
	assert_int_equal(used, sizeof(v4));
	v6[19] = 1;
	v6[20] = 0x01;
	v6[21] = 0xbb;
	assert_int_equal(socks_parse_request(v6, sizeof(v6), &used, &to, &rep),
	    SOCKS_DONE);
	assert_string_equal(to.host, "::1");
	assert_int_equal(to.port, 443);
	assert_int_equal(socks_parse_request(dom, sizeof(dom), &used, &to,
	    &rep), SOCKS_DONE);
	assert_string_equal(to.host, "localhost");
	assert_false(to.numeric);
	assert_int_equal(to.port, 80);
}

static void
request_every_truncation_needs_more(void **state)
{
	const uint8_t	dom[] = { 5, 1, 0, 3, 3, 'a', 'b', 'c', 0, 80 };
	struct addr_spec to;
	size_t		used, n;
	uint8_t		rep;

	for (n = 0; n < sizeof(dom); n++)
		assert_int_equal(socks_parse_request(dom, n, &used, &to, &rep),
		    SOCKS_NEED_MORE);
}

static void
request_rejects(void **state)
{
	const uint8_t	bind[] = { 5, 2, 0, 1, 1, 2, 3, 4, 0, 80 },
			atyp[] = { 5, 1, 0, 9, 1, 2, 3, 4, 0, 80 },
			port0[] = { 5, 1, 0, 1, 1, 2, 3, 4, 0, 0 },
			empty[] = { 5, 1, 0, 3, 0, 0, 80 },
			ctrl[] = { 5, 1, 0, 3, 2, 'a', '\n', 0, 80 },
			rsv[] = { 5, 1, 7, 1, 1, 2, 3, 4, 0, 80 };
	struct addr_spec to;
	size_t		used;
	uint8_t		rep, out[SOCKS_REPLY_LEN];

	assert_int_equal(socks_parse_request(bind, sizeof(bind), &used, &to,
	    &rep), SOCKS_BAD);
	assert_int_equal(rep, SOCKS_REP_CMD);
	assert_int_equal(socks_parse_request(atyp, sizeof(atyp), &used, &to,
	    &rep), SOCKS_BAD);
	assert_int_equal(rep, SOCKS_REP_ATYP);
	assert_int_equal(socks_parse_request(port0, sizeof(port0), &used, &to,
	    &rep), SOCKS_BAD);
	assert_int_equal(socks_parse_request(empty, sizeof(empty), &used, &to,
	    &rep), SOCKS_BAD);
	assert_int_equal(socks_parse_request(ctrl, sizeof(ctrl), &used, &to,
	    &rep), SOCKS_BAD);
	assert_int_equal(socks_parse_request(rsv, sizeof(rsv), &used, &to,
	    &rep), SOCKS_BAD);
	socks_reply(out, SOCKS_REP_REFUSED);
	assert_int_equal(out[0], 5);
	assert_int_equal(out[1], SOCKS_REP_REFUSED);
	assert_int_equal(out[3], 1);
}

static void
message_lengths_from_prefixes(void **state)
{
	const uint8_t	greet[] = { 5, 3, 0, 1, 2 }, bad[] = { 4, 1 },
			v4[] = { 5, 1, 0, 1, 1 }, v6[] = { 5, 1, 0, 4, 0 },
			dom[] = { 5, 1, 0, 3, 9 }, atyp[] = { 5, 1, 0, 7, 0 };

	assert_int_equal(socks_greeting_len(greet, 0), 2);
	assert_int_equal(socks_greeting_len(greet, 1), 2);
	assert_int_equal(socks_greeting_len(greet, 2), 5);
	assert_int_equal(socks_greeting_len(bad, 2), 0);
	assert_int_equal(socks_request_len(v4, 4), 5);
	assert_int_equal(socks_request_len(v4, 5), 10);
	assert_int_equal(socks_request_len(v6, 5), 22);
	assert_int_equal(socks_request_len(dom, 5), 4 + 1 + 9 + 2);
	assert_int_equal(socks_request_len(atyp, 5), 0);
	assert_true(socks_request_len(dom, 5) <= SOCKS_MAX_REQUEST);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(greeting),
		cmocka_unit_test(request_ipv4_ipv6_domain),
		cmocka_unit_test(request_every_truncation_needs_more),
		cmocka_unit_test(request_rejects),
		cmocka_unit_test(message_lengths_from_prefixes),
	};

	return cmocka_run_group_tests_name("socks", tests, NULL, NULL);
}
