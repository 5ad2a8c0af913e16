/*
 * Access lists: --allow and --deny CIDR rules, first match wins. Pure:
 * parsing and matching only.
 */
#ifndef RELAY_ACL_H
#define RELAY_ACL_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* An IPv4 (af AF_INET, addr[0..3]) or IPv6 network. */
struct cidr {
	int		af;
	uint8_t		addr[16];
	unsigned	bits;
};

struct acl_rule {
	int		allow;		/* 1: --allow, 0: --deny */
	struct cidr	net;
};

/*
 * Parses ADDR or ADDR/BITS (IPv6 without brackets). A bare address is one
 * host. Refused: a prefix longer than the family's, leading zeros or signs
 * in it, and bits set beyond the prefix (10.1.2.3/8 is a typo more often
 * than a wish). An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) becomes
 * the IPv4 network it names, as clients are matched. Returns 0, or -1
 * with a message in err.
 */
int	cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen);
/* Writes "10.0.0.0/8" or "2001:db8::/32". */
void	cidr_format(const struct cidr *c, char *buf, size_t len);
/* Whether sa (IPv4, IPv6; v4-mapped IPv6 counts as IPv4) is in c. */
int	cidr_match(const struct cidr *c, const struct sockaddr *sa);
/*
 * Whether rules let sa in: the first rule that matches decides; with no
 * match, allowed only if no rule is an --allow. A unix client is always
 * let in (it has no address). *rule is the deciding rule or NULL.
 */
int	acl_permits(const struct acl_rule *rules, size_t n,
	    const struct sockaddr *sa, const struct acl_rule **rule);

#endif
