/* Address specs as users write them, and sockaddrs as logs show them. */
#ifndef RELAY_ADDR_H
#define RELAY_ADDR_H

#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_HOST_MAX	255
#define ADDR_PATH_MAX	(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
/* Room for the longest formatted address: "udp:[HOST]:65535" or
 * "unix:PATH". */
#define ADDR_STR_MAX	(ADDR_HOST_MAX + sizeof("udp:[]:65535"))

enum addr_kind { ADDR_INET, ADDR_UNIX };

struct addr_spec {
	enum addr_kind	kind;
	char		host[ADDR_HOST_MAX + 1]; /* "" = any; IPv6 without [] */
	int		numeric;	/* host is an IP literal: no lookup */
	uint16_t	port;
	char		path[ADDR_PATH_MAX + 1];
	int		udp;		/* "udp:" prefix: datagrams */
	int		tls;		/* "tls:" prefix: TLS on a TCP address */
};

/* Parses "1-65535". Returns 0, or -1 with a message in err. */
int	addr_parse_port(const char *s, uint16_t *port, char *err, size_t errlen);
/* Parses --listen: PORT, ADDR:PORT, [IPv6]:PORT, *:PORT or unix:PATH;
 * any but unix:PATH may carry a udp: or tls: prefix. */
int	addr_parse_listen(const char *s, struct addr_spec *a, char *err,
	    size_t errlen);
/* Parses --to: HOST:PORT, [IPv6]:PORT or unix:PATH (a host is required);
 * udp:HOST:PORT and udp:[IPv6]:PORT for datagrams, tls:HOST:PORT and
 * tls:[IPv6]:PORT for TLS. */
int	addr_parse_target(const char *s, struct addr_spec *a, char *err,
	    size_t errlen);
/* Splits "[v6]:rest", "host:rest" at the host; returns rest or NULL. */
const char *addr_split_host(const char *s, char *host, size_t hostlen,
	    char *err, size_t errlen);

/* Writes "1.2.3.4:80", "[::1]:80", "*:80" or "unix:/p" into buf, with
 * "udp:" or "tls:" in front for datagram or TLS addresses. */
void	addr_spec_format(const struct addr_spec *a, char *buf, size_t len);
/* Writes a sockaddr the same way; v4-mapped IPv6 shows as IPv4. */
void	addr_sa_format(const struct sockaddr *sa, socklen_t salen, char *buf,
	    size_t len);
/* Fills a sockaddr_un for path; returns its length. */
socklen_t addr_unix_sockaddr(const char *path, struct sockaddr_un *sun);

#endif
