/*
 * The fuzz targets: tests/fuzz/fuzz_NAME.c, one per parser of user or
 * peer input, each linked with the real sources. Beside them:
 *   corpus/NAME/   hand-made seeds, plus what `make fuzz-merge` adds
 *   crashes/NAME/  reproducers of bugs found (and fixed): regressions
 *   NAME.dict      tokens that help libFuzzer build valid input
 * `make fuzz` runs each target for FUZZ_SECONDS with clang's libFuzzer;
 * `make check` replays corpus/ and crashes/ through every target, built
 * by replay.c with the ordinary compiler. A new target needs only its
 * file and a corpus directory.
 *
 * What every target shares: the libFuzzer entry point, a quiet log,
 * NUL-terminated copies of the input and a check that aborts, so a broken
 * invariant is a crash both under libFuzzer and in the replay.
 */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/log.h"

/* Called by libFuzzer (or tests/fuzz/replay.c) once per input. */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parsers report bad input through the log: keep the fuzzer's output
 * to its own statistics. */
static inline void
fuzz_quiet(void)
{
	static int	done;

	if (!done) {
		log_init(LOG_LVL_ERROR, 0);
		done = 1;
	}
}

/* A malloc'd NUL-terminated copy (the parsers take C strings); NULL if
 * the input holds a NUL, which no command line or config value can. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char	*s;

	if (memchr(data, '\0', size) != NULL || (s = malloc(size + 1)) == NULL)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,	\
		    __LINE__, #cond);					\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

#endif
