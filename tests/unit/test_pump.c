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

#include "relay/bufpool.h"
#include "relay/pump.h"

/* An endpoint over memory: reads give `in` (at most what is asked each
 * time), then EAGAIN, or EOF once `eof` is set; writes append to `out`.
 * Its splice_fd is `fd`, which may be anything. */
struct mem_ep {
	struct endpoint	 ep;
	const char	*in;
	size_t		 inlen;
	char		*out;
	size_t		 outlen;
	int		 fd, shut, eof;
	int		 reads;
};

#define BIG	(BUFPOOL_SIZE + 1000)	/* one full read, then a short one */

static ssize_t
mem_read(struct endpoint *ep, void *buf, size_t len)
{
	struct mem_ep	*m = (struct mem_ep *)ep;
	size_t		 n = m->inlen < len ? m->inlen : len;

	m->reads++;
	if (n == 0 && !m->eof) {
		errno = EAGAIN;
		return -1;
	}
	memcpy(buf, m->in, n);
	m->in += n;
	m->inlen -= n;
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

static char	src[BIG], a_out[BIG], b_out[BIG];

static void
mem_init(struct mem_ep *m, const char *in, size_t inlen, char *out, int fd)
{
	memset(m, 0, sizeof(*m));
	m->ep.ops = &mem_ops;
	m->in = in;
	m->inlen = inlen;
	m->out = out;
	m->fd = fd;
	m->eof = 1;
}

/*
 * A short read is copied without trying splice(): an eventfd, which
 * splice() refuses, stays the flow's descriptor. Once a read fills the
 * buffer the next wakeup splices; splice() refuses the eventfd (EINVAL),
 * and the rest (here the EOF) is copied instead, none lost.
 */
static void
copies_until_a_read_fills_the_buffer(void **state)
{
	int		 fd = eventfd(0, EFD_NONBLOCK);
	struct mem_ep	 a, b;
	struct pump	 p;
	size_t		 i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (char)(i * 7 + i / 251);
	assert_true(fd >= 0);
	mem_init(&a, src, 5, a_out, fd);
	mem_init(&b, "", 0, b_out, fd);
	a.eof = 0;
	pump_set_splice(1);
	pump_start(&p, &a.ep, &b.ep);
	assert_true(p.splice);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(b.outlen, 5);
	assert_false(p.ab.bulk);
	assert_int_equal(p.ab.srcfd, fd);
	a.inlen = sizeof(src) - 5;
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_true(p.ab.bulk);
	assert_int_equal(p.ab.srcfd, fd);
	assert_int_equal(b.outlen, sizeof(src));
	/* Splicing now: refused, so the EOF is copied. */
	a.eof = 1;
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(p.ab.srcfd, -1);
	assert_true(b.shut);
	assert_memory_equal(b.out, src, sizeof(src));
	/* a would be closed now, which says EOF: no shutdown first. */
	assert_int_equal(pump_ready(&p, &b.ep, EP_READ), PUMP_DONE);
	assert_false(a.shut);
	assert_int_equal(p.ab.bytes, sizeof(src));
	assert_int_equal(p.ab.spliced, 0);
	pump_stop(&p);
	close(fd);
}

/* A FIN right behind the data passes on in the same wakeup: through a
 * tunnel the data and the EOF then leave in one packet batch. */
static void
eof_behind_data_passes_on_at_once(void **state)
{
	struct mem_ep	 a, b;
	struct pump	 p;

	mem_init(&a, "hello", 5, a_out, -1);
	mem_init(&b, "", 0, b_out, -1);
	b.eof = 0;
	pump_start(&p, &a.ep, &b.ep);
	assert_false(p.splice);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(b.outlen, 5);
	assert_memory_equal(b.out, "hello", 5);
	assert_true(b.shut);
	assert_false(a.shut);
	pump_stop(&p);
}

/* A source that tells of its EOF is not read again after a short read
 * unless it told of one: the read would only say EAGAIN. When it did, the
 * EOF passes on in the same wakeup. */
static void
short_read_of_a_source_that_tells_eof(void **state)
{
	struct mem_ep	 a, b;
	struct pump	 p;

	mem_init(&a, "hello", 5, a_out, -1);
	mem_init(&b, "", 0, b_out, -1);
	a.ep.tells_hup = 1;
	a.eof = b.eof = 0;
	pump_start(&p, &a.ep, &b.ep);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(a.reads, 1);
	assert_int_equal(b.outlen, 5);
	a.in = "world";
	a.inlen = 5;
	a.eof = 1;
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ | EP_HUP),
	    PUMP_RUNNING);
	assert_int_equal(a.reads, 3);
	assert_int_equal(b.outlen, 10);
	assert_memory_equal(b.out, "helloworld", 10);
	assert_true(b.shut);
	pump_stop(&p);
}

/* --no-splice: the pump never asks an endpoint for its descriptor. */
static void
splice_off_copies(void **state)
{
	struct mem_ep	 a, b;
	struct pump	 p;

	mem_init(&a, src, sizeof(src), a_out, 12345);	/* would fail loudly */
	mem_init(&b, "", 0, b_out, 12345);		/* if spliced */
	pump_set_splice(0);
	pump_start(&p, &a.ep, &b.ep);
	assert_false(p.splice);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(pump_ready(&p, &a.ep, EP_READ), PUMP_RUNNING);
	assert_int_equal(b.outlen, sizeof(src));
	pump_stop(&p);
	pump_set_splice(1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(copies_until_a_read_fills_the_buffer),
		cmocka_unit_test(eof_behind_data_passes_on_at_once),
		cmocka_unit_test(short_read_of_a_source_that_tells_eof),
		cmocka_unit_test(splice_off_copies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
