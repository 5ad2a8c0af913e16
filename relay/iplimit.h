/*
 * Per-client-address limits: live connections (--max-conns-per-ip) and a
 * token bucket of new connections per second (--rate), in a table of
 * bounded size. Time is passed in, so the logic is testable.
 */
#ifndef RELAY_IPLIMIT_H
#define RELAY_IPLIMIT_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* Addresses tracked at most: about 100 bytes each. */
#define IPLIMIT_ENTRIES	65536

enum iplimit_verdict {
	IPL_OK,
	IPL_TOO_MANY,	/* --max-conns-per-ip reached */
	IPL_RATE,	/* --rate exceeded */
	IPL_FULL	/* every tracked address is busy: none can be added */
};

struct iplimit;

/* max_conns and rate 0 = no such limit. NULL when out of memory. */
struct iplimit *iplimit_new(unsigned max_conns, unsigned rate,
	    size_t max_entries);
void	iplimit_free(struct iplimit *);
/*
 * Whether a new connection from sa may proceed at now_ms (any monotonic
 * clock): IPL_OK spends one token of its bucket. Addresses other than
 * IPv4 and IPv6 are not limited.
 */
enum iplimit_verdict iplimit_check(struct iplimit *, const struct sockaddr *,
	    uint64_t now_ms);
/* Counts a live connection from sa (after IPL_OK); 0, or -1 when the
 * table has no room. Each successful hold needs one release. */
int	iplimit_hold(struct iplimit *, const struct sockaddr *, uint64_t now_ms);
void	iplimit_release(struct iplimit *, const struct sockaddr *);
/* Addresses tracked now (for tests: read without the lock). */
size_t	iplimit_size(const struct iplimit *);

#endif
