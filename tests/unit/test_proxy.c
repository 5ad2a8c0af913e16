/* Unit tests for the PROXY protocol parser and builder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "relay/proxy.h"

static enum proxy_status
parse(const void *buf, size_t len, struct proxy_hdr *h, size_t *used)
{
	char	err[128];

	return proxy_parse(buf, len, h, used, err, sizeof(err));
}

/* Every proper prefix needs more; the whole header is done at its end,
 * with the bytes after it left alone. */
static void
assert_whole(const void *hdr, size_t len, struct proxy_hdr *h)
{
	uint8_t	buf[4096];
	size_t	i, used = 0;

	memcpy(buf, hdr, len);
	memcpy(buf + len, "GET / HTTP/1.0\r\n", 16);
	for (i = 0; i < len; i++)
		assert_int_equal(parse(buf, i, h, &used), PROXY_NEED_MORE);
	assert_int_equal(parse(buf, len, h, &used), PROXY_DONE);
	assert_int_equal(used, len);
	assert_int_equal(parse(buf, len + 16, h, &used), PROXY_DONE);
	assert_int_equal(used, len);
}

static void
assert_bad(const void *hdr, size_t len, const char *why)
{
	struct proxy_hdr h;
	char		 err[128] = "";
	size_t		 used;

	assert_int_equal(proxy_parse(hdr, len, &h, &used, err, sizeof(err)),
	    PROXY_ERROR);
	assert_non_null(strstr(err, why));
}

