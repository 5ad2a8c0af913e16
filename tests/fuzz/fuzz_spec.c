/*
 * -R/-L/-D forward specs and --ssh destinations. The first byte picks
 * which (so one corpus covers all four); a forward that parses must
 * format, as the logs show it, into a spec that parses the same.
 */
#include "relay/spec.h"
#include "tests/fuzz/fuzz.h"

static int
same_addr(const struct addr_spec *a, const struct addr_spec *b)
{
	return a->kind == b->kind && a->numeric == b->numeric &&
	    a->port == b->port && strcmp(a->host, b->host) == 0;
}

static void
forward(enum forward_kind kind, const char *s)
{
	struct forward_spec	f, g;
	char			err[1024] = "", buf[1024];

	if (forward_parse(kind, s, &f, err, sizeof(err)) == -1) {
		FUZZ_CHECK(err[0] != '\0', "\"%s\" fails without a message", s);
		return;
	}
	forward_format(&f, buf, sizeof(buf));
	/* "-R " and the like come first. */
	FUZZ_CHECK(forward_parse(kind, buf + 3, &g, err, sizeof(err)) == 0,
	    "\"%s\" formats as \"%s\", which fails: %s", s, buf, err);
	FUZZ_CHECK(same_addr(&f.listen, &g.listen) && (kind == FWD_DYNAMIC ||
	    same_addr(&f.to, &g.to)),
	    "\"%s\" formats as \"%s\", which parses differently", s, buf);
}

static void
dest(const char *s)
{
	struct ssh_dest	d, e;
	char		err[1024] = "", buf[1024];

	if (ssh_dest_parse(s, &d, err, sizeof(err)) == -1) {
		FUZZ_CHECK(err[0] != '\0', "\"%s\" fails without a message", s);
		return;
	}
	FUZZ_CHECK(d.host[0] != '\0' && d.port != 0, "\"%s\": no host or port",
	    s);
	snprintf(buf, sizeof(buf), strchr(d.host, ':') ? "%s%s[%s]:%u" :
	    "%s%s%s:%u", d.user, d.user[0] ? "@" : "", d.host, d.port);
	FUZZ_CHECK(ssh_dest_parse(buf, &e, err, sizeof(err)) == 0,
	    "\"%s\" rewritten as \"%s\" fails: %s", s, buf, err);
	FUZZ_CHECK(strcmp(d.user, e.user) == 0 && strcmp(d.host, e.host) == 0 &&
	    d.port == e.port, "\"%s\" rewritten as \"%s\" differs", s, buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;

	fuzz_quiet();
	if (size == 0 || (s = fuzz_cstr(data + 1, size - 1)) == NULL)
		return 0;
	switch (data[0] % 4) {
	case 0:
		forward(FWD_REMOTE, s);
		break;
	case 1:
		forward(FWD_LOCAL, s);
		break;
	case 2:
		forward(FWD_DYNAMIC, s);
		break;
	default:
		dest(s);
	}
	free(s);
	return 0;
}
