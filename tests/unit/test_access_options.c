/* Unit tests for the PROXY and access options: parsing, config file keys,
 * and the copies and comparisons a reload relies on. */
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
relay_options(void **state)
{
	struct config		 cfg;
	struct relay_conf	*r;
	char			 net[64];

	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1",
	    "--proxy-protocol", "v2", "--accept-proxy", "--handshake-timeout",
	    "3", "--deny", "10.1.0.0/16", "--allow", "10.0.0.0/8", "--allow",
	    "2001:db8::/32", "--max-conns-per-ip", "4", "--rate", "20", NULL),
	    OPTIONS_OK);
	r = cfg.cli_relay;
	assert_int_equal(r->send_proxy, 2);
	assert_true(r->accept_proxy);
	assert_int_equal(r->handshake_timeout, 3);
	assert_int_equal(r->nacl, 3);
	assert_false(r->acl[0].allow);
	assert_true(r->acl[1].allow);
	cidr_format(&r->acl[2].net, net, sizeof(net));
	assert_string_equal(net, "2001:db8::/32");
	assert_int_equal(r->max_conns_per_ip, 4);
	assert_int_equal(r->rate, 20);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", NULL),
	    OPTIONS_OK);
	assert_int_equal(cfg.cli_relay->handshake_timeout, 5);
	assert_int_equal(cfg.cli_relay->send_proxy, 0);
	assert_int_equal(cfg.cli_relay->nacl, 0);
	config_free(&cfg);
}

static void
bad_values(void **state)
{
	struct config	cfg;

	assert_int_equal(parse(&cfg, "--proxy-protocol", "v3", NULL),
	    OPTIONS_ERROR);
	assert_string_equal(err, "--proxy-protocol: \"v3\" is not v1 or v2");
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--allow", "10.1.2.3/8", NULL),
	    OPTIONS_ERROR);
	assert_string_equal(err, "--allow: \"10.1.2.3/8\" has bits set beyond "
	    "the prefix: did you mean 10.0.0.0/8?");
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--deny", "::/129", NULL), OPTIONS_ERROR);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--handshake-timeout", "0", NULL),
	    OPTIONS_ERROR);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "--listen", "80", "--to", "h:1", "--fork",
	    "--rate", "5", NULL), OPTIONS_OK);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot be combined"));
	config_free(&cfg);
}

static void
config_keys(void **state)
{
	struct config		 cfg;
	struct relay_conf	*r;
	struct tunnel_conf	*t;

	config_init(&cfg);
	r = config_add_relay(&cfg, "web", 1);
	t = config_add_tunnel(&cfg, "laptop", 9);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "deny", "192.0.2.0/24",
	    err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "accept-proxy", "yes",
	    err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r, "proxy-protocol",
	    "v1", err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t,
	    "strip-proxy-header", "on", err, sizeof(err)), 0);
	assert_int_equal(r->nacl, 1);
	assert_true(r->accept_proxy);
	assert_int_equal(r->send_proxy, 1);
	assert_true(t->strip_proxy);
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t, "allow", "::1",
	    err, sizeof(err)), -1);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, r,
	    "strip-proxy-header", "yes", err, sizeof(err)), -1);
	config_free(&cfg);
}

/* A reload keeps a relay only if nothing it runs with changed. */
static void
dup_and_equal(void **state)
{
	struct config		 cfg;
	struct relay_conf	*a, *b;
	struct tunnel_conf	*t, *u;

	config_init(&cfg);
	a = config_add_relay(&cfg, "web", 1);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, a, "listen", "80",
	    err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, a, "deny",
	    "192.0.2.0/24", err, sizeof(err)), 0);
	assert_int_equal(options_set(&cfg, SCOPE_RELAY, a, "allow",
	    "0.0.0.0/0", err, sizeof(err)), 0);
	assert_non_null(b = relay_conf_dup(a));
	assert_ptr_not_equal(a->acl, b->acl);
	assert_true(relay_conf_equal(a, b));
	b->acl[1].allow = 0;
	assert_false(relay_conf_equal(a, b));
	b->acl[1].allow = 1;
	b->rate = 1;
	assert_false(relay_conf_equal(a, b));
	b->rate = 0;
	b->max_conns_per_ip = 1;
	assert_false(relay_conf_equal(a, b));
	b->max_conns_per_ip = 0;
	b->send_proxy = 2;
	assert_false(relay_conf_equal(a, b));
	b->send_proxy = 0;
	b->accept_proxy = 1;
	assert_false(relay_conf_equal(a, b));
	b->accept_proxy = 0;
	b->handshake_timeout = 9;
	assert_false(relay_conf_equal(a, b));
	b->handshake_timeout = a->handshake_timeout;
	b->nacl = 1;
	assert_false(relay_conf_equal(a, b));
	b->nacl = 2;
	assert_true(relay_conf_equal(a, b));
	relay_conf_free(b);
	t = config_add_tunnel(&cfg, "laptop", 9);
	assert_int_equal(options_set(&cfg, SCOPE_TUNNEL, t, "remote",
	    "10080:127.0.0.1:80", err, sizeof(err)), 0);
	assert_non_null(u = tunnel_conf_dup(t));
	assert_true(tunnel_conf_equal(t, u));
	u->strip_proxy = 1;
	assert_false(tunnel_conf_equal(t, u));
	tunnel_conf_free(u);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_options),
		cmocka_unit_test(bad_values),
		cmocka_unit_test(config_keys),
		cmocka_unit_test(dup_and_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
