/* The configuration as the daemon reads it: file, command line, --check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "caps/caps.h"
#include "daemon/daemon.h"
#include "relay/cfgfile.h"
#include "relay/config.h"
#include "relay/log.h"
#include "relay/options.h"
#include "relay/relay.h"
#include "tunnel/tunnel.h"

/* The command line's verdict: 0 to go on, or -1 with *code set. */
static int
parse_command_line(struct config *cfg, int argc, char **argv, int *code)
{
	char	err[512];

	switch (options_parse(cfg, argc, argv, err, sizeof(err))) {
	case OPTIONS_HELP:
		options_usage(stdout);
		*code = 0;
		return -1;
	case OPTIONS_VERSION:
		tunnel_libssh2_version(err, sizeof(err));
		printf("relayd %s\nlibssh2 %s\n", RELAYD_VERSION, err);
		*code = 0;
		return -1;
	case OPTIONS_ERROR:
		log_warnx("%s", err);
		*code = EX_USAGE;
		return -1;
	case OPTIONS_OK:
		break;
	}
	return 0;
}

int
read_config(struct config *cfg, int argc, char **argv, int *code)
{
	const char	*file = options_config_file(argc, argv);
	char		 err[512];
	int		 errors = 0;

	config_init(cfg);
	if (file != NULL)
		errors = cfgfile_load(cfg, file);
	if (parse_command_line(cfg, argc, argv, code) == -1)
		return -1;
	*code = file != NULL ? EX_CONFIG : EX_USAGE;
	if (errors > 0) {
		log_warnx("%s: %d error%s", file, errors, errors == 1 ? "" : "s");
		return -1;
	}
	if (file != NULL && (cfg->cli_relay != NULL ||
	    cfg->cli_tunnel != NULL)) {
		log_warnx("give relays and tunnels either in %s or on the "
		    "command line, not both", file);
		*code = EX_USAGE;
		return -1;
	}
	if (!cfg->status && config_validate(cfg, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

void
load_config(struct config *cfg, int argc, char **argv)
{
	int	code;

	if (read_config(cfg, argc, argv, &code) == -1) {
		config_free(cfg);
		exit(code);
	}
}

/* "tls:*:443" binds what "*:443" binds. */
static const char *
without_tls(const char *addr)
{
	return strncmp(addr, "tls:", 4) == 0 ? addr + 4 : addr;
}

/* Whether relay k's listener l binds what relay i's listener j binds. */
static int
same_listener(const struct config *cfg, size_t i, size_t j, size_t k,
    size_t l, char *a, size_t alen)
{
	char	b[ADDR_STR_MAX];

	addr_spec_format(&cfg->relays[i]->listen[j], a, alen);
	addr_spec_format(&cfg->relays[k]->listen[l], b, sizeof(b));
	return strcmp(without_tls(a), without_tls(b)) == 0;
}

/* Two relays, or one relay twice, may not bind the same address. */
static void
check_listeners_unique(const struct config *cfg)
{
	size_t	i, j, k, l;
	char	a[ADDR_STR_MAX];

	for (i = 0; i < cfg->nrelays; i++)
		for (j = 0; j < cfg->relays[i]->nlisten; j++)
			for (k = i; k < cfg->nrelays; k++)
				for (l = k == i ? j + 1 : 0;
				    l < cfg->relays[k]->nlisten; l++)
					if (same_listener(cfg, i, j, k, l, a,
					    sizeof(a)))
						fatalx(EX_CONFIG, "listener %s "
						    "is given twice",
						    without_tls(a));
}

/* The files the tunnels will read must be readable. */
static void
check_tunnel_files(const struct config *cfg)
{
	const struct tunnel_conf	*t;
	size_t				 i;

	for (i = 0; i < cfg->ntunnels; i++) {
		t = cfg->tunnels[i];
		if (t->identity && access(t->identity, R_OK) == -1)
			fatalx(EX_NOINPUT, "identity %s: %s", t->identity,
			    strerror(errno));
		if (t->passphrase_file && access(t->passphrase_file, R_OK) ==
		    -1)
			fatalx(EX_NOINPUT, "passphrase file %s: %s",
			    t->passphrase_file, strerror(errno));
	}
}

void
check_only(const struct config *cfg)
{
	struct caps_user	u;
	size_t			i;
	char			err[512];

	if (cfg->user[0] != '\0' && caps_lookup_user(cfg->user, &u, err,
	    sizeof(err)) == -1)
		fatalx(EX_NOUSER, "%s", err);
	check_tunnel_files(cfg);
	for (i = 0; i < cfg->nrelays; i++)
		if (relay_check_tls(cfg->relays[i], err, sizeof(err)) == -1)
			fatalx(EX_NOINPUT, "%s", err);
	check_listeners_unique(cfg);
	printf("configuration OK\n");
	exit(0);
}
