/*
 * One table describes every option: its spelling, argument, help line and
 * the function that stores it. getopt_long's table and --help are generated
 * from it, and a config file can apply the same entries by name.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "relay/options.h"

typedef int opt_setter(struct config *, const char *, char *, size_t);

struct opt_def {
	const char	*name;
	int		 shortopt;	/* 0 = long only */
	const char	*argname;	/* NULL = flag */
	const char	*help;
	opt_setter	*set;
};

static int
parse_uint(const char *s, const char *what, unsigned long max,
    unsigned long *out, char *err, size_t errlen)
{
	char		*end;
	unsigned long	 v;

	if (*s < '0' || *s > '9') {
		snprintf(err, errlen, "%s: \"%s\" is not a number", what, s);
		return -1;
	}
	v = strtoul(s, &end, 10);
	if (*end != '\0') {
		snprintf(err, errlen, "%s: \"%s\" is not a number", what, s);
		return -1;
	}
	if (v > max) {
		snprintf(err, errlen, "%s: %s is larger than %lu", what, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
set_listen(struct config *cfg, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = &cfg->relay;
	struct addr_spec	 a, *n;
	char			 why[256];

	if (addr_parse_listen(v, &a, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "--listen %s: %s", v, why);
		return -1;
	}
	if ((n = reallocarray(r->listen, r->nlisten + 1, sizeof(*n))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->listen = n;
	r->listen[r->nlisten++] = a;
	return 0;
}

static int
set_to(struct config *cfg, const char *v, char *err, size_t errlen)
{
	char	why[256];

	if (cfg->relay.has_to) {
		snprintf(err, errlen, "--to %s: only one --to per relay", v);
		return -1;
	}
	if (addr_parse_target(v, &cfg->relay.to, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "--to %s: %s", v, why);
		return -1;
	}
	cfg->relay.has_to = 1;
	return 0;
}

static int
set_user(struct config *cfg, const char *v, char *err, size_t errlen)
{
	if (*v == '\0' || strlen(v) >= sizeof(cfg->user)) {
		snprintf(err, errlen, "--user: bad user name \"%s\"", v);
		return -1;
	}
	strcpy(cfg->user, v);
	return 0;
}

static int
set_fork(struct config *cfg, const char *v, char *err, size_t errlen)
{
	cfg->relay.fork_mode = 1;
	return 0;
}

static int
set_connect_timeout(struct config *cfg, const char *v, char *err,
    size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--connect-timeout", 86400, &n, err, errlen) == -1)
		return -1;
	if (n == 0) {
		snprintf(err, errlen, "--connect-timeout: must be at least 1");
		return -1;
	}
	cfg->relay.connect_timeout = (int)n;
	return 0;
}

static int
set_idle_timeout(struct config *cfg, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--idle-timeout", 86400 * 365, &n, err, errlen) == -1)
		return -1;
	cfg->relay.idle_timeout = (int)n;
	return 0;
}

static int
set_max_conns(struct config *cfg, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--max-conns", UINT_MAX, &n, err, errlen) == -1)
		return -1;
	cfg->relay.max_conns = (unsigned)n;
	return 0;
}

static int
set_verbose(struct config *cfg, const char *v, char *err, size_t errlen)
{
	cfg->log_level = LOG_LVL_DEBUG;
	return 0;
}

static int
set_quiet(struct config *cfg, const char *v, char *err, size_t errlen)
{
	cfg->log_level = LOG_LVL_WARN;
	return 0;
}

static int
set_ssh(struct config *cfg, const char *v, char *err, size_t errlen)
{
	if (cfg->tunnel.enabled) {
		snprintf(err, errlen, "--ssh %s: only one --ssh per tunnel", v);
		return -1;
	}
	if (ssh_dest_parse(v, &cfg->tunnel.dest, err, errlen) == -1)
		return -1;
	cfg->tunnel.enabled = 1;
	return 0;
}

static int
add_forward(struct config *cfg, enum forward_kind kind, const char *v,
    char *err, size_t errlen)
{
	struct tunnel_conf	*t = &cfg->tunnel;
	struct forward_spec	 f, *n;

	if (forward_parse(kind, v, &f, err, errlen) == -1)
		return -1;
	if ((n = reallocarray(t->fwd, t->nfwd + 1, sizeof(*n))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->fwd = n;
	t->fwd[t->nfwd++] = f;
	return 0;
}

static int
set_remote(struct config *cfg, const char *v, char *err, size_t errlen)
{
	return add_forward(cfg, FWD_REMOTE, v, err, errlen);
}

static int
set_local(struct config *cfg, const char *v, char *err, size_t errlen)
{
	return add_forward(cfg, FWD_LOCAL, v, err, errlen);
}

static int
set_dynamic(struct config *cfg, const char *v, char *err, size_t errlen)
{
	return add_forward(cfg, FWD_DYNAMIC, v, err, errlen);
}

static int
set_path(char **dst, const char *opt, const char *v, char *err,
    size_t errlen)
{
	if (*v == '\0') {
		snprintf(err, errlen, "%s: empty path", opt);
		return -1;
	}
	free(*dst);
	if ((*dst = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
set_identity(struct config *cfg, const char *v, char *err, size_t errlen)
{
	return set_path(&cfg->tunnel.identity, "--identity", v, err, errlen);
}

static int
set_passphrase_file(struct config *cfg, const char *v, char *err,
    size_t errlen)
{
	return set_path(&cfg->tunnel.passphrase_file,
	    "--identity-passphrase-file", v, err, errlen);
}

static int
set_known_hosts(struct config *cfg, const char *v, char *err, size_t errlen)
{
	return set_path(&cfg->tunnel.known_hosts, "--known-hosts", v, err,
	    errlen);
}

static int
set_accept_new(struct config *cfg, const char *v, char *err, size_t errlen)
{
	cfg->tunnel.accept_new_host_key = 1;
	return 0;
}

static int
set_keepalive(struct config *cfg, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--keepalive", 3600, &n, err, errlen) == -1)
		return -1;
	if (n == 0) {
		snprintf(err, errlen, "--keepalive: must be at least 1");
		return -1;
	}
	cfg->tunnel.keepalive = (int)n;
	return 0;
}

static int
set_keepalive_count(struct config *cfg, const char *v, char *err,
    size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--keepalive-count", 100, &n, err, errlen) == -1)
		return -1;
	if (n == 0) {
		snprintf(err, errlen, "--keepalive-count: must be at least 1");
		return -1;
	}
	cfg->tunnel.keepalive_count = (int)n;
	return 0;
}

static int
set_exit_on_forward_failure(struct config *cfg, const char *v, char *err,
    size_t errlen)
{
	cfg->tunnel.exit_on_forward_failure = 1;
	return 0;
}

static int
set_compress(struct config *cfg, const char *v, char *err, size_t errlen)
{
	cfg->tunnel.compress = 1;
	return 0;
}

#define OPT_HELP	'h'
#define OPT_VERSION	'V'

static const struct opt_def opts[] = {
	{ "listen", 0, "[ADDR:]PORT", "accept on PORT (all addresses), "
	  "ADDR:PORT, [IPv6]:PORT or unix:PATH; repeatable", set_listen },
	{ "to", 0, "HOST:PORT", "relay to HOST:PORT, [IPv6]:PORT or "
	  "unix:PATH; a name is resolved per connection", set_to },
	{ "user", 0, "NAME", "user to become after binding "
	  "(default when root: nobody)", set_user },
	{ "fork", 0, NULL, "one process per connection instead of one "
	  "event loop", set_fork },
	{ "connect-timeout", 0, "SEC", "give up connecting to the target "
	  "after SEC (default 10)", set_connect_timeout },
	{ "idle-timeout", 0, "SEC", "close a connection idle for SEC "
	  "(default 0: never)", set_idle_timeout },
	{ "max-conns", 0, "N", "accept and close at once connections "
	  "beyond N (default 0: no limit)", set_max_conns },
	{ "ssh", 0, "[USER@]HOST[:PORT]", "keep an SSH session to HOST "
	  "carrying the forwards below", set_ssh },
	{ "remote", 'R', "[BIND:]RPORT:HOST:PORT", "remote forward: the "
	  "server's RPORT (0: it picks) to HOST:PORT here", set_remote },
	{ "local", 'L', "[BIND:]LPORT:HOST:PORT", "local forward: LPORT here "
	  "to HOST:PORT as the server sees it", set_local },
	{ "dynamic", 'D', "[BIND:]PORT", "SOCKS5 proxy on PORT here, "
	  "connecting through the server", set_dynamic },
	{ "identity", 'i', "FILE", "private key (ed25519 or ecdsa; default: "
	  "ssh-agent, then ~/.ssh/id_*)", set_identity },
	{ "identity-passphrase-file", 0, "FILE", "read the key's passphrase "
	  "from FILE", set_passphrase_file },
	{ "known-hosts", 0, "FILE", "host keys to trust (default "
	  "~/.ssh/known_hosts)", set_known_hosts },
	{ "accept-new-host-key", 0, NULL, "trust and record an unknown host "
	  "key (never a changed one)", set_accept_new },
	{ "keepalive", 0, "SEC", "probe the server after SEC of silence "
	  "(default 15)", set_keepalive },
	{ "keepalive-count", 0, "N", "declare it dead after N unanswered "
	  "probes (default 3)", set_keepalive_count },
	{ "exit-on-forward-failure", 0, NULL, "exit if a forward is refused "
	  "at first start", set_exit_on_forward_failure },
	{ "compress", 'C', NULL, "ask for zlib compression", set_compress },
	{ "verbose", 'v', NULL, "log debugging detail", set_verbose },
	{ "quiet", 'q', NULL, "log only warnings and errors", set_quiet },
	{ "help", OPT_HELP, NULL, "show this help and exit", NULL },
	{ "version", OPT_VERSION, NULL, "show the version and exit", NULL },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt_def *
find_opt(const char *name)
{
	size_t	i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

int
options_set(struct config *cfg, const char *name, const char *value,
    char *err, size_t errlen)
{
	const struct opt_def	*o;

	if ((o = find_opt(name)) == NULL || o->set == NULL) {
		snprintf(err, errlen, "unknown option \"%s\"", name);
		return -1;
	}
	return o->set(cfg, value, err, errlen);
}

static void
build_getopt(struct option *lo, char *so, size_t solen)
{
	size_t	i, n = 0;

	for (i = 0; i < NOPTS; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].argname ? required_argument : no_argument;
		lo[i].flag = NULL;
		/* Long-only options are returned as 256 + table index. */
		lo[i].val = opts[i].shortopt ? opts[i].shortopt : 256 + (int)i;
		if (opts[i].shortopt && n + 3 < solen) {
			so[n++] = (char)opts[i].shortopt;
			if (opts[i].argname)
				so[n++] = ':';
		}
	}
	memset(&lo[NOPTS], 0, sizeof(lo[NOPTS]));
	so[n] = '\0';
}

static const struct opt_def *
opt_by_val(int c)
{
	size_t	i;

	if (c >= 256 && (size_t)(c - 256) < NOPTS)
		return &opts[c - 256];
	for (i = 0; i < NOPTS; i++)
		if (opts[i].shortopt == c)
			return &opts[i];
	return NULL;
}

enum options_result
options_parse(struct config *cfg, int argc, char **argv, char *err,
    size_t errlen)
{
	struct option		 lo[NOPTS + 1];
	char			 so[2 * NOPTS + 2];
	const struct opt_def	*o;
	int			 c, idx;

	build_getopt(lo, so + 1, sizeof(so) - 1);
	so[0] = ':';	/* report a missing argument as ':' */
	opterr = 0;
	optind = 0;	/* full reset, so tests can parse repeatedly */
	while ((c = getopt_long(argc, argv, so, lo, &idx)) != -1) {
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			if (c == '?' && optopt != 0 && bad[1] != '-')
				snprintf(err, errlen, "unknown option -%c",
				    optopt);
			else if (c == '?')
				snprintf(err, errlen, "unknown option %s", bad);
			else
				snprintf(err, errlen, "option %s needs a "
				    "value", bad);
			return OPTIONS_ERROR;
		}
		if (c == OPT_HELP)
			return OPTIONS_HELP;
		if (c == OPT_VERSION)
			return OPTIONS_VERSION;
		if ((o = opt_by_val(c)) == NULL || o->set == NULL) {
			snprintf(err, errlen, "internal: option %d", c);
			return OPTIONS_ERROR;
		}
		if (o->set(cfg, optarg, err, errlen) == -1)
			return OPTIONS_ERROR;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\"",
		    argv[optind]);
		return OPTIONS_ERROR;
	}
	return OPTIONS_OK;
}

void
options_usage(FILE *fp)
{
	char	left[64];
	size_t	i;

	fprintf(fp, "usage: relayd --listen [ADDR:]PORT --to HOST:PORT "
	    "[options]\n"
	    "       relayd --ssh [USER@]HOST[:PORT] -R|-L|-D SPEC ... "
	    "[options]\n\n"
	    "Relays TCP and unix-socket connections and keeps SSH forwards "
	    "up; binds\nprivileged ports, then runs as an unprivileged user "
	    "keeping only\nCAP_NET_BIND_SERVICE.\n\noptions:\n");
	for (i = 0; i < NOPTS; i++) {
		if (opts[i].shortopt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s",
			    opts[i].shortopt, opts[i].name,
			    opts[i].argname ? " " : "",
			    opts[i].argname ? opts[i].argname : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s",
			    opts[i].name, opts[i].argname ? " " : "",
			    opts[i].argname ? opts[i].argname : "");
		fprintf(fp, "  %-36s %s\n", left, opts[i].help);
	}
}
