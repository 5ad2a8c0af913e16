/* Unit tests for --workers: parsing, the default, and what it excludes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/parse_args.h"

#include "relay/config.h"
#include "relay/options.h"
#include "relay/workers.h"


static void
parsed(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--workers", "3", NULL), OPTIONS_OK);
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(workers_wanted(&cfg), 3);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--workers", "256", NULL), OPTIONS_OK);
	assert_int_equal(cfg.workers, 256);
	config_free(&cfg);
}

static void
bad_values(void **state)
{
	static const char *const bad[][2] = {
		{ "0", "--workers: must be at least 1" },
		{ "abc", "--workers: \"abc\" is not a number" },
		{ "-1", "--workers: \"-1\" is not a number" },
		{ "2x", "--workers: \"2x\" is not a number" },
		{ "", "--workers: \"\" is not a number" },
		{ "257", "--workers: 257 is larger than 256" },
	};
	struct config	cfg;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&cfg, "--workers", bad[i][0], NULL),
		    OPTIONS_ERROR);
		assert_string_equal(err, bad[i][1]);
		config_free(&cfg);
	}
}

static void
config_key(void **state)
{
	struct config cfg;

	config_init(&cfg);
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "workers", "4",
	    err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "workers", "0",
	    err, sizeof(err)), -1);
	assert_int_equal(cfg.workers, 4);
	config_free(&cfg);
}

/* Unset: one loop per CPU online, but one with --fork. */
static void
default_count(void **state)
{
	struct config	cfg;
	long		cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(workers_wanted(&cfg), cpus < 1 ? 1 : cpus);
	assert_false(workers_config_forks(&cfg));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--fork", NULL), OPTIONS_OK);
	assert_true(workers_config_forks(&cfg));
	assert_int_equal(workers_wanted(&cfg), 1);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
}

static void
fork_excludes_workers(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--fork", "--workers", "2", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--fork cannot be combined with "
	    "--workers 2"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--fork", "--workers", "1", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parsed),
		cmocka_unit_test(bad_values),
		cmocka_unit_test(config_key),
		cmocka_unit_test(default_count),
		cmocka_unit_test(fork_excludes_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
