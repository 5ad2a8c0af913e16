/* Unit tests for escaping peer-supplied bytes before they are logged,
 * and for the lines a loop batches. */
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "relay/log.h"

static void
escapes_what_could_forge_lines(void **state)
{
	char	out[64];

	assert_string_equal(log_escape(out, sizeof(out), "ok text", 7),
	    "ok text");
	assert_string_equal(log_escape(out, sizeof(out), "a\nrelayd: x", 11),
	    "a\\x0arelayd: x");
	assert_string_equal(log_escape(out, sizeof(out), "\r\t\x1b[31m", 7),
	    "\\x0d\\x09\\x1b[31m");
	assert_string_equal(log_escape(out, sizeof(out), "nul\0byte", 8),
	    "nul\\x00byte");
	assert_string_equal(log_escape(out, sizeof(out), "back\\slash", 10),
	    "back\\x5cslash");
	assert_string_equal(log_escape(out, sizeof(out), "\xc3\xa9\x7f", 3),
	    "\\xc3\\xa9\\x7f");
}

static void
truncates_without_splitting_an_escape(void **state)
{
	char	out[8];

	assert_string_equal(log_escape(out, sizeof(out), "abcdefghij", 10),
	    "abcdefg");
	assert_string_equal(log_escape(out, sizeof(out), "abcde\n", 6),
	    "abcde");
	assert_string_equal(log_escape(out, 1, "abc", 3), "");
}

/* Points stderr at a fresh non-blocking pipe; returns its read end and
 * the old stderr in *saved. */
static int
capture_stderr(int *saved)
{
	int	p[2];

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	/* Big enough for every line a test writes, unread. */
	(void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	*saved = dup(STDERR_FILENO);
	assert_true(dup2(p[1], STDERR_FILENO) != -1);
	close(p[1]);
	return p[0];
}

static void
restore_stderr(int saved)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
}

/* All that is in the pipe now (NUL-terminated), or "" when nothing. */
static size_t
drain(int fd, char *buf, size_t len)
{
	size_t	off = 0;
	ssize_t	n;

	while (off + 1 < len && (n = read(fd, buf + off, len - off - 1)) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	return off;
}

static void
batched_lines_wait_for_the_pass_in_order(void **state)
{
	struct event_base	*base = event_base_new();
	char			 out[65536], want[65536];
	size_t			 off = 0;
	int			 fd, saved, i;

	fd = capture_stderr(&saved);
	log_init(LOG_LVL_INFO, 0);
	assert_int_equal(log_batch(base), 0);
	log_info("one");
	log_warnx("two");
	log_debug("not shown");
	assert_int_equal(drain(fd, out, sizeof(out)), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	drain(fd, out, sizeof(out));
	assert_string_equal(out, "relayd: one\nrelayd: two\n");

	/* More than one write's worth: all of it, in order. */
	for (i = 0; i < 300; i++) {
		log_info("line %d of a pass", i);
		off += (size_t)snprintf(want + off, sizeof(want) - off,
		    "relayd: line %d of a pass\n", i);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	drain(fd, out, sizeof(out));
	assert_string_equal(out, want);

	/* Ending the batch writes what waits; then lines go out at once. */
	log_info("last of the batch");
	log_batch_end();
	log_info("unbatched");
	drain(fd, out, sizeof(out));
	assert_string_equal(out,
	    "relayd: last of the batch\nrelayd: unbatched\n");
	restore_stderr(saved);
	close(fd);
	event_base_free(base);
}

/*
 * Runs fn in a child whose stderr is captured in out; returns its wait
 * status. fn logs into a batch and ends the child its own way.
 */
static int
captured(void (*fn)(void), char *out, size_t len)
{
	size_t	off = 0;
	ssize_t	n;
	pid_t	pid;
	int	p[2], status;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		log_init(LOG_LVL_INFO, 0);
		if (log_batch(event_base_new()) == -1)
			_exit(99);
		fn();
		_exit(98);
	}
	assert_true(pid > 0);
	close(p[1]);
	while ((n = read(p[0], out + off, len - off - 1)) > 0)
		off += (size_t)n;
	out[off] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
log_then_fatal(void)
{
	log_info("before the end");
	fatalx(3, "the end");
}

static void
fatal_writes_the_lines_batched_before_it(void **state)
{
	char	out[4096];
	int	status = captured(log_then_fatal, out, sizeof(out));

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_string_equal(out, "relayd: before the end\nrelayd: the end\n");
}

static void
log_then_crash(void)
{
	log_info("before the crash");
	raise(SIGSEGV);
}

/* Without the crash handler, lines batched before SIGSEGV die with the
 * process; a sanitizer build keeps its own handler and is not asked. */
static void
a_crash_writes_the_lines_batched_before_it(void **state)
{
	char	out[4096];
	int	status;

	if (!log_catches_crashes())
		return;
	status = captured(log_then_crash, out, sizeof(out));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_string_equal(out, "relayd: before the crash\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes_what_could_forge_lines),
		cmocka_unit_test(truncates_without_splitting_an_escape),
		cmocka_unit_test(batched_lines_wait_for_the_pass_in_order),
		cmocka_unit_test(fatal_writes_the_lines_batched_before_it),
		cmocka_unit_test(a_crash_writes_the_lines_batched_before_it),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
