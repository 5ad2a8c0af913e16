/* Unit tests for --ssh destinations and -R/-L/-D forward specs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "relay/spec.h"

static char err[512];

static void
dest_forms(void **state)
{
	struct ssh_dest d;

	assert_int_equal(ssh_dest_parse("me@mopsled.com", &d, err,
	    sizeof(err)), 0);
	assert_string_equal(d.user, "me");
	assert_string_equal(d.host, "mopsled.com");
	assert_int_equal(d.port, 22);
	assert_int_equal(ssh_dest_parse("127.0.0.1:2222", &d, err,
	    sizeof(err)), 0);
	assert_string_equal(d.user, "");
	assert_int_equal(d.port, 2222);
	assert_int_equal(ssh_dest_parse("a.b@[::1]:22022", &d, err,
	    sizeof(err)), 0);
	assert_string_equal(d.user, "a.b");
	assert_string_equal(d.host, "::1");
	assert_int_equal(d.port, 22022);
	assert_int_equal(ssh_dest_parse("[::1]", &d, err, sizeof(err)), 0);
	assert_int_equal(d.port, 22);
}

static void
expect_dest_error(const char *s, const char *needle)
{
	struct ssh_dest d;

	assert_int_equal(ssh_dest_parse(s, &d, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", s, err, needle);
}

static void
dest_errors(void **state)
{
	expect_dest_error("@host", "bad user");
	expect_dest_error("host:0", "out of range");
	expect_dest_error("host:99999", "out of range");
	expect_dest_error("::1", "[USER@]HOST[:PORT]");
	expect_dest_error("h:1:2", "[USER@]HOST[:PORT]");
	expect_dest_error("[::1", "[USER@]HOST[:PORT]");
	expect_dest_error("bad host", "bad host");
	expect_dest_error("", "bad host");
}

static void
remote_forms(void **state)
{
	struct forward_spec f;
	char buf[300];

	assert_int_equal(forward_parse(FWD_REMOTE, "10080:127.0.0.1:80", &f,
	    err, sizeof(err)), 0);
	assert_string_equal(f.listen.host, "");
	assert_int_equal(f.listen.port, 10080);
	assert_string_equal(f.to.host, "127.0.0.1");
	assert_true(f.to.numeric);
	assert_int_equal(f.to.port, 80);
	assert_int_equal(forward_parse(FWD_REMOTE, "0:localhost:8080", &f,
	    err, sizeof(err)), 0);
	assert_int_equal(f.listen.port, 0);
	assert_false(f.to.numeric);
	assert_int_equal(forward_parse(FWD_REMOTE, "*:80:[::1]:8080", &f,
	    err, sizeof(err)), 0);
	assert_string_equal(f.listen.host, "*");
	assert_string_equal(f.to.host, "::1");
	forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "-R *:80:[::1]:8080");
	assert_int_equal(forward_parse(FWD_REMOTE, "[::1]:80:h:1", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.listen.host, "::1");
}

static void
local_and_dynamic(void **state)
{
	struct forward_spec f;
	char buf[300];

	assert_int_equal(forward_parse(FWD_LOCAL, "8080:intranet:80", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.listen.host, "127.0.0.1");
	assert_true(f.listen.numeric);
	assert_string_equal(f.to.host, "intranet");
	forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "-L 127.0.0.1:8080:intranet:80");
	assert_int_equal(forward_parse(FWD_LOCAL, "*:8080:h:80", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.listen.host, "");
	forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "-L *:8080:h:80");
	assert_int_equal(forward_parse(FWD_DYNAMIC, ":1080", &f, err,
	    sizeof(err)), 0);
	forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "-D *:1080");
	assert_int_equal(forward_parse(FWD_DYNAMIC, "1080", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.listen.host, "127.0.0.1");
	assert_int_equal(f.listen.port, 1080);
	assert_int_equal(forward_parse(FWD_DYNAMIC, "[::1]:1080", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.listen.host, "::1");
	forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "-D [::1]:1080");
}

static void
expect_fwd_error(enum forward_kind k, const char *s, const char *needle)
{
	struct forward_spec f;

	assert_int_equal(forward_parse(k, s, &f, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL || strstr(err, s) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", s, err, needle);
}

static void
forward_errors(void **state)
{
	expect_fwd_error(FWD_REMOTE, "80", "[BIND:]PORT:HOST:HOSTPORT");
	expect_fwd_error(FWD_REMOTE, "80:h", "[BIND:]PORT:HOST:HOSTPORT");
	expect_fwd_error(FWD_REMOTE, "a:b:80:h:1", "too many fields");
	expect_fwd_error(FWD_REMOTE, "80:h:0", "out of range");
	expect_fwd_error(FWD_REMOTE, "80:h:65536", "out of range");
	expect_fwd_error(FWD_REMOTE, "x:h:80", "bad port");
	expect_fwd_error(FWD_REMOTE, "80:[::1:80", "unbalanced");
	expect_fwd_error(FWD_REMOTE, "80:[zz]:80", "bad IPv6");
	expect_fwd_error(FWD_REMOTE, "80:999.0.0.1:80", "bad IPv4");
	expect_fwd_error(FWD_LOCAL, "0:h:80", "out of range");
	expect_fwd_error(FWD_LOCAL, "8080:h!:80", "bad host");
	expect_fwd_error(FWD_DYNAMIC, "1080:h:80", "[BIND:]PORT");
	expect_fwd_error(FWD_DYNAMIC, "", "missing port");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dest_forms),
		cmocka_unit_test(dest_errors),
		cmocka_unit_test(remote_forms),
		cmocka_unit_test(local_and_dynamic),
		cmocka_unit_test(forward_errors),
	};

	return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
