/* Unit tests for the pipe pool: its cap, its spares, its pipes' size. */
#include <sys/resource.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "relay/pipepool.h"

/* 64 descriptors: at most 1/8 of them, 4 pipes, may be pipes. The cap is
 * computed at the first pipepool_get, so this runs first. */
static void
cap_follows_descriptor_limit(void **state)
{
	struct rlimit	 rl = { 64, 64 };
	struct pipebuf	*p[5];
	int		 i;

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	for (i = 0; i < 4; i++)
		assert_non_null(p[i] = pipepool_get());
	assert_int_equal(pipepool_count(), 4);
	assert_null(pipepool_get());
	/* A pipe given back is taken again, without a new one. */
	pipepool_put(p[3]);
	assert_ptr_equal(p[4] = pipepool_get(), p[3]);
	assert_null(pipepool_get());
	for (i = 0; i < 4; i++)
		pipepool_put(p[i]);
	assert_int_equal(pipepool_count(), 4);
	pipepool_drain();
	assert_int_equal(pipepool_count(), 0);
}

static void
pipes_are_sized_and_non_blocking(void **state)
{
	struct pipebuf	*p = pipepool_get();
	char		 c = 'x';

	assert_non_null(p);
	assert_int_equal((int)p->size, fcntl(p->wr, F_GETPIPE_SZ));
	assert_true(p->size >= 4096);
	assert_true(fcntl(p->rd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(p->wr, F_GETFD) & FD_CLOEXEC);
	/* One holding a byte is closed, not kept for another connection. */
	assert_int_equal(write(p->wr, &c, 1), 1);
	pipepool_discard(p);
	assert_int_equal(pipepool_count(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cap_follows_descriptor_limit),
		cmocka_unit_test(pipes_are_sized_and_non_blocking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
