/*
 * --listen and --to addresses: parsing never fails badly, and whatever
 * parses formats back into a string that parses to the same address.
 */
#include "relay/addr.h"
#include "tests/fuzz/fuzz.h"

typedef int parse_fn(const char *, struct addr_spec *, char *, size_t);

static void
same_addr(const struct addr_spec *a, const struct addr_spec *b,
    const char *in, const char *out)
{
	FUZZ_CHECK(a->kind == b->kind && a->numeric == b->numeric &&
	    a->udp == b->udp && a->tls == b->tls &&
	    a->port == b->port && strcmp(a->host, b->host) == 0 &&
	    strcmp(a->path, b->path) == 0,
	    "\"%s\" formats as \"%s\", which parses differently", in, out);
}

static void
round_trip(parse_fn *parse, const char *s)
{
	struct addr_spec	a, b;
	char			err[512] = "", buf[ADDR_STR_MAX + 8];

	if (parse(s, &a, err, sizeof(err)) == -1) {
		FUZZ_CHECK(err[0] != '\0', "\"%s\" fails without a message", s);
		return;
	}
	FUZZ_CHECK(a.kind == ADDR_UNIX || a.port != 0, "\"%s\": port 0", s);
	addr_spec_format(&a, buf, sizeof(buf));
	FUZZ_CHECK(strlen(buf) + 1 < sizeof(buf), "\"%s\" formats too long",
	    s);
	FUZZ_CHECK(parse(buf, &b, err, sizeof(err)) == 0,
	    "\"%s\" formats as \"%s\", which fails: %s", s, buf, err);
	same_addr(&a, &b, s, buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*s;
	uint16_t	 port;
	char		 err[512];

	fuzz_quiet();
	if ((s = fuzz_cstr(data, size)) == NULL)
		return 0;
	round_trip(addr_parse_listen, s);
	round_trip(addr_parse_target, s);
	if (addr_parse_port(s, &port, err, sizeof(err)) == 0) {
		FUZZ_CHECK(port != 0 && strtoul(s, NULL, 10) == port,
		    "port \"%s\" read as %u", s, port);
	}
	free(s);
	return 0;
}
