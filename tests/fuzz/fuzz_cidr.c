/*
 * --allow and --deny networks: what parses formats back to the same
 * network, which contains its own address.
 */
#include <netinet/in.h>

#include "relay/acl.h"
#include "tests/fuzz/fuzz.h"

/* The network's own address as a client address. */
static void
contains_itself(const struct cidr *c)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	struct acl_rule		 rule = { 0, *c };
	const struct acl_rule	*by;

	memset(&ss, 0, sizeof(ss));
	if (c->af == AF_INET) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, c->addr, 4);
	} else {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, c->addr, 16);
	}
	FUZZ_CHECK(cidr_match(c, (struct sockaddr *)&ss),
	    "a network does not contain its own address");
	FUZZ_CHECK(!acl_permits(&rule, 1, (struct sockaddr *)&ss, &by) &&
	    by == &rule, "--deny of a network lets its address in");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cidr	 c, d;
	char		*s, err[512] = "", buf[128];

	fuzz_quiet();
	if ((s = fuzz_cstr(data, size)) == NULL)
		return 0;
	if (cidr_parse(s, &c, err, sizeof(err)) == -1) {
		FUZZ_CHECK(err[0] != '\0', "\"%s\" fails without a message", s);
		free(s);
		return 0;
	}
	cidr_format(&c, buf, sizeof(buf));
	FUZZ_CHECK(cidr_parse(buf, &d, err, sizeof(err)) == 0,
	    "\"%s\" formats as \"%s\", which fails: %s", s, buf, err);
	FUZZ_CHECK(c.af == d.af && c.bits == d.bits &&
	    memcmp(c.addr, d.addr, sizeof(c.addr)) == 0,
	    "\"%s\" formats as \"%s\", which parses differently", s, buf);
	contains_itself(&c);
	free(s);
	return 0;
}
