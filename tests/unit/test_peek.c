/* Unit tests for the SNI and Host peekers and for route matching. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "relay/peek.h"
#include "relay/route.h"

/* ---------------------------------------------------------------- TLS */

static size_t
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

/* A ClientHello handshake message with an optional server_name and
 * padding extension of pad bytes. Returns its length. */
static size_t
hello(uint8_t *out, const char *sni, size_t pad)
{
	uint8_t	*p = out + 4, *exts;
	size_t	 n, len;

	p += put16(p, 0x0303);
	memset(p, 0x5a, 32);
	p += 32;
	*p++ = 0;				/* session id */
	p += put16(p, 2);
	p += put16(p, 0x1301);			/* one cipher suite */
	*p++ = 1;
	*p++ = 0;				/* null compression */
	exts = p;
	p += 2;
	if (sni != NULL) {
		n = strlen(sni);
		p += put16(p, 0);		/* server_name */
		p += put16(p, n + 5);
		p += put16(p, n + 3);
		*p++ = 0;			/* host_name */
		p += put16(p, n);
		memcpy(p, sni, n);
		p += n;
	}
	p += put16(p, 21);			/* padding */
	p += put16(p, pad);
	memset(p, 0, pad);
	p += pad;
	put16(exts, (size_t)(p - exts - 2));
	len = (size_t)(p - out - 4);
	out[0] = 1;
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	return len + 4;
}

/* The handshake message in records of at most per bytes each. */
static size_t
records(uint8_t *out, const uint8_t *hs, size_t len, size_t per)
{
	size_t	off = 0, n, k;

	for (k = 0; k < len; k += n) {
		n = len - k < per ? len - k : per;
		out[off++] = 22;
		out[off++] = 3;
		out[off++] = 1;
		off += put16(out + off, n);
		memcpy(out + off, hs + k, n);
		off += n;
	}
	return off;
}

static enum peek_status
sni(const uint8_t *buf, size_t len, char *name)
{
	char	err[128];

	return peek_tls_sni(buf, len, name, PEEK_NAME_MAX, err, sizeof(err));
}

static void
tls_name_in_any_number_of_pieces(void **state)
{
	static uint8_t	hs[4096], wire[8192];
	char		name[PEEK_NAME_MAX];
	size_t		len, wlen, i, per[] = { 16384, 100, 7, 1 };
	size_t		j;

	len = hello(hs, "Blog.Example.ORG.", 300);
	for (j = 0; j < sizeof(per) / sizeof(per[0]); j++) {
		wlen = records(wire, hs, len, per[j]);
		for (i = 0; i < wlen; i++)
			assert_int_equal(sni(wire, i, name), PEEK_NEED_MORE);
		assert_int_equal(sni(wire, wlen, name), PEEK_DONE);
		assert_string_equal(name, "blog.example.org");
	}
}

static void
tls_without_name(void **state)
{
	static uint8_t	hs[4096], wire[8192];
	char		name[PEEK_NAME_MAX];
	size_t		wlen;

	wlen = records(wire, hs, hello(hs, NULL, 10), 16384);
	assert_int_equal(sni(wire, wlen, name), PEEK_DONE);
	assert_string_equal(name, "");
}

static void
tls_refusals(void **state)
{
	static uint8_t	hs[PEEK_MAX + 1024], wire[PEEK_MAX * 2];
	char		name[PEEK_NAME_MAX];
	size_t		len, wlen;

	assert_int_equal(sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name),
	    PEEK_ERROR);
	/* A bad name. */
	wlen = records(wire, hs, hello(hs, "a b.example", 0), 16384);
	assert_int_equal(sni(wire, wlen, name), PEEK_ERROR);
	/* Over 64 KiB in all, in whatever records. */
	len = hello(hs, "big.example", PEEK_MAX);
	wlen = records(wire, hs, len, 16384);
	assert_int_equal(sni(wire, wlen, name), PEEK_ERROR);
	/* A small hello stretched over one-byte records past the cap. */
	len = hello(hs, "slow.example", 20000);
	wlen = records(wire, hs, len, 1);
	assert_true(wlen > PEEK_MAX);
	assert_int_equal(sni(wire, PEEK_MAX, name), PEEK_ERROR);
	/* Not a ClientHello. */
	len = hello(hs, "x.example", 0);
	hs[0] = 2;
	wlen = records(wire, hs, len, 16384);
	assert_int_equal(sni(wire, wlen, name), PEEK_ERROR);
	/* An alert record in the middle of the hello. */
	len = hello(hs, "x.example", 100);
	wlen = records(wire, hs, len, 50);
	wire[55] = 21;
	assert_int_equal(sni(wire, wlen, name), PEEK_ERROR);
}

/* ---------------------------------------------------------------- HTTP */

static enum peek_status
host(const char *head, char *name)
{
	char	err[128];

	return peek_http_host(head, strlen(head), name, PEEK_NAME_MAX, err,
	    sizeof(err));
}

