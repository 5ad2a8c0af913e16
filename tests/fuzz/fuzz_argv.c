/*
 * The command line: the input is split at NUL bytes into arguments and
 * parsed by the same option table as the config file.
 */
#include "relay/options.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ARGS	64

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 argv0[] = "relayd";
	struct config	 cfg;
	char		*copy, *argv[MAX_ARGS + 2], *p, *end, err[1024];
	int		 argc = 0;

	fuzz_quiet();
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = argv0;
	for (p = copy, end = copy + size; p < end && argc <= MAX_ARGS;
	    p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	(void)options_config_file(argc, argv);
	config_init(&cfg);
	err[0] = '\0';
	switch (options_parse(&cfg, argc, argv, err, sizeof(err))) {
	case OPTIONS_OK:
		(void)config_validate(&cfg, err, sizeof(err));
		break;
	case OPTIONS_ERROR:
		FUZZ_CHECK(err[0] != '\0', "an error without a message");
		break;
	default:
		break;
	}
	config_free(&cfg);
	free(copy);
	return 0;
}
