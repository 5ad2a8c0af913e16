/*
 * Chained hashing with a keyed hash. Clients choose their source address
 * and a UDP source is easily forged, so the hash is SipHash under a secret
 * drawn at start: nobody can aim datagrams at one chain.
 */
#include <sys/random.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/flowtab.h"

#define INITIAL_BUCKETS	64

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

static uint64_t
load64(const uint8_t *p, size_t n)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint64_t
flow_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t	*in = data;
	uint64_t	 k0 = load64(key, 8), k1 = load64(key + 8, 8), m;
	uint64_t	 v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t	 v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t	 v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t	 v3 = 0x7465646279746573ULL ^ k1;
	size_t		 off;

	for (off = 0; off + 8 <= len; off += 8) {
		m = load64(in + off, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	m = load64(in + off, len - off) | (uint64_t)len << 56;
	v3 ^= m;
	SIPROUND;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int
flow_key_from_sa(struct flow_key *k, const struct sockaddr *sa,
    socklen_t salen)
{
	const struct sockaddr_in6	*s6 = (const void *)sa;
	const struct sockaddr_in	*s4 = (const void *)sa;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET && salen >= sizeof(*s4)) {
		k->addr[10] = k->addr[11] = 0xff;
		memcpy(&k->addr[12], &s4->sin_addr, 4);
		k->port = s4->sin_port;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && salen >= sizeof(*s6)) {
		memcpy(k->addr, &s6->sin6_addr, 16);
		k->scope = s6->sin6_scope_id;
		k->port = s6->sin6_port;
		return 0;
	}
	return -1;
}

int
flowtab_init(struct flowtab *t)
{
	uint64_t	fallback;

	memset(t, 0, sizeof(*t));
	if ((t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets))) ==
	    NULL)
		return -1;
	t->nbuckets = INITIAL_BUCKETS;
	if (getrandom(t->secret, sizeof(t->secret), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->secret)) {
		/* Only so early in boot that no attacker is waiting. */
		fallback = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)t;
		memcpy(t->secret, &fallback, sizeof(fallback));
	}
	return 0;
}

void
flowtab_free(struct flowtab *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = t->count = 0;
}

static uint64_t
hash_key(const struct flowtab *t, const struct flow_key *k)
{
	return flow_siphash(t->secret, k, sizeof(*k));
}

struct flow_entry *
flowtab_find(const struct flowtab *t, const struct flow_key *k)
{
	uint64_t		 h = hash_key(t, k);
	struct flow_entry	*e;

	for (e = t->buckets[h & (t->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && memcmp(&e->key, k, sizeof(*k)) == 0)
			return e;
	return NULL;
}

/* Doubles the buckets once there are more entries than buckets. */
static void
grow(struct flowtab *t)
{
	struct flow_entry	**nb, *e, *next;
	size_t			  n = t->nbuckets * 2, i;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < t->nbuckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

void
flowtab_insert(struct flowtab *t, struct flow_entry *e)
{
	struct flow_entry	**b;

	if (t->count >= t->nbuckets)
		grow(t);
	e->hash = hash_key(t, &e->key);
	b = &t->buckets[e->hash & (t->nbuckets - 1)];
	e->next = *b;
	*b = e;
	t->count++;
}

void
flowtab_remove(struct flowtab *t, struct flow_entry *e)
{
	struct flow_entry	**p = &t->buckets[e->hash & (t->nbuckets - 1)];

	while (*p != NULL && *p != e)
		p = &(*p)->next;
	if (*p == e) {
		*p = e->next;
		t->count--;
	}
	e->next = NULL;
}
