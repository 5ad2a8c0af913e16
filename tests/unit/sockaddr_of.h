/*
 * For the unit suites: a socket address from a numeric host. Header-only,
 * since each suite is one file linked with the real sources.
 */
#ifndef TESTS_UNIT_SOCKADDR_OF_H
#define TESTS_UNIT_SOCKADDR_OF_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* An IPv4 or IPv6 address, port 0; fails the test if host is neither. */
static inline struct sockaddr_storage
sa_of(const char *host)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, host, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

#endif