static const char *
ntop(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const struct sockaddr_in	*s4 = (const void *)ss;
	const struct sockaddr_in6	*s6 = (const void *)ss;

	if (ss->ss_family == AF_INET)
		return inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
	return inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ?
	    ntohs(((const struct sockaddr_in *)ss)->sin_port) :
	    ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void
v1_tcp4_tcp6_unknown(void **state)
{
	const char	 t4[] = "PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n";
	const char	 t6[] = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	const char	 unk[] = "PROXY UNKNOWN whatever follows\r\n";
	struct proxy_hdr h;
	char		 a[64];

	assert_whole(t4, sizeof(t4) - 1, &h);
	assert_int_equal(h.version, 1);
	assert_true(h.has_addr);
	assert_string_equal(ntop(&h.src, a, sizeof(a)), "192.0.2.7");
	assert_int_equal(port_of(&h.src), 56324);
	assert_string_equal(ntop(&h.dst, a, sizeof(a)), "127.0.0.1");
	assert_int_equal(port_of(&h.dst), 443);
	assert_whole(t6, sizeof(t6) - 1, &h);
	assert_int_equal(h.src.ss_family, AF_INET6);
	assert_string_equal(ntop(&h.src, a, sizeof(a)), "2001:db8::1");
	assert_int_equal(port_of(&h.src), 65535);
	assert_int_equal(port_of(&h.dst), 0);
	assert_whole(unk, sizeof(unk) - 1, &h);
	assert_false(h.has_addr);
	assert_whole("PROXY UNKNOWN\r\n", 15, &h);
	assert_false(h.has_addr);
}

static void
v1_longest_line(void **state)
{
	const char	 max[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
			    "ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
			    "65535\r\n";
	char		 pad[200];
	struct proxy_hdr h;

	const char	 unk[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:"
			    "ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			    "65535 65535\r\n";

	assert_whole(max, sizeof(max) - 1, &h);
	/* The spec's worst case is exactly the limit. */
	assert_int_equal(sizeof(unk) - 1, PROXY_V1_MAX);
	assert_whole(unk, sizeof(unk) - 1, &h);
	/* An UNKNOWN line may not use its freedom to run longer. */
	memset(pad, 'x', sizeof(pad));
	memcpy(pad, "PROXY UNKNOWN ", 14);
	assert_int_equal(parse(pad, PROXY_V1_MAX - 1, &h, &(size_t){0}),
	    PROXY_NEED_MORE);
	assert_bad(pad, PROXY_V1_MAX, "no CRLF within 107");
	assert_bad(pad, sizeof(pad), "no CRLF within 107");
}

static void
v1_malformed(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",	/* bare LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",	/* CR without LF */
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",	/* two spaces */
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",	/* trailing space */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",	/* a port missing */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",	/* case matters */
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",	/* leading zero */
		"PROXY TCP4 ::1 ::1 1 2\r\n",		/* wrong family */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP6 ::1 ::g 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",	/* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
		"PROXY TCP4\r\n",
		"PROXY \r\n",
		"PROXY UNKNOWNX\r\n",
	};
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_bad(bad[i], strlen(bad[i]), "v1: ");
}

static void
not_a_header(void **state)
{
	struct proxy_hdr h;
	size_t		 used;

	/* Refused at the first byte that cannot be a header. */
	assert_bad("GET / HTTP/1.1\r\n", 1, "signature");
	assert_bad("PROXX", 5, "signature");
	assert_bad("proxy TCP4", 10, "signature");
	assert_bad("\r\n\r\n\x00\r\nQUIX", 12, "signature");
	assert_int_equal(parse("PROX", 4, &h, &used), PROXY_NEED_MORE);
	assert_int_equal(parse("", 0, &h, &used), PROXY_NEED_MORE);
}

/* A v2 head: the signature, then ver_cmd, fam and length. */
static size_t
v2_head(uint8_t *b, uint8_t ver_cmd, uint8_t fam, size_t len)
{
	memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
	b[12] = ver_cmd;
	b[13] = fam;
	b[14] = (uint8_t)(len >> 8);
	b[15] = (uint8_t)len;
	return 16 + len;
}

static void
v2_inet_inet6(void **state)
{
	uint8_t		 b[128];
	struct proxy_hdr h;
	char		 a[64];
	size_t		 n;

	n = v2_head(b, 0x21, 0x11, 12);
	memcpy(b + 16, "\x7f\x00\x00\x4d\x7f\x00\x00\x01\x1f\x90\x00\x50", 12);
	assert_whole(b, n, &h);
	assert_int_equal(h.version, 2);
	assert_true(h.has_addr);
	assert_string_equal(ntop(&h.src, a, sizeof(a)), "127.0.0.77");
	assert_int_equal(port_of(&h.src), 8080);
	assert_int_equal(port_of(&h.dst), 80);
	n = v2_head(b, 0x21, 0x21, 36);
	memset(b + 16, 0, 36);
	b[31] = 1;
	b[47] = 2;
	b[48] = 0x01;
	b[49] = 0xbb;
	assert_whole(b, n, &h);
	assert_string_equal(ntop(&h.src, a, sizeof(a)), "::1");
	assert_string_equal(ntop(&h.dst, a, sizeof(a)), "::2");
	assert_int_equal(port_of(&h.src), 443);
}

static void
v2_unix_local_unspec(void **state)
{
	uint8_t			 b[512];
	struct proxy_hdr	 h;
	struct sockaddr_un	*sun = (struct sockaddr_un *)&h.src;
	size_t			 n;

	n = v2_head(b, 0x21, 0x31, 216);
	memset(b + 16, 0, 216);
	strcpy((char *)b + 16, "/run/client.sock");
	memset(b + 16 + 108, 'p', 108);		/* no NUL: all 108 bytes */
	assert_whole(b, n, &h);
	assert_int_equal(h.src.ss_family, AF_UNIX);
	assert_string_equal(sun->sun_path, "/run/client.sock");
	assert_int_equal(h.dstlen, offsetof(struct sockaddr_un, sun_path) +
	    108);
	/* LOCAL: whatever the block holds is skipped. */
	n = v2_head(b, 0x20, 0x11, 5);
	memset(b + 16, 0xee, 5);
	assert_whole(b, n, &h);
	assert_false(h.has_addr);
	n = v2_head(b, 0x21, 0x00, 0);
	assert_whole(b, n, &h);
	assert_false(h.has_addr);
}

static void
v2_tlvs_walked(void **state)
{
	uint8_t		 b[128];
	struct proxy_hdr h;
	size_t		 n;

	/* Addresses, then an ALPN TLV and a NOOP with an empty value. */
	n = v2_head(b, 0x21, 0x11, 12 + 5 + 3);
	memset(b + 16, 1, 12);
	memcpy(b + 28, "\x01\x00\x02h2\x04\x00\x00", 8);
	assert_whole(b, n, &h);
	assert_true(h.has_addr);
	/* A TLV longer than what is left. */
	n = v2_head(b, 0x21, 0x11, 12 + 5);
	memcpy(b + 28, "\x01\x00\x03h2", 5);
	assert_bad(b, n, "runs past");
	/* A TLV head cut short. */
	n = v2_head(b, 0x21, 0x11, 12 + 2);
	memcpy(b + 28, "\x01\x00", 2);
	assert_bad(b, n, "truncated TLV");
}

static void
v2_crc32c(void **state)
{
	uint8_t		 b[64];
	struct proxy_hdr h;
	size_t		 n;

	n = v2_head(b, 0x21, 0x11, 12 + 7);
	memcpy(b + 16, "\x7f\x00\x00\x01\x7f\x00\x00\x02\x00\x01\x00\x02", 12);
	memcpy(b + 28, "\x03\x00\x04\x00\x00\x00\x00", 7);
	assert_bad(b, n, "CRC32C");
	/* Computed apart (and checked against CRC32C("123456789") =
	 * 0xe3069283) over the header with the field zeroed. */
	memcpy(b + 31, "\xba\x84\x11\x57", 4);
	assert_whole(b, n, &h);
	b[20] ^= 1;
	assert_bad(b, n, "CRC32C");
}

static void
v2_malformed(void **state)
{
	uint8_t	b[PROXY_V2_MAX + 64];
	size_t	n;

	memset(b, 0, sizeof(b));
	n = v2_head(b, 0x11, 0x11, 12);
	assert_bad(b, n, "version 1");
	n = v2_head(b, 0x22, 0x11, 12);
	assert_bad(b, n, "command 2");
	n = v2_head(b, 0x21, 0x41, 12);
	assert_bad(b, n, "family");
	n = v2_head(b, 0x21, 0x13, 12);
	assert_bad(b, n, "family");
	n = v2_head(b, 0x21, 0x10, 12);		/* only the spec's seven */
	assert_bad(b, n, "family 0x10");
	n = v2_head(b, 0x21, 0x01, 12);
	assert_bad(b, n, "family 0x01");
	n = v2_head(b, 0x20, 0x02, 0);
	assert_bad(b, n, "family 0x02");
	n = v2_head(b, 0x21, 0x12, 12);		/* UDP */
	assert_bad(b, n, "stream");
	n = v2_head(b, 0x21, 0x11, 11);		/* addresses do not fit */
	assert_bad(b, n, "too short");
	n = v2_head(b, 0x21, 0x21, 12);
	assert_bad(b, n, "too short");
	n = v2_head(b, 0x21, 0x31, 215);
	assert_bad(b, n, "too short");
	/* Too long is refused from the length alone, before the body. */
	v2_head(b, 0x21, 0x11, PROXY_V2_MAX - 16 + 1);
	assert_bad(b, 16, "more than");
	v2_head(b, 0x21, 0x11, 65535);
	assert_bad(b, 16, "more than");
	v2_head(b, 0x21, 0x11, PROXY_V2_MAX - 16);
	assert_int_equal(parse(b, 16, &(struct proxy_hdr){0}, &(size_t){0}),
	    PROXY_NEED_MORE);
}

static void
build_and_parse_back(void **state)
{
	struct sockaddr_in	s4 = { .sin_family = AF_INET,
				    .sin_port = htons(4000) };
	struct sockaddr_in6	d6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(80) }, s6 = d6;
	struct sockaddr_un	su = { .sun_family = AF_UNIX };
	struct proxy_hdr	h;
	uint8_t			buf[PROXY_BUILD_MAX];
	char			a[64];
	ssize_t			n;
	size_t			used;

	inet_pton(AF_INET, "127.0.0.77", &s4.sin_addr);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &d6.sin6_addr);
	/* A v4-mapped destination comes out as IPv4 like its source. */
	n = proxy_build(1, (struct sockaddr *)&s4, (struct sockaddr *)&d6, buf,
	    sizeof(buf));
	assert_int_equal(n, strlen("PROXY TCP4 127.0.0.77 127.0.0.1 4000 80"
	    "\r\n"));
	assert_memory_equal(buf, "PROXY TCP4 127.0.0.77 127.0.0.1 4000 80\r\n",
	    (size_t)n);
	n = proxy_build(2, (struct sockaddr *)&s4, (struct sockaddr *)&d6, buf,
	    sizeof(buf));
	assert_int_equal(n, 28);
	assert_int_equal(parse(buf, (size_t)n, &h, &used), PROXY_DONE);
	assert_string_equal(ntop(&h.src, a, sizeof(a)), "127.0.0.77");
	/* Families that differ: both as IPv6. */
	inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr);
	n = proxy_build(1, (struct sockaddr *)&s6, (struct sockaddr *)&s4, buf,
	    sizeof(buf));
	assert_memory_equal(buf, "PROXY TCP6 2001:db8::5 ::ffff:127.0.0.77 80 "
	    "4000\r\n", (size_t)n);
	n = proxy_build(2, (struct sockaddr *)&s6, (struct sockaddr *)&s4, buf,
	    sizeof(buf));
	assert_int_equal(parse(buf, (size_t)n, &h, &used), PROXY_DONE);
	assert_int_equal(h.src.ss_family, AF_INET6);
	/* unix: UNKNOWN in v1, AF_UNIX in v2; no address: LOCAL. */
	strcpy(su.sun_path, "/tmp/x.sock");
	n = proxy_build(1, (struct sockaddr *)&su, (struct sockaddr *)&su, buf,
	    sizeof(buf));
	assert_memory_equal(buf, "PROXY UNKNOWN\r\n", (size_t)n);
	n = proxy_build(2, (struct sockaddr *)&su, (struct sockaddr *)&su, buf,
	    sizeof(buf));
	assert_int_equal(n, 16 + 216);
	assert_int_equal(parse(buf, (size_t)n, &h, &used), PROXY_DONE);
	assert_string_equal(((struct sockaddr_un *)&h.src)->sun_path,
	    "/tmp/x.sock");
	n = proxy_build(2, NULL, NULL, buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_int_equal(buf[12], 0x20);
	assert_int_equal(parse(buf, (size_t)n, &h, &used), PROXY_DONE);
	assert_false(h.has_addr);
	assert_int_equal(proxy_build(2, NULL, NULL, buf, 20), -1);
	assert_int_equal(proxy_build(1, (struct sockaddr *)&s6,
	    (struct sockaddr *)&s6, buf, 20), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v1_tcp4_tcp6_unknown),
		cmocka_unit_test(v1_longest_line),
		cmocka_unit_test(v1_malformed),
		cmocka_unit_test(not_a_header),
		cmocka_unit_test(v2_inet_inet6),
		cmocka_unit_test(v2_unix_local_unspec),
		cmocka_unit_test(v2_tlvs_walked),
		cmocka_unit_test(v2_crc32c),
		cmocka_unit_test(v2_malformed),
		cmocka_unit_test(build_and_parse_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
