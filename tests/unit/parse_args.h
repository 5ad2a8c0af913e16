/*
 * For the unit suites: a command line parsed from a list of arguments.
 * Header-only, since each suite is one file linked with the real sources.
 */
#ifndef TESTS_UNIT_PARSE_ARGS_H
#define TESTS_UNIT_PARSE_ARGS_H

#include <stdarg.h>

#include "relay/config.h"
#include "relay/options.h"

static char err[512];

/* Parses a NULL-terminated argument list (argv[0] added) into cfg. */
static inline enum options_result
parse(struct config *cfg, ...)
{
	static char prog[] = "relayd";
	char	*argv[32] = { prog };
	int	 argc = 1;
	va_list	 ap;

	config_init(cfg);
	va_start(ap, cfg);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	return options_parse(cfg, argc, argv, err, sizeof(err));
}

#endif
