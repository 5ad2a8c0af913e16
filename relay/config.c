/* Defaults and whole-configuration checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/config.h"

void
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = LOG_LVL_INFO;
	cfg->relay.connect_timeout = 10;
	cfg->tunnel.keepalive = 15;
	cfg->tunnel.keepalive_count = 3;
}

void
config_free(struct config *cfg)
{
	free(cfg->relay.listen);
	cfg->relay.listen = NULL;
	cfg->relay.nlisten = 0;
	free(cfg->tunnel.fwd);
	free(cfg->tunnel.identity);
	free(cfg->tunnel.passphrase_file);
	free(cfg->tunnel.known_hosts);
	memset(&cfg->tunnel, 0, sizeof(cfg->tunnel));
}

static int
validate_tunnel(const struct tunnel_conf *t, char *err, size_t errlen)
{
	if (!t->enabled && t->nfwd > 0) {
		snprintf(err, errlen, "forwards need a server: give --ssh "
		    "[USER@]HOST[:PORT]");
		return -1;
	}
	if (t->enabled && t->nfwd == 0) {
		snprintf(err, errlen, "--ssh needs at least one forward "
		    "(-R, -L or -D)");
		return -1;
	}
	if (!t->enabled && (t->identity || t->passphrase_file ||
	    t->known_hosts)) {
		snprintf(err, errlen, "tunnel options need --ssh");
		return -1;
	}
	return 0;
}

int
config_validate(const struct config *cfg, char *err, size_t errlen)
{
	const struct relay_conf	*r = &cfg->relay;

	if (validate_tunnel(&cfg->tunnel, err, errlen) == -1)
		return -1;
	/* A forked child would inherit the SSH session and break it. */
	if (r->fork_mode && cfg->tunnel.enabled) {
		snprintf(err, errlen, "--fork cannot be combined with --ssh: "
		    "run the tunnel in a relayd of its own");
		return -1;
	}
	if (r->nlisten == 0 && !r->has_to) {
		if (cfg->tunnel.enabled)
			return 0;
		snprintf(err, errlen, "nothing to do: give --listen and --to, "
		    "or --ssh with forwards (see --help)");
		return -1;
	}
	if (r->nlisten == 0) {
		snprintf(err, errlen, "missing --listen: where should relayd "
		    "accept connections?");
		return -1;
	}
	if (!r->has_to) {
		snprintf(err, errlen, "missing --to HOST:PORT: where should "
		    "connections go?");
		return -1;
	}
	return 0;
}
