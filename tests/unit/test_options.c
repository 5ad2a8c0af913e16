/* Unit tests for the option table and whole-config checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/parse_args.h"

#include "relay/config.h"
#include "relay/options.h"


static void
full_command_line(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "80", "--listen", "[::1]:81",
	    "--to", "127.0.0.1:10080", "--user", "daemon", "--fork",
	    "--connect-timeout", "3", "--idle-timeout", "60", "--max-conns",
	    "100", "-v", "--no-splice", NULL), OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->nlisten, 2);
	assert_int_equal(cfg.cli_relay->listen[1].port, 81);
	assert_int_equal(cfg.cli_relay->to.port, 10080);
	assert_string_equal(cfg.user, "daemon");
	assert_true(cfg.cli_relay->fork_mode);
	assert_int_equal(cfg.cli_relay->connect_timeout, 3);
	assert_int_equal(cfg.cli_relay->idle_timeout, 60);
	assert_int_equal(cfg.cli_relay->max_conns, 100);
	assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
	assert_true(cfg.no_splice);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
}

static void
defaults(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.drain_timeout, 10);
	assert_int_equal(cfg.cli_relay->connect_timeout, 10);
	assert_int_equal(cfg.cli_relay->idle_timeout, 0);
	assert_int_equal(cfg.cli_relay->max_conns, 0);
	assert_false(cfg.cli_relay->fork_mode);
	assert_false(cfg.no_splice);
	assert_string_equal(cfg.user, "");
	assert_int_equal(cfg.log_level, LOG_LVL_INFO);
	config_free(&cfg);
}

static void
help_and_version(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--help", NULL), OPTIONS_HELP);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--version", NULL), OPTIONS_VERSION);
	config_free(&cfg);
}

/* The last error names the problem; frees what parsing kept. */
static void
expect_error(const char *needle, struct config *cfg)
{
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	config_free(cfg);
}

static void
bad_options(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--bogus", NULL), OPTIONS_ERROR);
	expect_error("--bogus", &cfg);
	assert_int_equal(parse(&cfg, "-x", NULL), OPTIONS_ERROR);
	expect_error("-x", &cfg);
	assert_int_equal(parse(&cfg, "--listen", NULL), OPTIONS_ERROR);
	expect_error("needs a value", &cfg);
	assert_int_equal(parse(&cfg, "--listen", "0", NULL), OPTIONS_ERROR);
	expect_error("--listen 0", &cfg);
	assert_int_equal(parse(&cfg, "--to", "a:1", "--to", "b:2", NULL),
	    OPTIONS_ERROR);
	expect_error("only one --to", &cfg);
	assert_int_equal(parse(&cfg, "--connect-timeout", "0", NULL),
	    OPTIONS_ERROR);
	expect_error("at least 1", &cfg);
	assert_int_equal(parse(&cfg, "--idle-timeout", "ten", NULL),
	    OPTIONS_ERROR);
	expect_error("\"ten\" is not a number", &cfg);
	assert_int_equal(parse(&cfg, "--max-conns", "-5", NULL),
	    OPTIONS_ERROR);
	expect_error("--max-conns", &cfg);
	assert_int_equal(parse(&cfg, "--max-conns", "99999999999", NULL),
	    OPTIONS_ERROR);
	expect_error("larger than", &cfg);
	assert_int_equal(parse(&cfg, "stray", NULL), OPTIONS_ERROR);
	expect_error("stray", &cfg);
}

static void
validation(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "80", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	expect_error("missing --to", &cfg);
	assert_int_equal(parse(&cfg, "--to", "a:1", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	expect_error("missing --listen", &cfg);
	assert_int_equal(parse(&cfg, NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	expect_error("nothing to do", &cfg);
}

/* A global option: a tunnel-only command line takes it too. */
static void
no_splice_with_a_tunnel_alone(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--ssh", "h", "-R", "8080:127.0.0.1:80",
	    "--no-splice", NULL), OPTIONS_OK);
	assert_true(cfg.no_splice);
	assert_null(cfg.cli_relay);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
}

static void
set_by_name(void **state)
{
	struct config cfg;
	struct relay_conf *r;
	struct tunnel_conf *t;

	config_init(&cfg);
	r = config_add_relay(&cfg, "web", 3);
	t = config_add_tunnel(&cfg, "laptop", 9);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "listen", "8080",
	    err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "max-conns", "7",
	    err, sizeof(err)), 0);
	assert_int_equal(r->max_conns, 7);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "fork", "yes", err,
	    sizeof(err)), 0);
	assert_true(r->fork_mode);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "fork", "off", err,
	    sizeof(err)), 0);
	assert_false(r->fork_mode);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "fork", "maybe",
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "yes or no"));
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t, "remote",
	    "10080:127.0.0.1:80", err, sizeof(err)), 0);
	assert_int_equal(t->nfwd, 1);
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "log-level",
	    "debug", err, sizeof(err)), 0);
	assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "no-splice",
	    "on", err, sizeof(err)), 0);
	assert_true(cfg.no_splice);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "no-splice", "on",
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "belongs in the global part"));
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "ssh", "h", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "belongs in the [tunnel NAME]"));
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "listen", "80",
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "belongs in the [relay NAME]"));
	assert_int_equal(options_set(&cfg, SCOPE_GLOBAL, &cfg, "config", "x",
	    err, sizeof(err)), -1);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "nope", "1", err,
	    sizeof(err)), -1);
	expect_error("unknown key \"nope\"", &cfg);
}