static void
http_host_forms(void **state)
{
	char	name[PEEK_NAME_MAX];

	assert_int_equal(host("GET / HTTP/1.1\r\nUser-Agent: x\r\n"
	    "HOST:  Blog.Example.org:8080 \r\n\r\nbody", name), PEEK_DONE);
	assert_string_equal(name, "blog.example.org");
	assert_int_equal(host("GET / HTTP/1.1\nHost: a.example.\n\n", name),
	    PEEK_DONE);
	assert_string_equal(name, "a.example");
	assert_int_equal(host("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	    name), PEEK_DONE);
	assert_string_equal(name, "[::1]");
	assert_int_equal(host("GET / HTTP/1.0\r\n\r\n", name), PEEK_DONE);
	assert_string_equal(name, "");
}

static void
http_needs_the_whole_head(void **state)
{
	const char	*head = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
	char		 name[PEEK_NAME_MAX], err[128];
	size_t		 i, len = strlen(head);

	for (i = 0; i < len; i++)
		assert_int_equal(peek_http_host(head, i, name, sizeof(name),
		    err, sizeof(err)), PEEK_NEED_MORE);
	assert_int_equal(peek_http_host(head, len, name, sizeof(name), err,
	    sizeof(err)), PEEK_DONE);
}

static void
http_refusals(void **state)
{
	static char	big[PEEK_MAX + 64];
	char		name[PEEK_NAME_MAX], err[128];
	size_t		len;

	assert_int_equal(host("\x16\x03\x01\x02 hello HTTP/1.1\n", name),
	    PEEK_ERROR);
	assert_int_equal(host("GET / HTTP/2.0\r\n\r\n", name), PEEK_ERROR);
	assert_int_equal(host("get / HTTP/1.1\r\n\r\n", name), PEEK_ERROR);
	assert_int_equal(host("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	    name), PEEK_ERROR);
	assert_int_equal(host("GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n", name),
	    PEEK_ERROR);
	assert_int_equal(host("GET / HTTP/1.1\r\nNo colon\r\n\r\n", name),
	    PEEK_ERROR);
	/* A NUL inside the Host: the backend would see another name. */
	assert_int_equal(peek_http_host("GET / HTTP/1.1\r\nHost: a.example\0evil"
	    "\r\n\r\n", 40, name, sizeof(name), err, sizeof(err)), PEEK_ERROR);
	assert_int_equal(host("GET / HTTP/1.1\r\nX: y\r\n z\r\n\r\n", name),
	    PEEK_ERROR);
	/* A head that never ends. */
	memcpy(big, "GET / HTTP/1.1\r\n", 16);
	for (len = 16; len + 10 < sizeof(big); len += 10)
		memcpy(big + len, "X-Pad: y\r\n", 10);
	assert_int_equal(peek_http_host(big, PEEK_MAX, name, sizeof(name),
	    err, sizeof(err)), PEEK_ERROR);
	assert_non_null(strstr(err, "64 KiB"));
}

/* An SNI a TLS library read is made a name the way the peeks make one. */
static void
names_as_the_peeks_give_them(void **state)
{
	char	name[PEEK_NAME_MAX], small[8];

	assert_int_equal(peek_name("Blog.Example.ORG.", 17, name,
	    sizeof(name)), 0);
	assert_string_equal(name, "blog.example.org");
	assert_int_equal(peek_name("a_b-c.d", 7, name, sizeof(name)), 0);
	assert_string_equal(name, "a_b-c.d");
	assert_int_equal(peek_name("", 0, name, sizeof(name)), -1);
	assert_int_equal(peek_name(".", 1, name, sizeof(name)), -1);
	assert_int_equal(peek_name("a b", 3, name, sizeof(name)), -1);
	assert_int_equal(peek_name("a\nb", 3, name, sizeof(name)), -1);
	assert_int_equal(peek_name("a\0b", 3, name, sizeof(name)), -1);
	assert_int_equal(peek_name("12345678", 8, small, sizeof(small)), -1);
	assert_int_equal(peek_name("1234567", 7, small, sizeof(small)), 0);
}

/* ---------------------------------------------------------------- routes */

static void
routes_exact_before_wildcard_one_label(void **state)
{
	const char	*names[] = { "*.example.org", "Blog.Example.org",
			    "git.example.org" };

	assert_int_equal(route_match(names, 3, "blog.example.org"), 1);
	assert_int_equal(route_match(names, 3, "GIT.example.org"), 2);
	assert_int_equal(route_match(names, 3, "a.example.org"), 0);
	assert_int_equal(route_match(names, 3, "a.b.example.org"), -1);
	assert_int_equal(route_match(names, 3, "example.org"), -1);
	assert_int_equal(route_match(names, 3, ".example.org"), -1);
	assert_int_equal(route_match(names, 3, ""), -1);
	assert_int_equal(route_match(names, 0, "blog.example.org"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tls_name_in_any_number_of_pieces),
		cmocka_unit_test(tls_without_name),
		cmocka_unit_test(tls_refusals),
		cmocka_unit_test(http_host_forms),
		cmocka_unit_test(http_needs_the_whole_head),
		cmocka_unit_test(http_refusals),
		cmocka_unit_test(names_as_the_peeks_give_them),
		cmocka_unit_test(routes_exact_before_wildcard_one_label),
	};

	return cmocka_run_group_tests_name("peek", tests, NULL, NULL);
}
