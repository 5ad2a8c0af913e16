/*
 * A hash table of flows keyed by the client's address, for the UDP relay:
 * the entries live inside the caller's objects, the table only links them.
 */
#ifndef RELAY_FLOWTAB_H
#define RELAY_FLOWTAB_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* An IPv4 or IPv6 address and port; IPv4 in its v4-mapped IPv6 form, so
 * the same client has one key whichever socket it reached. */
struct flow_key {
	uint8_t		addr[16];
	uint32_t	scope;
	uint16_t	port;
	uint16_t	zero;		/* padding, kept 0 for memcmp */
};

struct flow_entry {
	struct flow_entry	*next;
	struct flow_key		 key;
	uint64_t		 hash;
};

struct flowtab {
	struct flow_entry	**buckets;
	size_t			 nbuckets;	/* a power of two */
	size_t			 count;
	uint8_t			 secret[16];	/* keys the hash */
};

/* Fills key from an AF_INET or AF_INET6 address; -1 for anything else. */
int	flow_key_from_sa(struct flow_key *, const struct sockaddr *,
	    socklen_t);
/* SipHash-2-4 of len bytes under a 16-byte key. */
uint64_t flow_siphash(const uint8_t key[16], const void *, size_t len);

/* An empty table with a random secret; -1 when out of memory. */
int	flowtab_init(struct flowtab *);
/* Frees the buckets (the entries are the caller's). */
void	flowtab_free(struct flowtab *);
/* The entry with this key, or NULL. */
struct flow_entry *flowtab_find(const struct flowtab *,
	    const struct flow_key *);
/* Links e (its key set, not in the table). The table grows as it fills;
 * if it cannot, chains just get longer. */
void	flowtab_insert(struct flowtab *, struct flow_entry *);
/* Unlinks e, which must be in the table. */
void	flowtab_remove(struct flowtab *, struct flow_entry *);

#endif
