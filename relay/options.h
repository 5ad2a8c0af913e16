/* The option table: command line now, config file keys later, one source. */
#ifndef RELAY_OPTIONS_H
#define RELAY_OPTIONS_H

#include <stdio.h>

#include "relay/config.h"

enum options_result { OPTIONS_OK, OPTIONS_ERROR, OPTIONS_HELP, OPTIONS_VERSION };

/*
 * Parses argv into cfg (which config_init prepared). On OPTIONS_ERROR, err
 * holds one line naming the bad option or value.
 */
enum options_result options_parse(struct config *cfg, int argc, char **argv,
	    char *err, size_t errlen);
/* Applies one option by its long name, as a config file line would. */
int	options_set(struct config *cfg, const char *name, const char *value,
	    char *err, size_t errlen);
/* Prints the usage text generated from the table. */
void	options_usage(FILE *fp);

#endif
