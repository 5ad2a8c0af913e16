/*
 * A hash of client addresses (seeded, so a client cannot pick colliding
 * ones) with an LRU list: an address with no live connection and a full
 * bucket carries no information and is the first to go when the table is
 * full. One table serves a relay's every loop (--workers): a mutex
 * guards it, taken once per accepted, refused or closed connection.
 */
#include <sys/queue.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "relay/iplimit.h"

#define NBUCKETS	4096	/* a power of two */
#define EVICT_SCAN	16	/* LRU entries looked at for one free slot */

struct ipent {
	LIST_ENTRY(ipent)	 chain;
	TAILQ_ENTRY(ipent)	 lru;
	uint8_t			 key[16];	/* IPv4 as v4-mapped IPv6 */
	unsigned		 conns;
	uint64_t		 milli;		/* tokens x 1000 */
	uint64_t		 last_ms;	/* when milli was computed */
};

struct iplimit {
	unsigned		 max_conns, rate;
	size_t			 max_entries, n;
	uint32_t		 seed;
	LIST_HEAD(, ipent)	 buckets[NBUCKETS];
	TAILQ_HEAD(, ipent)	 lru;
	pthread_mutex_t		 lock;
};

struct iplimit *
iplimit_new(unsigned max_conns, unsigned rate, size_t max_entries)
{
	struct iplimit	*l;
	size_t		 i;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->max_conns = max_conns;
	l->rate = rate;
	l->max_entries = max_entries;
	if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) !=
	    sizeof(l->seed))
		l->seed = (uint32_t)(uintptr_t)l;
	for (i = 0; i < NBUCKETS; i++)
		LIST_INIT(&l->buckets[i]);
	TAILQ_INIT(&l->lru);
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

static void
drop(struct iplimit *l, struct ipent *e)
{
	LIST_REMOVE(e, chain);
	TAILQ_REMOVE(&l->lru, e, lru);
	free(e);
	l->n--;
}

void
iplimit_free(struct iplimit *l)
{
	if (l == NULL)
		return;
	while (!TAILQ_EMPTY(&l->lru))
		drop(l, TAILQ_FIRST(&l->lru));
	pthread_mutex_destroy(&l->lock);
	free(l);
}

size_t
iplimit_size(const struct iplimit *l)
{
	return l->n;
}

/* The key of sa; -1 for what is not IPv4 or IPv6. */
static int
key_of(const struct sockaddr *sa, uint8_t key[16])
{
	const struct sockaddr_in	*s4 = (const void *)sa;
	const struct sockaddr_in6	*s6 = (const void *)sa;

	if (sa->sa_family == AF_INET6) {
		memcpy(key, &s6->sin6_addr, 16);
		return 0;
	}
	if (sa->sa_family != AF_INET)
		return -1;
	memset(key, 0, 10);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, &s4->sin_addr, 4);
	return 0;
}

static size_t
hash(const struct iplimit *l, const uint8_t key[16])
{
	uint32_t	h = 2166136261U ^ l->seed;
	size_t		i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619U;
	return (h ^ (h >> 15)) & (NBUCKETS - 1);
}

/* Brings e's bucket up to now (full after a second's silence). */
static void
refill(const struct iplimit *l, struct ipent *e, uint64_t now_ms)
{
	uint64_t	cap = (uint64_t)l->rate * 1000;

	if (now_ms > e->last_ms) {
		e->milli += (now_ms - e->last_ms) * l->rate;
		e->last_ms = now_ms;
	}
	if (e->milli > cap)
		e->milli = cap;
}

static int
evictable(const struct iplimit *l, struct ipent *e, uint64_t now_ms)
{
	refill(l, e, now_ms);
	return e->conns == 0 && e->milli == (uint64_t)l->rate * 1000;
}

static struct ipent *
find(struct iplimit *l, const uint8_t key[16], size_t h)
{
	struct ipent	*e;

	LIST_FOREACH(e, &l->buckets[h], chain)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	return NULL;
}

/* Finds or makes the entry of key; NULL when the table has no room. */
static struct ipent *
lookup(struct iplimit *l, const uint8_t key[16], uint64_t now_ms)
{
	struct ipent	*e, *old;
	size_t		 h = hash(l, key), i;

	if ((e = find(l, key, h)) != NULL) {
		TAILQ_REMOVE(&l->lru, e, lru);
		TAILQ_INSERT_TAIL(&l->lru, e, lru);
		refill(l, e, now_ms);
		return e;
	}
	if (l->n >= l->max_entries) {
		old = TAILQ_FIRST(&l->lru);
		for (i = 0; old != NULL && i < EVICT_SCAN; i++) {
			if (evictable(l, old, now_ms))
				break;
			old = TAILQ_NEXT(old, lru);
		}
		if (old == NULL || i == EVICT_SCAN)
			return NULL;
		drop(l, old);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->key, key, 16);
	e->milli = (uint64_t)l->rate * 1000;
	e->last_ms = now_ms;
	LIST_INSERT_HEAD(&l->buckets[h], e, chain);
	TAILQ_INSERT_TAIL(&l->lru, e, lru);
	l->n++;
	return e;
}

static enum iplimit_verdict
check(struct iplimit *l, const struct sockaddr *sa, uint64_t now_ms)
{
	struct ipent	*e;
	uint8_t		 key[16];

	if (key_of(sa, key) == -1)
		return IPL_OK;
	if ((e = lookup(l, key, now_ms)) == NULL)
		return IPL_FULL;
	if (l->max_conns > 0 && e->conns >= l->max_conns)
		return IPL_TOO_MANY;
	if (l->rate > 0) {
		if (e->milli < 1000)
			return IPL_RATE;
		e->milli -= 1000;
	}
	return IPL_OK;
}

static int
hold(struct iplimit *l, const struct sockaddr *sa, uint64_t now_ms)
{
	struct ipent	*e;
	uint8_t		 key[16];

	if (key_of(sa, key) == -1)
		return 0;
	if ((e = lookup(l, key, now_ms)) == NULL)
		return -1;
	e->conns++;
	return 0;
}

static void
release(struct iplimit *l, const struct sockaddr *sa)
{
	struct ipent	*e;
	uint8_t		 key[16];

	if (key_of(sa, key) == -1 ||
	    (e = find(l, key, hash(l, key))) == NULL || e->conns == 0)
		return;
	/* Without a rate an idle entry says nothing: free it now. */
	if (--e->conns == 0 && l->rate == 0)
		drop(l, e);
}

enum iplimit_verdict
iplimit_check(struct iplimit *l, const struct sockaddr *sa, uint64_t now_ms)
{
	enum iplimit_verdict	v;

	pthread_mutex_lock(&l->lock);
	v = check(l, sa, now_ms);
	pthread_mutex_unlock(&l->lock);
	return v;
}

int
iplimit_hold(struct iplimit *l, const struct sockaddr *sa, uint64_t now_ms)
{
	int	rc;

	pthread_mutex_lock(&l->lock);
	rc = hold(l, sa, now_ms);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void
iplimit_release(struct iplimit *l, const struct sockaddr *sa)
{
	pthread_mutex_lock(&l->lock);
	release(l, sa);
	pthread_mutex_unlock(&l->lock);
}
