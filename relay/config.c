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
}

void
config_free(struct config *cfg)
{
	free(cfg->relay.listen);
	cfg->relay.listen = NULL;
	cfg->relay.nlisten = 0;
}

int
config_validate(const struct config *cfg, char *err, size_t errlen)
{
	const struct relay_conf	*r = &cfg->relay;

	if (r->nlisten == 0 && !r->has_to) {
		snprintf(err, errlen, "nothing to do: give --listen and --to "
		    "(see --help)");
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
