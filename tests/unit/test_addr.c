/* Unit tests for address parsing and formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "relay/addr.h"

static char err[256];

static void
listen_port_only(void **state)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_listen("80", &a, err, sizeof(err)), 0);
	assert_int_equal(a.kind, ADDR_INET);
	assert_string_equal(a.host, "");
	assert_int_equal(a.port, 80);
}

static void
listen_ipv4(void **state)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_listen("127.0.0.1:8080", &a, err,
	    sizeof(err)), 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_true(a.numeric);
	assert_int_equal(a.port, 8080);
}

static void
listen_ipv6(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_listen("[::1]:443", &a, err, sizeof(err)),
	    0);
	assert_string_equal(a.host, "::1");
	assert_true(a.numeric);
	assert_int_equal(a.port, 443);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:443");
}

static void
listen_star_is_any(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_listen("*:80", &a, err, sizeof(err)), 0);
	assert_string_equal(a.host, "");
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "*:80");
}

static void
listen_name(void **state)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_listen("localhost:80", &a, err,
	    sizeof(err)), 0);
	assert_string_equal(a.host, "localhost");
	assert_false(a.numeric);
}

static void
listen_unix(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_listen("unix:/run/r.sock", &a, err,
	    sizeof(err)), 0);
	assert_int_equal(a.kind, ADDR_UNIX);
	assert_string_equal(a.path, "/run/r.sock");
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "unix:/run/r.sock");
}

static void
target_forms(void **state)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_target("127.0.0.1:10080", &a, err,
	    sizeof(err)), 0);
	assert_int_equal(a.port, 10080);
	assert_int_equal(addr_parse_target("[2001:db8::1]:22", &a, err,
	    sizeof(err)), 0);
	assert_string_equal(a.host, "2001:db8::1");
	assert_int_equal(addr_parse_target("mopsled.com:80", &a, err,
	    sizeof(err)), 0);
	assert_false(a.numeric);
	assert_int_equal(addr_parse_target("unix:/tmp/x", &a, err,
	    sizeof(err)), 0);
	assert_int_equal(a.kind, ADDR_UNIX);
}

/* Each bad input fails and names the offending text. */
static void
expect_listen_error(const char *in, const char *needle)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_listen(in, &a, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", in, err, needle);
}

static void
expect_target_error(const char *in, const char *needle)
{
	struct addr_spec a;

	assert_int_equal(addr_parse_target(in, &a, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", in, err, needle);
}

static void
bad_ports(void **state)
{
	expect_listen_error("0", "out of range");
	expect_listen_error("65536", "out of range");
	expect_listen_error("99999999999999999999", "bad port");
	expect_listen_error("", "missing port");
	expect_listen_error("8o", "bad port");
	expect_listen_error("-1", "bad port");
	expect_listen_error("+80", "bad port");
	expect_listen_error("127.0.0.1:", "missing port");
	expect_target_error("127.0.0.1:0", "out of range");
}

static void
bad_addresses(void **state)
{
	expect_listen_error("::1:80", "brackets");
	expect_listen_error("[::1:80", "[IPv6]:PORT");
	expect_listen_error("[::1]80", "[IPv6]:PORT");
	expect_listen_error("[nonsense]:80", "bad IPv6");
	expect_listen_error("999.1.1.1:80", "999.1.1.1");
	expect_listen_error("bad_host!:80", "bad_host!");
	expect_listen_error("unix:", "empty socket path");
	expect_target_error("nonsense", "HOST:PORT");
	expect_target_error(":80", "missing host");
	expect_target_error("*:80", "*");
	expect_target_error("-lead:80", "-lead");
}

static void
long_unix_path(void **state)
{
	char path[300] = "unix:/";

	memset(path + 6, 'a', 200);
	path[206] = '\0';
	expect_listen_error(path, "too long");
}

/* The longest host name still formats whole, as logs show it. */
static void
long_host_formats_whole(void **state)
{
	struct addr_spec a;
	char in[300], buf[ADDR_STR_MAX];

	memset(in, 'a', 253);
	strcpy(in + 253, ":65535");
	assert_int_equal(addr_parse_target(in, &a, err, sizeof(err)), 0);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, in);
}

static void
format_sockaddrs(void **state)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	char buf[ADDR_STR_MAX];

	s4.sin_port = htons(80);
	inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr);
	addr_sa_format((struct sockaddr *)&s4, sizeof(s4), buf, sizeof(buf));
	assert_string_equal(buf, "10.1.2.3:80");
	s6.sin6_port = htons(443);
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6.sin6_addr);
	addr_sa_format((struct sockaddr *)&s6, sizeof(s6), buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.1:443");
	inet_pton(AF_INET6, "2001:db8::7", &s6.sin6_addr);
	addr_sa_format((struct sockaddr *)&s6, sizeof(s6), buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::7]:443");
}

