/* Unit tests for CIDR parsing and the first-match access list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "tests/unit/sockaddr_of.h"

#include "relay/acl.h"


static int
in(const char *net, const char *host)
{
	struct sockaddr_storage	ss = sa_of(host);
	struct cidr		c;
	char			err[128];

	assert_int_equal(cidr_parse(net, &c, err, sizeof(err)), 0);
	return cidr_match(&c, (struct sockaddr *)&ss);
}

static void
assert_refused(const char *s, const char *why)
{
	struct cidr	c;
	char		err[256] = "";

	assert_int_equal(cidr_parse(s, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, why));
}

static void
parse_and_format(void **state)
{
	static const char *const good[][2] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "192.0.2.7", "192.0.2.7/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "2001:db8::/32", "2001:db8::/32" },
		{ "::1", "::1/128" },
		{ "::/0", "::/0" },
		{ "172.16.0.0/12", "172.16.0.0/12" },
		/* v4-mapped: the IPv4 network it names */
		{ "::ffff:10.0.0.0/104", "10.0.0.0/8" },
		{ "::ffff:127.0.0.77", "127.0.0.77/32" },
	};
	struct cidr	c;
	char		err[128], buf[64];
	size_t		i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(cidr_parse(good[i][0], &c, err, sizeof(err)),
		    0);
		cidr_format(&c, buf, sizeof(buf));
		assert_string_equal(buf, good[i][1]);
	}
}

static void
parse_refusals(void **state)
{
	assert_refused("10.0.0.0/33", "prefix length must be 0-32");
	assert_refused("2001:db8::/129", "0-128");
	assert_refused("10.0.0.0/", "prefix length");
	assert_refused("10.0.0.0/08", "prefix length");
	assert_refused("10.0.0.0/+8", "prefix length");
	assert_refused("10.0.0.0/-1", "prefix length");
	assert_refused("10.0.0.0/8x", "prefix length");
	assert_refused("10.1.2.3/8", "did you mean 10.0.0.0/8?");
	assert_refused("192.168.1.1/23", "did you mean 192.168.0.0/23?");
	assert_refused("2001:db8::1/32", "did you mean 2001:db8::/32?");
	assert_refused("::ffff:10.0.0.0/95", "at least 96");
	assert_refused("10.0.0", "not an IPv4 or IPv6");
	assert_refused("[::1]/128", "not an IPv4 or IPv6");
	assert_refused("localhost", "not an IPv4 or IPv6");
	assert_refused("", "not an IPv4 or IPv6");
	assert_refused("/8", "not an IPv4 or IPv6");
}

static void
matching(void **state)
{
	assert_true(in("10.0.0.0/8", "10.255.1.2"));
	assert_false(in("10.0.0.0/8", "11.0.0.1"));
	assert_true(in("192.168.0.0/23", "192.168.1.255"));
	assert_false(in("192.168.0.0/23", "192.168.2.0"));
	assert_true(in("0.0.0.0/0", "203.0.113.9"));
	assert_false(in("0.0.0.0/0", "::1"));		/* families apart */
	assert_true(in("::/0", "::1"));
	assert_false(in("::/0", "10.0.0.1"));
	assert_true(in("2001:db8::/33", "2001:db8:7fff::1"));
	assert_false(in("2001:db8::/33", "2001:db8:8000::1"));
	assert_true(in("127.0.0.77", "127.0.0.77"));
	assert_false(in("127.0.0.77", "127.0.0.78"));
	/* A dual-stack listener's client is matched as IPv4. */
	assert_true(in("127.0.0.0/8", "::ffff:127.0.0.77"));
	assert_false(in("::/0", "::ffff:127.0.0.77"));
}

static void
first_match_and_default(void **state)
{
	struct acl_rule		 r[3];
	const struct acl_rule	*why;
	struct sockaddr_storage	 a = sa_of("10.1.2.3"), b = sa_of("10.9.9.9"),
				 c = sa_of("192.0.2.1");
	struct sockaddr_un	 un = { .sun_family = AF_UNIX };
	char			 err[128];

	/* No rules: everyone. Only --deny: everyone else. */
	assert_true(acl_permits(r, 0, (struct sockaddr *)&a, &why));
	r[0].allow = 0;
	assert_int_equal(cidr_parse("10.1.0.0/16", &r[0].net, err,
	    sizeof(err)), 0);
	assert_false(acl_permits(r, 1, (struct sockaddr *)&a, &why));
	assert_ptr_equal(why, &r[0]);
	assert_true(acl_permits(r, 1, (struct sockaddr *)&b, &why));
	assert_null(why);
	/* Any --allow: the rest is denied. First match wins. */
	r[1].allow = 1;
	assert_int_equal(cidr_parse("10.0.0.0/8", &r[1].net, err,
	    sizeof(err)), 0);
	assert_false(acl_permits(r, 2, (struct sockaddr *)&a, &why));
	assert_true(acl_permits(r, 2, (struct sockaddr *)&b, &why));
	assert_ptr_equal(why, &r[1]);
	assert_false(acl_permits(r, 2, (struct sockaddr *)&c, &why));
	assert_null(why);
	/* The same rules the other way round. */
	r[2] = r[0];
	r[0] = r[1];
	r[1] = r[2];
	assert_true(acl_permits(r, 2, (struct sockaddr *)&a, &why));
	/* unix clients carry no address to match. */
	assert_true(acl_permits(r, 2, (struct sockaddr *)&un, &why));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_and_format),
		cmocka_unit_test(parse_refusals),
		cmocka_unit_test(matching),
		cmocka_unit_test(first_match_and_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
