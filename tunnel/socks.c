/* SOCKS5 message parsing: every length is checked before it is used. */
#include <arpa/inet.h>
#include <string.h>

#include "tunnel/socks.h"

#define SOCKS_VERSION	5
#define METHOD_NOAUTH	0x00
#define CMD_CONNECT	0x01
#define ATYP_IPV4	0x01
#define ATYP_DOMAIN	0x03
#define ATYP_IPV6	0x04

enum socks_parse
socks_parse_greeting(const uint8_t *buf, size_t len, size_t *used)
{
	size_t	n, i;

	if (len < 2)
		return SOCKS_NEED_MORE;
	if (buf[0] != SOCKS_VERSION || buf[1] == 0)
		return SOCKS_BAD;
	n = buf[1];
	if (len < 2 + n)
		return SOCKS_NEED_MORE;
	*used = 2 + n;
	for (i = 0; i < n; i++)
		if (buf[2 + i] == METHOD_NOAUTH)
			return SOCKS_DONE;
	return SOCKS_BAD;
}

/* A domain name as sent: printable, no separators an address parser
 * would misread. */
static int
valid_domain(const uint8_t *d, size_t n)
{
	size_t	i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f || d[i] == '[' || d[i] == ']')
			return 0;
	return 1;
}

enum socks_parse
socks_parse_request(const uint8_t *buf, size_t len, size_t *used,
    struct addr_spec *to, uint8_t *rep)
{
	size_t	alen;

	*rep = SOCKS_REP_FAILURE;
	if (len < 5)
		return SOCKS_NEED_MORE;
	if (buf[0] != SOCKS_VERSION || buf[2] != 0)
		return SOCKS_BAD;
	switch (buf[3]) {
	case ATYP_IPV4:
		alen = 4;
		break;
	case ATYP_IPV6:
		alen = 16;
		break;
	case ATYP_DOMAIN:
		alen = 1 + (size_t)buf[4];
		break;
	default:
		*rep = SOCKS_REP_ATYP;
		return SOCKS_BAD;
	}
	if (len < 4 + alen + 2)
		return SOCKS_NEED_MORE;
	if (buf[1] != CMD_CONNECT) {
		*rep = SOCKS_REP_CMD;
		return SOCKS_BAD;
	}
	memset(to, 0, sizeof(*to));
	to->kind = ADDR_INET;
	if (buf[3] == ATYP_IPV4) {
		inet_ntop(AF_INET, buf + 4, to->host, sizeof(to->host));
		to->numeric = 1;
	} else if (buf[3] == ATYP_IPV6) {
		inet_ntop(AF_INET6, buf + 4, to->host, sizeof(to->host));
		to->numeric = 1;
	} else {
		if (!valid_domain(buf + 5, alen - 1))
			return SOCKS_BAD;
		memcpy(to->host, buf + 5, alen - 1);
		to->host[alen - 1] = '\0';
	}
	to->port = (uint16_t)(buf[4 + alen] << 8 | buf[5 + alen]);
	if (to->port == 0)
		return SOCKS_BAD;
	*used = 4 + alen + 2;
	*rep = SOCKS_REP_OK;
	return SOCKS_DONE;
}

size_t
socks_greeting_len(const uint8_t *buf, size_t have)
{
	if (have < 2)
		return 2;
	return buf[0] == SOCKS_VERSION ? 2 + (size_t)buf[1] : 0;
}

size_t
socks_request_len(const uint8_t *buf, size_t have)
{
	if (have < 5)
		return 5;
	if (buf[0] != SOCKS_VERSION)
		return 0;
	switch (buf[3]) {
	case ATYP_IPV4:
		return 4 + 4 + 2;
	case ATYP_IPV6:
		return 4 + 16 + 2;
	case ATYP_DOMAIN:
		return 4 + 1 + (size_t)buf[4] + 2;
	default:
		return 0;
	}
}

void
socks_reply(uint8_t out[SOCKS_REPLY_LEN], uint8_t rep)
{
	memset(out, 0, SOCKS_REPLY_LEN);
	out[0] = SOCKS_VERSION;
	out[1] = rep;
	out[3] = ATYP_IPV4;
}
