/* Parsing of --ssh destinations and forward specs: pure functions. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "relay/spec.h"

#define MAX_FIELDS	4

static const char *const kind_opt[] = { "-R", "-L", "-D" };

/*
 * Splits s at ':' outside brackets into at most MAX_FIELDS fields, each
 * with its brackets removed; bracketed[i] tells which had them.
 */
static int
split_fields(const char *s, char f[MAX_FIELDS][ADDR_HOST_MAX + 1],
    int *bracketed, char *err, size_t errlen)
{
	int		 n = 0;
	size_t		 len;
	const char	*end;

	for (;;) {
		if (n == MAX_FIELDS) {
			snprintf(err, errlen, "too many fields");
			return -1;
		}
		bracketed[n] = *s == '[';
		if (bracketed[n]) {
			if ((end = strchr(s, ']')) == NULL ||
			    (end[1] != ':' && end[1] != '\0')) {
				snprintf(err, errlen, "unbalanced brackets");
				return -1;
			}
			s++;
		} else if ((end = strchr(s, ':')) == NULL)
			end = s + strlen(s);
		if ((len = (size_t)(end - s)) > ADDR_HOST_MAX) {
			snprintf(err, errlen, "field too long");
			return -1;
		}
		memcpy(f[n], s, len);
		f[n][len] = '\0';
		n++;
		if (bracketed[n - 1])
			end++;
		if (*end == '\0')
			return n;
		s = end + 1;
	}
}

/* Fills a->host from a field: IP literal, host name, "" or "*". */
static int
set_host(struct addr_spec *a, const char *h, int bracketed, int any_ok,
    char *err, size_t errlen)
{
	struct in6_addr	v6;
	struct in_addr	v4;
	const char	*p;

	if (any_ok && (*h == '\0' || strcmp(h, "*") == 0)) {
		strcpy(a->host, h);
		return 0;
	}
	if (bracketed) {
		if (inet_pton(AF_INET6, h, &v6) != 1) {
			snprintf(err, errlen, "bad IPv6 address \"%s\"", h);
			return -1;
		}
		a->numeric = 1;
	} else if (inet_pton(AF_INET, h, &v4) == 1) {
		a->numeric = 1;
	} else {
		if (*h == '\0' || *h == '-' || *h == '.') {
			snprintf(err, errlen, "bad host \"%s\"", h);
			return -1;
		}
		for (p = h; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) &&
			    strchr("-._", *p) == NULL) {
				snprintf(err, errlen, "bad host \"%s\"", h);
				return -1;
			}
		if (strspn(h, "0123456789.") == strlen(h)) {
			snprintf(err, errlen, "bad IPv4 address \"%s\"", h);
			return -1;
		}
	}
	strcpy(a->host, h);
	return 0;
}

static int
set_port(uint16_t *port, const char *s, int zero_ok, char *err,
    size_t errlen)
{
	if (zero_ok && strcmp(s, "0") == 0) {
		*port = 0;
		return 0;
	}
	return addr_parse_port(s, port, err, errlen);
}

static int
fill(enum forward_kind kind, char f[MAX_FIELDS][ADDR_HOST_MAX + 1],
    const int *br, int n, struct forward_spec *fw, char *err, size_t errlen)
{
	int	want = kind == FWD_DYNAMIC ? 1 : 3, bind = n > want;

	if (n != want && n != want + 1) {
		snprintf(err, errlen, "expected %s", kind == FWD_DYNAMIC ?
		    "[BIND:]PORT" : "[BIND:]PORT:HOST:HOSTPORT");
		return -1;
	}
	if (bind) {
		if (set_host(&fw->listen, f[0], br[0], 1, err, errlen) == -1)
			return -1;
	} else if (kind != FWD_REMOTE) {
		/* Like ssh without GatewayPorts: loopback only. */
		strcpy(fw->listen.host, "127.0.0.1");
		fw->listen.numeric = 1;
	}
	/* Locally "*" means every address, which addr_spec spells "". */
	if (kind != FWD_REMOTE && strcmp(fw->listen.host, "*") == 0)
		fw->listen.host[0] = '\0';
	if (set_port(&fw->listen.port, f[bind], kind == FWD_REMOTE, err,
	    errlen) == -1)
		return -1;
	if (kind == FWD_DYNAMIC)
		return 0;
	if (set_host(&fw->to, f[bind + 1], br[bind + 1], 0, err, errlen) == -1)
		return -1;
	return set_port(&fw->to.port, f[bind + 2], 0, err, errlen);
}

int
forward_parse(enum forward_kind kind, const char *s, struct forward_spec *fw,
    char *err, size_t errlen)
{
	char	f[MAX_FIELDS][ADDR_HOST_MAX + 1], why[128];
	int	br[MAX_FIELDS], n;

	memset(fw, 0, sizeof(*fw));
	fw->kind = kind;
	fw->listen.kind = fw->to.kind = ADDR_INET;
	if ((n = split_fields(s, f, br, why, sizeof(why))) == -1 ||
	    fill(kind, f, br, n, fw, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s %s: %s", kind_opt[kind], s, why);
		return -1;
	}
	return 0;
}

int
ssh_dest_parse(const char *s, struct ssh_dest *d, char *err, size_t errlen)
{
	char		 f[MAX_FIELDS][ADDR_HOST_MAX + 1], why[128];
	const char	*at = strrchr(s, '@'), *host = at ? at + 1 : s;
	struct addr_spec a;
	int		 br[MAX_FIELDS], n;

	memset(d, 0, sizeof(*d));
	memset(&a, 0, sizeof(a));
	d->port = 22;
	if (at != NULL) {
		if (at == s || (size_t)(at - s) >= sizeof(d->user)) {
			snprintf(err, errlen, "--ssh %s: bad user name", s);
			return -1;
		}
		memcpy(d->user, s, (size_t)(at - s));
	}
	if ((n = split_fields(host, f, br, why, sizeof(why))) == -1 ||
	    n > 2 || (n == 1 && !br[0] && strchr(host, ':') != NULL)) {
		snprintf(err, errlen, "--ssh %s: expected [USER@]HOST[:PORT] "
		    "(IPv6 as [ADDR]:PORT)", s);
		return -1;
	}
	if (set_host(&a, f[0], br[0], 0, why, sizeof(why)) == -1 ||
	    (n == 2 && addr_parse_port(f[1], &d->port, why,
	    sizeof(why)) == -1)) {
		snprintf(err, errlen, "--ssh %s: %s", s, why);
		return -1;
	}
	strcpy(d->host, a.host);
	return 0;
}

static void
host_format(const char *h, char *buf, size_t len)
{
	snprintf(buf, len, strchr(h, ':') ? "[%s]" : "%s", h);
}

void
forward_format(const struct forward_spec *fw, char *buf, size_t len)
{
	char	bind[ADDR_HOST_MAX + 4], to[ADDR_HOST_MAX + 4];

	/* A local "" is every address; left out, it would read as loopback. */
	host_format(fw->kind != FWD_REMOTE && fw->listen.host[0] == '\0' ?
	    "*" : fw->listen.host, bind, sizeof(bind));
	host_format(fw->to.host, to, sizeof(to));
	if (fw->kind == FWD_DYNAMIC)
		snprintf(buf, len, "-D %s%s%u", bind, *bind ? ":" : "",
		    fw->listen.port);
	else
		snprintf(buf, len, "%s %s%s%u:%s:%u", kind_opt[fw->kind], bind,
		    *bind ? ":" : "", fw->listen.port, to, fw->to.port);
}
