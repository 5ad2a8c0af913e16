/* CIDR rules and the first-match access list built from them. */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/acl.h"

/* The prefix length after '/': decimal, no sign, no leading zero. */
static int
parse_bits(const char *s, unsigned max, unsigned *bits)
{
	unsigned long	v = 0;
	size_t		n = strlen(s);

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > max)
		return -1;
	*bits = (unsigned)v;
	return 0;
}

static int
host_bits_set(const struct cidr *c)
{
	size_t	len = c->af == AF_INET ? 4 : 16, i;

	for (i = c->bits / 8; i < len; i++) {
		uint8_t	mask = i == c->bits / 8 ?
			    (uint8_t)(0xff >> (c->bits % 8)) : 0xff;

		if (c->addr[i] & mask)
			return 1;
	}
	return 0;
}

static const uint8_t	v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			    0xff, 0xff };

int
cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen)
{
	char		 host[INET6_ADDRSTRLEN], fixed[64];
	const char	*slash = strchr(s, '/');
	size_t		 n = slash ? (size_t)(slash - s) : strlen(s);

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(host))
		goto bad_addr;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1)
		c->af = AF_INET;
	else if (inet_pton(AF_INET6, host, c->addr) == 1)
		c->af = AF_INET6;
	else
		goto bad_addr;
	c->bits = c->af == AF_INET ? 32 : 128;
	if (slash != NULL && parse_bits(slash + 1, c->bits, &c->bits) == -1) {
		snprintf(err, errlen, "\"%s\": the prefix length must be 0-%u",
		    s, c->af == AF_INET ? 32 : 128);
		return -1;
	}
	if (c->af == AF_INET6 && memcmp(c->addr, v4mapped, 12) == 0) {
		if (c->bits < 96) {
			snprintf(err, errlen, "\"%s\": an IPv4-mapped network "
			    "needs a prefix of at least 96", s);
			return -1;
		}
		c->af = AF_INET;
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->bits -= 96;
	}
	if (host_bits_set(c)) {
		struct cidr	net = *c;
		size_t		i;

		for (i = net.bits / 8; i < 16; i++)
			net.addr[i] &= i == net.bits / 8 ?
			    (uint8_t)~(0xff >> (net.bits % 8)) : 0;
		cidr_format(&net, fixed, sizeof(fixed));
		snprintf(err, errlen, "\"%s\" has bits set beyond the prefix: "
		    "did you mean %s?", s, fixed);
		return -1;
	}
	return 0;
bad_addr:
	snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address or "
	    "network", s);
	return -1;
}

void
cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN];

	inet_ntop(c->af, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->bits);
}

/* The address of sa as the family it is matched in; NULL if none. */
static const uint8_t *
client_addr(const struct sockaddr *sa, int *af)
{
	const struct sockaddr_in	*s4 = (const void *)sa;
	const struct sockaddr_in6	*s6 = (const void *)sa;

	if (sa->sa_family == AF_INET) {
		*af = AF_INET;
		return (const uint8_t *)&s4->sin_addr;
	}
	if (sa->sa_family != AF_INET6)
		return NULL;
	if (memcmp(&s6->sin6_addr, v4mapped, 12) == 0) {
		*af = AF_INET;
		return s6->sin6_addr.s6_addr + 12;
	}
	*af = AF_INET6;
	return s6->sin6_addr.s6_addr;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t	*a;
	unsigned	 whole = c->bits / 8, rest = c->bits % 8;
	int		 af;

	if ((a = client_addr(sa, &af)) == NULL || af != c->af)
		return 0;
	if (memcmp(a, c->addr, whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ c->addr[whole]) &
	    (uint8_t)(0xff << (8 - rest))) == 0;
}

int
acl_permits(const struct acl_rule *rules, size_t n,
    const struct sockaddr *sa, const struct acl_rule **rule)
{
	size_t	i;
	int	any_allow = 0;

	*rule = NULL;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return 1;
	for (i = 0; i < n; i++) {
		if (cidr_match(&rules[i].net, sa)) {
			*rule = &rules[i];
			return rules[i].allow;
		}
		any_allow |= rules[i].allow;
	}
	return !any_allow;
}
