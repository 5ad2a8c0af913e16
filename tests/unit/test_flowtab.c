/* Unit tests for the UDP flow table and its hash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <cmocka.h>

#include "relay/flowtab.h"

/* The reference vectors: key 00..0f, message 00..len-1. */
static void
siphash_vectors(void **state)
{
	uint8_t	key[16], msg[24];
	size_t	i;

	for (i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < 24; i++)
		msg[i] = (uint8_t)i;
	assert_true(flow_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(flow_siphash(key, msg, 8) == 0x93f5f5799a932462ULL);
	assert_true(flow_siphash(key, msg, 24) == 0xb8ad50c6f649af94ULL);
}

static void
v4_and_mapped_v6_are_one_key(void **state)
{
	struct sockaddr_in	s4 = { .sin_family = AF_INET,
				    .sin_port = htons(5353) };
	struct sockaddr_in6	s6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(5353) };
	struct sockaddr_un	su = { .sun_family = AF_UNIX };
	struct flow_key		a, b;

	inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
	assert_int_equal(flow_key_from_sa(&a, (void *)&s4, sizeof(s4)), 0);
	assert_int_equal(flow_key_from_sa(&b, (void *)&s6, sizeof(s6)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	s6.sin6_port = htons(5354);
	flow_key_from_sa(&b, (void *)&s6, sizeof(s6));
	assert_memory_not_equal(&a, &b, sizeof(a));
	assert_int_equal(flow_key_from_sa(&a, (void *)&su, sizeof(su)), -1);
	assert_int_equal(flow_key_from_sa(&a, (void *)&s4, 4), -1);
}

#define N	20000

/* Many entries: each found, the table grown, removal from any place. */
static void
insert_find_remove(void **state)
{
	struct sockaddr_in6	 s6 = { .sin6_family = AF_INET6 };
	struct flow_entry	*e = calloc(N, sizeof(*e));
	struct flow_key		 k;
	struct flowtab		 t;
	size_t			 i;

	assert_non_null(e);
	assert_int_equal(flowtab_init(&t), 0);
	for (i = 0; i < N; i++) {
		s6.sin6_addr.s6_addr[15] = (uint8_t)i;
		s6.sin6_addr.s6_addr[14] = (uint8_t)(i >> 8);
		s6.sin6_port = htons((uint16_t)(1000 + i % 7));
		flow_key_from_sa(&e[i].key, (void *)&s6, sizeof(s6));
		assert_null(flowtab_find(&t, &e[i].key));
		flowtab_insert(&t, &e[i]);
	}
	assert_int_equal(t.count, N);
	assert_true(t.nbuckets >= N);
	for (i = 0; i < N; i++)
		assert_ptr_equal(flowtab_find(&t, &e[i].key), &e[i]);
	for (i = 0; i < N; i += 2)
		flowtab_remove(&t, &e[i]);
	assert_int_equal(t.count, N / 2);
	for (i = 0; i < N; i++)
		assert_ptr_equal(flowtab_find(&t, &e[i].key),
		    i % 2 ? &e[i] : NULL);
	k = e[1].key;
	k.port ^= 1;
	assert_null(flowtab_find(&t, &k));
	flowtab_free(&t);
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(siphash_vectors),
		cmocka_unit_test(v4_and_mapped_v6_are_one_key),
		cmocka_unit_test(insert_find_remove),
	};

	return cmocka_run_group_tests_name("flowtab", tests, NULL, NULL);
}
