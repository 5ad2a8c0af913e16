/*
 * The option table: every option is a command-line flag and a config file
 * key with the same name and meaning, so nothing is documented twice.
 */
#ifndef RELAY_OPTIONS_H
#define RELAY_OPTIONS_H

#include <stdio.h>

#include "relay/config.h"

enum options_result { OPTIONS_OK, OPTIONS_ERROR, OPTIONS_HELP, OPTIONS_VERSION };

/* Where an option belongs: the global part, a relay or a tunnel. */
enum opt_scope { SCOPE_GLOBAL, SCOPE_RELAY, SCOPE_TUNNEL };

/*
 * Parses argv into cfg (which config_init prepared). Relay and tunnel
 * options build the command line's relay and tunnel. On OPTIONS_ERROR,
 * err holds one line naming the bad option or value.
 */
enum options_result options_parse(struct config *cfg, int argc, char **argv,
	    char *err, size_t errlen);
/*
 * Applies one config file line "name = value" to obj, a struct config,
 * relay_conf or tunnel_conf as scope says. Flags take yes/no.
 */
int	options_set(struct config *cfg, enum opt_scope scope, void *obj,
	    const char *name, const char *value, char *err, size_t errlen);
/* Finds -c/--config FILE in argv before parsing (NULL if absent). */
const char *options_config_file(int argc, char **argv);
/* Prints the usage text generated from the table. */
void	options_usage(FILE *fp);

#endif