static void
tls_options(void **state)
{
	struct config		 cfg;
	struct relay_conf	*copy;

	assert_int_equal(parse(&cfg, "--listen", "tls:443", "--listen", "80",
	    "--cert", "a.pem", "--key", "a.key", "--cert", "b.pem", "--key",
	    "b.key", "--to", "tls:backend.example:8443", "--ca", "ca.pem",
	    "--verify-name", "internal.example", "--handshake-timeout", "9",
	    NULL), OPTIONS_OK);
	assert_true(cfg.cli_relay->listen[0].tls);
	assert_false(cfg.cli_relay->listen[1].tls);
	assert_true(cfg.cli_relay->to.tls);
	assert_int_equal(cfg.cli_relay->ncerts, 2);
	assert_int_equal(cfg.cli_relay->nkeys, 2);
	assert_string_equal(cfg.cli_relay->certs[1], "b.pem");
	assert_string_equal(cfg.cli_relay->keys[0], "a.key");
	assert_string_equal(cfg.cli_relay->ca, "ca.pem");
	assert_string_equal(cfg.cli_relay->verify_name, "internal.example");
	assert_int_equal(cfg.cli_relay->handshake_timeout, 9);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	/* A copy is equal, and stops being so when a path changes. */
	copy = relay_conf_dup(cfg.cli_relay);
	assert_non_null(copy);
	assert_true(relay_conf_equal(copy, cfg.cli_relay));
	copy->certs[1][0] = 'c';
	assert_false(relay_conf_equal(copy, cfg.cli_relay));
	relay_conf_free(copy);
	config_free(&cfg);

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->handshake_timeout, 5);
	config_free(&cfg);
}

static void
tls_validation(void **state)
{
	struct config cfg;

	assert_int_equal(parse(&cfg, "--listen", "tls:443", "--to", "h:1",
	    NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "needs --cert FILE and --key FILE"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "tls:443", "--cert", "c",
	    "--key", "k", "--key", "k2", "--to", "h:1", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "(1 certificates, 2 keys)"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "443", "--cert", "c",
	    "--key", "k", "--to", "h:1", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "need a tls: listener"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "443", "--to", "h:1",
	    "--verify-name", "x", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--verify-name needs a tls: target"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "443", "--to", "h:1",
	    "--cert", "", NULL), OPTIONS_ERROR);
	assert_non_null(strstr(err, "--cert: empty path"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--handshake-timeout", "0", NULL),
	    OPTIONS_ERROR);
	assert_non_null(strstr(err, "at least 1"));
	config_free(&cfg);
}

/* --connect-retry belongs to relays and tunnels both: on the command line
 * it goes to whichever are given; in a file, to the section's. */
static void
connect_retry_for_relays_and_tunnels(void **state)
{
	struct config		 cfg;
	struct relay_conf	*r;
	struct tunnel_conf	*t;

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->connect_retry, 0);
	assert_int_equal(cfg.cli_relay->max_held, CONF_MAX_HELD);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--connect-retry", "5", "--listen", "80",
	    "--to", "h:1", "--max-held", "100", NULL), OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->connect_retry, 5);
	assert_int_equal(cfg.cli_relay->max_held, 100);
	assert_null(cfg.cli_tunnel);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--connect-retry", "7", "--ssh", "u@h",
	    "-R", "80:127.0.0.1:8080", NULL), OPTIONS_OK);
	assert_null(cfg.cli_relay);
	assert_int_equal(cfg.cli_tunnel->connect_retry, 7);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--ssh", "u@h", "-R", "80:127.0.0.1:8080",
	    NULL), OPTIONS_OK);
	assert_int_equal(cfg.cli_tunnel->connect_retry,
	    CONF_TUNNEL_CONNECT_RETRY);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--ssh", "u@h", "-R", "80:127.0.0.1:8080",
	    "--listen", "80", "--to", "h:1", "--connect-retry", "0", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->connect_retry, 0);
	assert_int_equal(cfg.cli_tunnel->connect_retry, 0);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--connect-retry", "x", NULL), OPTIONS_ERROR);
	expect_error("--connect-retry", &cfg);

	config_init(&cfg);
	r = config_add_relay(&cfg, "web", 1);
	t = config_add_tunnel(&cfg, "laptop", 5);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "connect-retry",
	    "3", err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t, "connect-retry",
	    "9", err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "max-held", "10",
	    err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t, "max-held", "10",
	    err, sizeof(err)), -1);
	assert_int_equal(r->connect_retry, 3);
	assert_int_equal(r->max_held, 10);
	assert_int_equal(t->connect_retry, 9);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(connect_retry_for_relays_and_tunnels),
		cmocka_unit_test(full_command_line),
		cmocka_unit_test(defaults),
		cmocka_unit_test(help_and_version),
		cmocka_unit_test(bad_options),
		cmocka_unit_test(validation),
		cmocka_unit_test(set_by_name),
		cmocka_unit_test(tls_options),
		cmocka_unit_test(tls_validation),
		cmocka_unit_test(no_splice_with_a_tunnel_alone),
	};

	return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
