/*
 * The config file, read from memory through the same reader, inih and
 * option table as a file on disk. What loads must survive what a reload
 * does with it: validation, and copies that compare equal.
 */
#include "relay/cfgfile.h"
#include "tests/fuzz/fuzz.h"

static void
copies_equal(const struct config *cfg)
{
	struct relay_conf	*r;
	struct tunnel_conf	*t;
	size_t			 i;

	for (i = 0; i < cfg->nrelays; i++) {
		if ((r = relay_conf_dup(cfg->relays[i])) == NULL)
			continue;
		FUZZ_CHECK(relay_conf_equal(r, cfg->relays[i]),
		    "relay %zu differs from its copy", i);
		relay_conf_free(r);
	}
	for (i = 0; i < cfg->ntunnels; i++) {
		if ((t = tunnel_conf_dup(cfg->tunnels[i])) == NULL)
			continue;
		FUZZ_CHECK(tunnel_conf_equal(t, cfg->tunnels[i]),
		    "tunnel %zu differs from its copy", i);
		tunnel_conf_free(t);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 cfg;
	FILE		*fp;
	char		 err[1024];

	fuzz_quiet();
	if (size == 0 || (fp = fmemopen((void *)(uintptr_t)data, size,
	    "r")) == NULL)
		return 0;
	config_init(&cfg);
	if (cfgfile_read(&cfg, fp, "fuzz.conf") == 0)
		(void)config_validate(&cfg, err, sizeof(err));
	copies_equal(&cfg);
	fclose(fp);
	config_free(&cfg);
	return 0;
}
