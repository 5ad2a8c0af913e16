/* Unit tests for the pump's choice between splicing and copying. */
#include <sys/eventfd.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "relay/pump.h"

/* An endpoint over memory: reads give `in` once, then EOF; writes append
 * to `out`. Its splice_fd is `fd`, which may be anything. */
struct mem_ep {
	struct endpoint	 ep;
	const char	*in;
	char		 out[64];
	size_t		 outlen;
	int		 fd, shut;
};

static ssize_t
mem_read(struct endpoint *ep, void *buf, size_t len)
{
	struct mem_ep	*m = (struct mem_ep *)ep;
	size_t		 n = strlen(m->in);

	memcpy(buf, m->in, n);
	m->in = "";
	return (ssize_t)n;
}

static ssize_t
mem_write(struct endpoint *ep, const void *buf, size_t len)
{
	struct mem_ep	*m = (struct mem_ep *)ep;

	memcpy(m->out + m->outlen, buf, len);
	m->outlen += len;
	return (ssize_t)len;
}

static int
mem_shutdown_write(struct endpoint *ep)
{
	((struct mem_ep *)ep)->shut = 1;
	return 0;
}

static void
mem_want(struct endpoint *ep, int what)
{
}

static int
mem_splice_fd(struct endpoint *ep)
{
	return ((struct mem_ep *)ep)->fd;
}

static const struct endpoint_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.shutdown_write = mem_shutdown_write,
	.want = mem_want,
	.splice_fd = mem_splice_fd,
};

/* Both ends claim to be spliceable, but splice() refuses their descriptor
 * (an eventfd: EINVAL): the bytes are copied instead, none lost. */
static void
splice_refused_falls_back_to_copying(void **state)
{
	int		 fd = eventfd(0, EFD_NONBLOCK);
	struct mem_ep	 a = { { &mem_ops, NULL, NULL, 0 }, "hello", "", 0, fd,
			    0 };
	struct mem_ep	 b = { { &mem_ops, NULL, NULL, 0 }, "", "", 0, fd, 0 };
	struct pump	 p;

	assert_true(fd >= 0);
	pump_set_splice(1);
	pump_start(&p, &a.ep, &b.ep);
	assert_true(p.splice);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(b.outlen, 5);
	assert_memory_equal(b.out, "hello", 5);
	/* The next wakeup, copying still, finds the EOF and passes it on. */
	assert_int_equal(p.ab.srcfd, -1);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_true(b.shut);
	assert_int_equal(pump_ready(&p, &b.ep, EP_READ), PUMP_DONE);
	assert_true(a.shut);
	assert_int_equal(p.ab.bytes, 5);
	assert_int_equal(p.ab.spliced, 0);
	pump_stop(&p);
	close(fd);
}

/* --no-splice: the pump never asks an endpoint for its descriptor. */
static void
splice_off_copies(void **state)
{
	struct mem_ep	 a = { { &mem_ops, NULL, NULL, 0 }, "hi", "", 0, -1, 0 };
	struct mem_ep	 b = { { &mem_ops, NULL, NULL, 0 }, "", "", 0, -1, 0 };
	struct pump	 p;

	a.fd = b.fd = 12345;	/* would fail loudly if spliced */
	pump_set_splice(0);
	pump_start(&p, &a.ep, &b.ep);
	assert_false(p.splice);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(b.outlen, 2);
	pump_stop(&p);
	pump_set_splice(1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(splice_refused_falls_back_to_copying),
		cmocka_unit_test(splice_off_copies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
