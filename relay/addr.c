/* Parsing and formatting of addresses: pure functions, no lookups. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "relay/addr.h"

int
addr_parse_port(const char *s, uint16_t *port, char *err, size_t errlen)
{
	unsigned long	v = 0;
	const char	*p;

	if (*s == '\0') {
		snprintf(err, errlen, "missing port");
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p) || v > 65535) {
			snprintf(err, errlen, "bad port \"%s\"", s);
			return -1;
		}
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535) {
		snprintf(err, errlen, "port %s out of range 1-65535", s);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* Host names as in RFC 1123, plus '_' which real zones contain. */
static int
valid_hostname(const char *h)
{
	size_t	n = strlen(h);

	if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
		return 0;
	for (; *h != '\0'; h++)
		if (!isalnum((unsigned char)*h) && strchr("-._", *h) == NULL)
			return 0;
	return 1;
}

static int
all_digits_and_dots(const char *h)
{
	return strspn(h, "0123456789.") == strlen(h);
}

const char *
addr_split_host(const char *s, char *host, size_t hostlen, char *err,
    size_t errlen)
{
	const char	*end, *rest, *whole = s;
	size_t		 n;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':') {
			snprintf(err, errlen, "bad address \"%s\": "
			    "expected [IPv6]:PORT", s);
			return NULL;
		}
		s++;
		rest = end + 2;
	} else {
		if ((end = strchr(s, ':')) == NULL) {
			snprintf(err, errlen, "bad address \"%s\": "
			    "expected HOST:PORT", s);
			return NULL;
		}
		if (strchr(end + 1, ':') != NULL) {
			snprintf(err, errlen, "bad address \"%s\": IPv6 "
			    "addresses need brackets, as in [::1]:80", s);
			return NULL;
		}
		rest = end + 1;
	}
	n = (size_t)(end - s);
	if (n >= hostlen) {
		snprintf(err, errlen, "host name too long in \"%s\"", whole);
		return NULL;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	return rest;
}

static int
parse_unix(const char *path, struct addr_spec *a, const char *s, char *err,
    size_t errlen)
{
	if (*path == '\0') {
		snprintf(err, errlen, "bad address \"%s\": empty socket path",
		    s);
		return -1;
	}
	if (strlen(path) > ADDR_PATH_MAX) {
		snprintf(err, errlen, "socket path too long (max %zu): %s",
		    ADDR_PATH_MAX, path);
		return -1;
	}
	a->kind = ADDR_UNIX;
	strcpy(a->path, path);
	return 0;
}

/* Checks a host part and records whether it is an IP literal. */
static int
classify_host(struct addr_spec *a, int bracketed, const char *s, char *err,
    size_t errlen)
{
	struct in6_addr	v6;
	struct in_addr	v4;

	if (bracketed) {
		if (inet_pton(AF_INET6, a->host, &v6) != 1) {
			snprintf(err, errlen, "bad IPv6 address \"%s\"", s);
			return -1;
		}
		a->numeric = 1;
	} else if (inet_pton(AF_INET, a->host, &v4) == 1) {
		a->numeric = 1;
	} else if (all_digits_and_dots(a->host) || !valid_hostname(a->host)) {
		snprintf(err, errlen, "bad address \"%s\": \"%s\" is neither "
		    "an IP address nor a host name", s, a->host);
		return -1;
	}
	return 0;
}

static int
parse_inet(const char *s, struct addr_spec *a, int host_required, char *err,
    size_t errlen)
{
	const char	*portstr;

	memset(a, 0, sizeof(*a));
	a->kind = ADDR_INET;
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s + 5, a, s, err, errlen);
	if (!host_required && strchr(s, ':') == NULL)
		return addr_parse_port(s, &a->port, err, errlen);
	if ((portstr = addr_split_host(s, a->host, sizeof(a->host), err,
	    errlen)) == NULL)
		return -1;
	if (addr_parse_port(portstr, &a->port, err, errlen) == -1) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, " in \"%s\"", s);
		return -1;
	}
	if (!host_required && strcmp(a->host, "*") == 0) {
		a->host[0] = '\0';
		return 0;
	}
	if (a->host[0] == '\0') {
		snprintf(err, errlen, "bad address \"%s\": missing host", s);
		return -1;
	}
	return classify_host(a, s[0] == '[', s, err, errlen);
}

/* "udp:" selects datagrams, "tls:" TLS over TCP; what follows is an IP
 * address or host as for TCP. */
static int
parse_any(const char *s, struct addr_spec *a, int host_required, char *err,
    size_t errlen)
{
	int	udp = strncmp(s, "udp:", 4) == 0;
	int	tls = strncmp(s, "tls:", 4) == 0;

	if (!udp && !tls)
		return parse_inet(s, a, host_required, err, errlen);
	if (strncmp(s + 4, "unix:", 5) == 0) {
		snprintf(err, errlen, "bad address \"%s\": %s", s, udp ?
		    "udp: takes an IP address and port, not a unix socket" :
		    "TLS needs a TCP address, not a unix socket");
		return -1;
	}
	if (parse_inet(s + 4, a, host_required, err, errlen) == -1)
		return -1;
	a->udp = udp;
	a->tls = tls;
	return 0;
}

int
addr_parse_listen(const char *s, struct addr_spec *a, char *err, size_t errlen)
{
	return parse_any(s, a, 0, err, errlen);
}

int
addr_parse_target(const char *s, struct addr_spec *a, char *err, size_t errlen)
{
	return parse_any(s, a, 1, err, errlen);
}

void
addr_spec_format(const struct addr_spec *a, char *buf, size_t len)
{
	if ((a->udp || a->tls) && len > 4) {
		memcpy(buf, a->udp ? "udp:" : "tls:", 4);
		buf += 4;
		len -= 4;
	}
	if (a->kind == ADDR_UNIX)
		snprintf(buf, len, "unix:%s", a->path);
	else if (a->host[0] == '\0')
		snprintf(buf, len, "*:%u", a->port);
	else if (strchr(a->host, ':') != NULL)
		snprintf(buf, len, "[%s]:%u", a->host, a->port);
	else
		snprintf(buf, len, "%s:%u", a->host, a->port);
}

void
addr_sa_format(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	const struct sockaddr_in6	*s6 = (const void *)sa;
	const struct sockaddr_in	*s4 = (const void *)sa;
	const struct sockaddr_un	*su = (const void *)sa;
	char				 ip[INET6_ADDRSTRLEN];
	struct in_addr			 v4;

	switch (sa->sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
		break;
	case AF_INET6:
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(&v4, &s6->sin6_addr.s6_addr[12], 4);
			inet_ntop(AF_INET, &v4, ip, sizeof(ip));
			snprintf(buf, len, "%s:%u", ip, ntohs(s6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
		}
		break;
	case AF_UNIX:
		if (salen <= offsetof(struct sockaddr_un, sun_path) ||
		    su->sun_path[0] == '\0')
			snprintf(buf, len, "unix:");
		else
			snprintf(buf, len, "unix:%.*s", (int)(salen -
			    offsetof(struct sockaddr_un, sun_path)),
			    su->sun_path);
		break;
	default:
		snprintf(buf, len, "unknown(af=%d)", sa->sa_family);
	}
}

socklen_t
addr_unix_sockaddr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	strncpy(sun->sun_path, path, sizeof(sun->sun_path) - 1);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(sun->sun_path) + 1);
}