static void
udp_forms(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_listen("udp:53", &a, err, sizeof(err)), 0);
	assert_true(a.udp);
	assert_int_equal(a.kind, ADDR_INET);
	assert_string_equal(a.host, "");
	assert_int_equal(a.port, 53);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "udp:*:53");

	assert_int_equal(addr_parse_listen("udp:[::1]:5353", &a, err,
	    sizeof(err)), 0);
	assert_true(a.udp && a.numeric);
	assert_string_equal(a.host, "::1");
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "udp:[::1]:5353");

	assert_int_equal(addr_parse_target("udp:dns.example:53", &a, err,
	    sizeof(err)), 0);
	assert_true(a.udp);
	assert_false(a.numeric);
	assert_string_equal(a.host, "dns.example");

	/* No prefix: a stream address, as before. */
	assert_int_equal(addr_parse_target("127.0.0.1:53", &a, err,
	    sizeof(err)), 0);
	assert_false(a.udp);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:53");
}

static void
udp_bad(void **state)
{
	static const char *const listen_bad[] = { "udp:", "udp:0", "udp:x",
	    "udp:unix:/tmp/s", "udp:::1:53", "udp:[::1]53", "udp:1.2.3:53",
	    "udp:*:0" };
	static const char *const target_bad[] = { "udp:53", "udp::53",
	    "udp:*:53", "udp:unix:/tmp/s", "udp:host:99999" };
	struct addr_spec a;
	size_t i;

	for (i = 0; i < sizeof(listen_bad) / sizeof(listen_bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(addr_parse_listen(listen_bad[i], &a, err,
		    sizeof(err)), -1);
		assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
	}
	for (i = 0; i < sizeof(target_bad) / sizeof(target_bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(addr_parse_target(target_bad[i], &a, err,
		    sizeof(err)), -1);
		assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
	}
	assert_int_equal(addr_parse_listen("udp:unix:/tmp/s", &a, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not a unix socket"));
}

static void
tls_listen_forms(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_listen("tls:443", &a, err, sizeof(err)), 0);
	assert_true(a.tls);
	assert_int_equal(a.kind, ADDR_INET);
	assert_string_equal(a.host, "");
	assert_int_equal(a.port, 443);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "tls:*:443");
	assert_int_equal(addr_parse_listen("tls:127.0.0.2:8443", &a, err,
	    sizeof(err)), 0);
	assert_true(a.tls);
	assert_string_equal(a.host, "127.0.0.2");
	assert_int_equal(a.port, 8443);
	assert_int_equal(addr_parse_listen("tls:[::1]:443", &a, err,
	    sizeof(err)), 0);
	assert_true(a.tls);
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "tls:[::1]:443");
	/* Without the prefix nothing is TLS. */
	assert_int_equal(addr_parse_listen("443", &a, err, sizeof(err)), 0);
	assert_false(a.tls);
}

static void
tls_target_forms(void **state)
{
	struct addr_spec a;
	char buf[ADDR_STR_MAX];

	assert_int_equal(addr_parse_target("tls:example.org:443", &a, err,
	    sizeof(err)), 0);
	assert_true(a.tls);
	assert_false(a.numeric);
	assert_string_equal(a.host, "example.org");
	addr_spec_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "tls:example.org:443");
	assert_int_equal(addr_parse_target("tls:127.0.0.1:10443", &a, err,
	    sizeof(err)), 0);
	assert_true(a.tls);
	assert_true(a.numeric);
	assert_int_equal(addr_parse_target("127.0.0.1:10443", &a, err,
	    sizeof(err)), 0);
	assert_false(a.tls);
}

static void
tls_bad_forms(void **state)
{
	expect_listen_error("tls:", "missing port");
	expect_listen_error("tls:unix:/run/x", "TLS needs a TCP address");
	expect_listen_error("tls:0", "out of range");
	expect_target_error("tls:443", "HOST:PORT");
	expect_target_error("tls:unix:/run/x", "TLS needs a TCP address");
	expect_target_error("tls::443", "missing host");
	expect_target_error("TLS:h:1", "TLS:h:1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_port_only),
		cmocka_unit_test(listen_ipv4),
		cmocka_unit_test(listen_ipv6),
		cmocka_unit_test(listen_star_is_any),
		cmocka_unit_test(listen_name),
		cmocka_unit_test(listen_unix),
		cmocka_unit_test(target_forms),
		cmocka_unit_test(bad_ports),
		cmocka_unit_test(bad_addresses),
		cmocka_unit_test(long_unix_path),
		cmocka_unit_test(long_host_formats_whole),
		cmocka_unit_test(format_sockaddrs),
		cmocka_unit_test(udp_forms),
		cmocka_unit_test(udp_bad),
		cmocka_unit_test(tls_listen_forms),
		cmocka_unit_test(tls_target_forms),
		cmocka_unit_test(tls_bad_forms),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
