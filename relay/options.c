/*
 * One table describes every option: its spelling, scope, argument, help
 * line and the function that stores it. getopt_long's table and --help
 * are generated from it, and the config file applies the same entries by
 * name, in the section their scope names.
 */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/options.h"
#include "relay/workers.h"

/* obj is a struct config, relay_conf or tunnel_conf as the scope says;
 * a flag's value is "1" or "0". */
typedef int opt_setter(void *obj, const char *, char *, size_t);

struct opt_def {
	const char	*name;
	int		 shortopt;	/* 0 = long only */
	enum opt_scope	 scope;
	const char	*argname;	/* NULL = flag */
	const char	*help;
	opt_setter	*set;		/* NULL = handled by the parser */
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
set_seconds(int *dst, const char *what, const char *v, unsigned long min,
    unsigned long max, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, what, max, &n, err, errlen) == -1)
		return -1;
	if (n < min) {
		snprintf(err, errlen, "%s: must be at least %lu", what, min);
		return -1;
	}
	*dst = (int)n;
	return 0;
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

/* --- global --- */

static int
set_user(void *o, const char *v, char *err, size_t errlen)
{
	struct config	*cfg = o;

	if (*v == '\0' || strlen(v) >= sizeof(cfg->user)) {
		snprintf(err, errlen, "--user: bad user name \"%s\"", v);
		return -1;
	}
	strcpy(cfg->user, v);
	return 0;
}

static int
set_verbose(void *o, const char *v, char *err, size_t errlen)
{
	if (*v == '1')
		((struct config *)o)->log_level = LOG_LVL_DEBUG;
	return 0;
}

static int
set_quiet(void *o, const char *v, char *err, size_t errlen)
{
	if (*v == '1')
		((struct config *)o)->log_level = LOG_LVL_WARN;
	return 0;
}

static int
set_log_level(void *o, const char *v, char *err, size_t errlen)
{
	static const char *const names[] = { "error", "warning", "info",
	    "debug" };
	size_t	i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(v, names[i]) == 0) {
			((struct config *)o)->log_level = (enum log_level)i;
			return 0;
		}
	}
	snprintf(err, errlen, "--log-level: \"%s\" is not one of error, "
	    "warning, info, debug", v);
	return -1;
}

static int
set_syslog(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->use_syslog = *v == '1';
	return 0;
}

static int
set_daemon(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->daemonize = *v == '1';
	return 0;
}

static int
set_no_sandbox(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->no_sandbox = *v == '1';
	return 0;
}

static int
set_pidfile(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct config *)o)->pidfile, "--pidfile", v, err,
	    errlen);
}

static int
set_drain_timeout(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct config *)o)->drain_timeout,
	    "--drain-timeout", v, 0, 86400, err, errlen);
}

static int
set_workers(void *o, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--workers", WORKERS_MAX, &n, err, errlen) == -1)
		return -1;
	if (n == 0) {
		snprintf(err, errlen, "--workers: must be at least 1");
		return -1;
	}
	((struct config *)o)->workers = (unsigned)n;
	return 0;
}

static int
set_no_splice(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->no_splice = *v == '1';
	return 0;
}

static int
set_check(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->check = *v == '1';
	return 0;
}

static int
set_status(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->status = *v == '1';
	return 0;
}

static int
set_control(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct config *)o)->control, "--control", v, err,
	    errlen);
}

/* [ADDR:]PORT or unix:PATH, checked here and bound by daemon/metrics.c. */
static int
set_metrics(void *o, const char *v, char *err, size_t errlen)
{
	struct addr_spec	a;
	char			why[256];

	if (addr_parse_listen(v, &a, why, sizeof(why)) == -1 || a.udp ||
	    a.tls) {
		snprintf(err, errlen, "--metrics %s: %s", v, a.udp || a.tls ?
		    "plain TCP or unix:PATH only" : why);
		return -1;
	}
	return set_path(&((struct config *)o)->metrics, "--metrics", v, err,
	    errlen);
}

static int
set_json(void *o, const char *v, char *err, size_t errlen)
{
	((struct config *)o)->json = *v == '1';
	return 0;
}

static int
set_config(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct config *)o)->file, "--config", v, err,
	    errlen);
}

/* --- relay --- */

static int
set_listen(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;
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
set_to(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;
	char			 why[256];

	if (r->has_to) {
		snprintf(err, errlen, "--to %s: only one --to per relay", v);
		return -1;
	}
	if (addr_parse_target(v, &r->to, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "--to %s: %s", v, why);
		return -1;
	}
	r->has_to = 1;
	return 0;
}

/* A route's name: a DNS name, or "*." and one, lowercased into out. */
static int
route_name(const char *s, size_t n, char *out, size_t outlen)
{
	size_t	i = s[0] == '*' && n > 2 && s[1] == '.' ? 2 : 0;

	if (n == 0 || n >= outlen || n > 253)
		return -1;
	for (; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.' && s[i] != '_')
			return -1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

/* NAME=TARGET on the command line, NAME TARGET in the file. */
static int
set_route(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;
	struct route_conf	 route, *n;
	size_t			 len = strcspn(v, "= \t"), i;
	const char		*to = v + len;
	char			 why[256];

	memset(&route, 0, sizeof(route));
	to += strspn(to, "= \t");
	if (v[len] == '\0' || *to == '\0' ||
	    route_name(v, len, route.name, sizeof(route.name)) == -1) {
		snprintf(err, errlen, "--route %s: give NAME=HOST:PORT, NAME a "
		    "host name or *.domain", v);
		return -1;
	}
	if (addr_parse_target(to, &route.to, why, sizeof(why)) == -1 ||
	    route.to.udp) {
		snprintf(err, errlen, "--route %s: %s", v, route.to.udp ?
		    "a route goes to a stream target, not udp:" : why);
		return -1;
	}
	for (i = 0; i < r->nroutes; i++)
		if (strcmp(r->routes[i].name, route.name) == 0) {
			snprintf(err, errlen, "--route %s: %s is routed "
			    "already", v, route.name);
			return -1;
		}
	if ((n = reallocarray(r->routes, r->nroutes + 1, sizeof(*n))) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->routes = n;
	r->routes[r->nroutes++] = route;
	return 0;
}

static int
set_fork(void *o, const char *v, char *err, size_t errlen)
{
	((struct relay_conf *)o)->fork_mode = *v == '1';
	return 0;
}

static int
set_connect_timeout(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct relay_conf *)o)->connect_timeout,
	    "--connect-timeout", v, 1, 86400, err, errlen);
}

static int
set_idle_timeout(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct relay_conf *)o)->idle_timeout,
	    "--idle-timeout", v, 0, 86400 * 365, err, errlen);
}

static int
set_max_conns(void *o, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--max-conns", UINT_MAX, &n, err, errlen) == -1)
		return -1;
	((struct relay_conf *)o)->max_conns = (unsigned)n;
	return 0;
}

static int
set_proxy_protocol(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;

	if (strcmp(v, "v1") == 0 || strcmp(v, "1") == 0)
		r->send_proxy = 1;
	else if (strcmp(v, "v2") == 0 || strcmp(v, "2") == 0)
		r->send_proxy = 2;
	else {
		snprintf(err, errlen, "--proxy-protocol: \"%s\" is not v1 or "
		    "v2", v);
		return -1;
	}
	return 0;
}

static int
set_accept_proxy(void *o, const char *v, char *err, size_t errlen)
{
	((struct relay_conf *)o)->accept_proxy = *v == '1';
	return 0;
}

static int
set_handshake_timeout(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct relay_conf *)o)->handshake_timeout,
	    "--handshake-timeout", v, 1, 3600, err, errlen);
}

/* Appends a path to a repeatable option's list. */
static int
add_path(char ***list, size_t *n, const char *opt, const char *v, char *err,
    size_t errlen)
{
	char	**grown, *p = NULL;

	if (set_path(&p, opt, v, err, errlen) == -1)
		return -1;
	if ((grown = reallocarray(*list, *n + 1, sizeof(*grown))) == NULL) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	grown[(*n)++] = p;
	*list = grown;
	return 0;
}

static int
set_cert(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;

	return add_path(&r->certs, &r->ncerts, "--cert", v, err, errlen);
}

static int
set_key(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;

	return add_path(&r->keys, &r->nkeys, "--key", v, err, errlen);
}

static int
set_ca(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct relay_conf *)o)->ca, "--ca", v, err, errlen);
}

static int
set_verify_name(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;

	if (*v == '\0' || strlen(v) > ADDR_HOST_MAX) {
		snprintf(err, errlen, "--verify-name: bad name \"%s\"", v);
		return -1;
	}
	free(r->verify_name);
	if ((r->verify_name = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* A comma-separated list of protocol names, each 1-255 visible bytes
 * (RFC 7301), kept as given; tls_server_new encodes it. */
static int
set_alpn(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;
	const char		*p;
	size_t			 len = 0;

	if (strlen(v) >= sizeof(r->alpn))
		goto bad;
	for (p = v;; p++) {
		if (*p == ',' || *p == '\0') {
			if (len == 0)
				goto bad;
			if (*p == '\0')
				break;
			len = 0;
		} else if (*p <= ' ' || *p > '~')
			goto bad;
		else
			len++;
	}
	strcpy(r->alpn, v);
	return 0;
bad:
	snprintf(err, errlen, "--alpn: \"%s\" is not a list of protocol "
	    "names (h2,http/1.1)", v);
	return -1;
}

static int
set_acme_dir(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct relay_conf *)o)->acme_dir, "--acme-dir", v,
	    err, errlen);
}

static int
set_acme_ca(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct relay_conf *)o)->acme_ca, "--acme-ca", v,
	    err, errlen);
}

/* The e-mail address goes into JSON and a mailto: URL: plain bytes. */
static int
set_acme_email(void *o, const char *v, char *err, size_t errlen)
{
	const char	*p;

	for (p = v; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~' || strchr("\"\\<>,", *p) != NULL)
			break;
	if (*p != '\0' || strchr(v, '@') == NULL || strlen(v) > 200) {
		snprintf(err, errlen, "--acme-email: bad address \"%s\"", v);
		return -1;
	}
	return set_path(&((struct relay_conf *)o)->acme_email, "--acme-email",
	    v, err, errlen);
}

static int
set_acme_server(void *o, const char *v, char *err, size_t errlen)
{
	const char	*p;

	for (p = v; *p > ' ' && *p <= '~' && *p != '"' && *p != '\\'; p++)
		;
	if (strncmp(v, "https://", 8) != 0 || *p != '\0' || strlen(v) > 900) {
		snprintf(err, errlen, "--acme-server: \"%s\" is not an https:// "
		    "URL", v);
		return -1;
	}
	return set_path(&((struct relay_conf *)o)->acme_server,
	    "--acme-server", v, err, errlen);
}

static int
set_acme_name(void *o, const char *v, char *err, size_t errlen)
{
	struct relay_conf	*r = o;
	char			 name[256];

	if (route_name(v, strlen(v), name, sizeof(name)) == -1 ||
	    name[0] == '*') {
		snprintf(err, errlen, "--acme-name: \"%s\" is not a host name",
		    v);
		return -1;
	}
	return add_path(&r->acme_names, &r->nacme_names, "--acme-name", name,
	    err, errlen);
}

static int
add_acl(struct relay_conf *r, int allow, const char *opt, const char *v,
    char *err, size_t errlen)
{
	struct acl_rule	 rule, *n;
	char		 why[256];

	if (cidr_parse(v, &rule.net, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", opt, why);
		return -1;
	}
	rule.allow = allow;
	if ((n = reallocarray(r->acl, r->nacl + 1, sizeof(*n))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->acl = n;
	r->acl[r->nacl++] = rule;
	return 0;
}

static int
set_allow(void *o, const char *v, char *err, size_t errlen)
{
	return add_acl(o, 1, "--allow", v, err, errlen);
}

static int
set_deny(void *o, const char *v, char *err, size_t errlen)
{
	return add_acl(o, 0, "--deny", v, err, errlen);
}

static int
set_max_conns_per_ip(void *o, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--max-conns-per-ip", UINT_MAX, &n, err, errlen) ==
	    -1)
		return -1;
	((struct relay_conf *)o)->max_conns_per_ip = (unsigned)n;
	return 0;
}

static int
set_rate(void *o, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--rate", 1000000, &n, err, errlen) == -1)
		return -1;
	((struct relay_conf *)o)->rate = (unsigned)n;
	return 0;
}

static int
set_connect_retry(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct relay_conf *)o)->connect_retry,
	    "--connect-retry", v, 0, 3600, err, errlen);
}

static int
set_max_held(void *o, const char *v, char *err, size_t errlen)
{
	unsigned long	n;

	if (parse_uint(v, "--max-held", 1000000, &n, err, errlen) == -1)
		return -1;
	((struct relay_conf *)o)->max_held = (unsigned)n;
	return 0;
}

static int
set_udp_timeout(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct relay_conf *)o)->udp_timeout,
	    "--udp-timeout", v, 1, 86400, err, errlen);
}

/* --- tunnel --- */

static int
set_ssh(void *o, const char *v, char *err, size_t errlen)
{
	struct tunnel_conf	*t = o;

	if (t->enabled) {
		snprintf(err, errlen, "--ssh %s: only one --ssh per tunnel", v);
		return -1;
	}
	if (ssh_dest_parse(v, &t->dest, err, errlen) == -1)
		return -1;
	t->enabled = 1;
	return 0;
}

static int
add_forward(struct tunnel_conf *t, enum forward_kind kind, const char *v,
    char *err, size_t errlen)
{
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
set_remote(void *o, const char *v, char *err, size_t errlen)
{
	return add_forward(o, FWD_REMOTE, v, err, errlen);
}

static int
set_local(void *o, const char *v, char *err, size_t errlen)
{
	return add_forward(o, FWD_LOCAL, v, err, errlen);
}

static int
set_dynamic(void *o, const char *v, char *err, size_t errlen)
{
	return add_forward(o, FWD_DYNAMIC, v, err, errlen);
}

static int
set_identity(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct tunnel_conf *)o)->identity, "--identity", v,
	    err, errlen);
}

static int
set_passphrase_file(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct tunnel_conf *)o)->passphrase_file,
	    "--identity-passphrase-file", v, err, errlen);
}

static int
set_known_hosts(void *o, const char *v, char *err, size_t errlen)
{
	return set_path(&((struct tunnel_conf *)o)->known_hosts,
	    "--known-hosts", v, err, errlen);
}

static int
set_accept_new(void *o, const char *v, char *err, size_t errlen)
{
	((struct tunnel_conf *)o)->accept_new_host_key = *v == '1';
	return 0;
}

static int
set_keepalive(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct tunnel_conf *)o)->keepalive,
	    "--keepalive", v, 1, 3600, err, errlen);
}

static int
set_keepalive_count(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct tunnel_conf *)o)->keepalive_count,
	    "--keepalive-count", v, 1, 100, err, errlen);
}

static int
set_exit_on_forward_failure(void *o, const char *v, char *err, size_t errlen)
{
	((struct tunnel_conf *)o)->exit_on_forward_failure = *v == '1';
	return 0;
}

static int
set_compress(void *o, const char *v, char *err, size_t errlen)
{
	((struct tunnel_conf *)o)->compress = *v == '1';
	return 0;
}

static int
set_tunnel_connect_retry(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct tunnel_conf *)o)->connect_retry,
	    "--connect-retry", v, 0, 3600, err, errlen);
}

static int
set_probe(void *o, const char *v, char *err, size_t errlen)
{
	return set_seconds(&((struct tunnel_conf *)o)->probe, "--probe", v, 1,
	    3600, err, errlen);
}

static int
set_strip_proxy(void *o, const char *v, char *err, size_t errlen)
{
	((struct tunnel_conf *)o)->strip_proxy = *v == '1';
	return 0;
}

#define OPT_HELP	'h'
#define OPT_VERSION	'V'
#define G	SCOPE_GLOBAL
#define R	SCOPE_RELAY
#define T	SCOPE_TUNNEL

static const struct opt_def opts[] = {
	{ "listen", 0, R, "[ADDR:]PORT", "accept on PORT (all addresses), "
	  "ADDR:PORT, [IPv6]:PORT or unix:PATH; repeatable; udp:[ADDR:]PORT "
	  "for datagrams; tls:... terminates TLS", set_listen },
	{ "to", 0, R, "HOST:PORT", "relay to HOST:PORT, [IPv6]:PORT or "
	  "unix:PATH; a name is resolved per connection; udp:HOST:PORT for "
	  "datagrams; tls:HOST:PORT speaks TLS to it", set_to },
	{ "route", 0, R, "NAME=HOST:PORT", "connections naming NAME (TLS "
	  "SNI, HTTP Host; *.domain for one more label) go to HOST:PORT, "
	  "--to is the default; repeatable", set_route },
	{ "cert", 0, R, "FILE", "certificate chain (PEM) for tls: listeners; "
	  "repeatable, SNI picks, the first is the default", set_cert },
	{ "key", 0, R, "FILE", "private key (PEM) of the --cert given in the "
	  "same position", set_key },
	{ "ca", 0, R, "FILE", "CA certificates to verify a tls: target "
	  "(default: the system store)", set_ca },
	{ "verify-name", 0, R, "NAME", "name the tls: target's certificate "
	  "must carry (default: its HOST)", set_verify_name },
	{ "acme-dir", 0, R, "DIR", "get the tls: listeners' certificate "
	  "by ACME (RFC 8555) and keep it, the account key and its key in "
	  "DIR", set_acme_dir },
	{ "acme-email", 0, R, "ADDR", "contact address of the ACME account",
	  set_acme_email },
	{ "acme-server", 0, R, "URL", "ACME directory URL (default: Let's "
	  "Encrypt's production one)", set_acme_server },
	{ "acme-name", 0, R, "NAME", "a name the ACME certificate is for; "
	  "repeatable (default: the --route names)", set_acme_name },
	{ "acme-ca", 0, R, "FILE", "CA certificates the ACME server must "
	  "chain to (default: the system store)", set_acme_ca },
	{ "alpn", 0, R, "LIST", "application protocols a tls: listener "
	  "agrees to, in order of preference (default: http/1.1); a client "
	  "offering none of them fails the handshake", set_alpn },
	{ "fork", 0, R, NULL, "one process per connection instead of one "
	  "event loop", set_fork },
	{ "connect-timeout", 0, R, "SEC", "give up connecting to the target "
	  "after SEC (default 10)", set_connect_timeout },
	{ "connect-retry", 0, R, "SEC", "hold a client whose target refuses "
	  "or is unreachable, trying again every 100-250 ms for up to SEC "
	  "(default 0: close it at once)", set_connect_retry },
	{ "max-held", 0, R, "N", "hold at most N clients at once for "
	  "--connect-retry; beyond, a failed connect closes the client "
	  "(default 256)", set_max_held },
	{ "idle-timeout", 0, R, "SEC", "close a connection idle for SEC "
	  "(default 0: never)", set_idle_timeout },
	{ "max-conns", 0, R, "N", "accept and close at once connections "
	  "beyond N; UDP: drop new clients' datagrams beyond N flows "
	  "(default 0: no limit)", set_max_conns },
	{ "proxy-protocol", 0, R, "v1|v2", "send the target a PROXY protocol "
	  "header with the client's address", set_proxy_protocol },
	{ "accept-proxy", 0, R, NULL, "read a PROXY protocol header from each "
	  "client and use the address it carries", set_accept_proxy },
	{ "handshake-timeout", 0, R, "SEC", "close a connection whose PROXY "
	  "header or TLS handshake is not done after SEC (default 5)",
	  set_handshake_timeout },
	{ "allow", 0, R, "CIDR", "accept clients from CIDR (then only those "
	  "an --allow names); repeatable", set_allow },
	{ "deny", 0, R, "CIDR", "refuse clients from CIDR; repeatable, the "
	  "first --allow/--deny that matches wins", set_deny },
	{ "max-conns-per-ip", 0, R, "N", "refuse a client address's "
	  "connections beyond N live ones (default 0: no limit)",
	  set_max_conns_per_ip },
	{ "rate", 0, R, "N", "refuse a client address's new connections "
	  "beyond N a second (default 0: no limit)", set_rate },
	{ "udp-timeout", 0, R, "SEC", "end a UDP flow silent both ways for "
	  "SEC (default 60)", set_udp_timeout },
	{ "ssh", 0, T, "[USER@]HOST[:PORT]", "keep an SSH session to HOST "
	  "carrying the forwards below", set_ssh },
	{ "remote", 'R', T, "[BIND:]RPORT:HOST:PORT", "remote forward: the "
	  "server's RPORT (0: it picks) to HOST:PORT here", set_remote },
	{ "local", 'L', T, "[BIND:]LPORT:HOST:PORT", "local forward: LPORT "
	  "here to HOST:PORT as the server sees it", set_local },
	{ "dynamic", 'D', T, "[BIND:]PORT", "SOCKS5 proxy on PORT here, "
	  "connecting through the server", set_dynamic },
	{ "identity", 'i', T, "FILE", "private key (ed25519 or ecdsa; "
	  "default: ssh-agent, then ~/.ssh/id_*)", set_identity },
	{ "identity-passphrase-file", 0, T, "FILE", "read the key's "
	  "passphrase from FILE", set_passphrase_file },
	{ "known-hosts", 0, T, "FILE", "host keys to trust (default "
	  "~/.ssh/known_hosts)", set_known_hosts },
	{ "accept-new-host-key", 0, T, NULL, "trust and record an unknown "
	  "host key (never a changed one)", set_accept_new },
	{ "keepalive", 0, T, "SEC", "probe the server every SEC seconds "
	  "(default 15)", set_keepalive },
	{ "keepalive-count", 0, T, "N", "declare it dead after N unanswered "
	  "probes (default 3)", set_keepalive_count },
	{ "exit-on-forward-failure", 0, T, NULL, "exit if a forward is "
	  "refused at first start", set_exit_on_forward_failure },
	{ "compress", 'C', T, NULL, "ask for zlib compression", set_compress },
	{ "connect-retry", 0, T, "SEC", "retry a refused or unreachable -R "
	  "target for up to SEC, the channel kept open (default 5; 0: off)",
	  set_tunnel_connect_retry },
	{ "probe", 0, T, "SEC", "every SEC, check through the server that "
	  "each -R port comes back to this tunnel (default: off)", set_probe },
	{ "strip-proxy-header", 0, T, NULL, "each forwarded connection starts "
	  "with a PROXY header: log its address, remove it", set_strip_proxy },
	{ "config", 'c', G, "FILE", "read relays and tunnels from FILE",
	  set_config },
	{ "check", 0, G, NULL, "check the configuration, print "
	  "\"configuration OK\" and exit", set_check },
	{ "control", 0, G, "PATH", "answer --status on this unix socket",
	  set_control },
	{ "status", 0, G, NULL, "print the running relayd's status (from "
	  "--control) and exit", set_status },
	{ "json", 0, G, NULL, "with --status: print one JSON document",
	  set_json },
	{ "metrics", 0, G, "[ADDR:]PORT", "serve /metrics (Prometheus) and "
	  "/healthz over HTTP (ADDR default 127.0.0.1; or unix:PATH)",
	  set_metrics },
	{ "user", 0, G, "NAME", "user to become after binding "
	  "(default when root: nobody)", set_user },
	{ "drain-timeout", 0, G, "SEC", "on SIGTERM, let connections finish "
	  "for up to SEC (default 10)", set_drain_timeout },
	{ "workers", 0, G, "N", "event loops accepting connections, each in "
	  "a thread (default: one per CPU online)", set_workers },
	{ "no-splice", 0, G, NULL, "copy bytes through buffers even between "
	  "two TCP sockets", set_no_splice },
	{ "log-level", 0, G, "LEVEL", "error, warning, info (default) or "
	  "debug", set_log_level },
	{ "syslog", 0, G, NULL, "log to syslog (the default with --daemon)",
	  set_syslog },
	{ "daemon", 0, G, NULL, "detach and run in the background",
	  set_daemon },
	{ "pidfile", 0, G, "FILE", "write the process id to FILE",
	  set_pidfile },
	{ "no-sandbox", 0, G, NULL, "no system-call filter (for debugging; "
	  "see SECURITY.md)", set_no_sandbox },
	{ "verbose", 'v', G, NULL, "log debugging detail", set_verbose },
	{ "quiet", 'q', G, NULL, "log only warnings and errors", set_quiet },
	{ "help", OPT_HELP, G, NULL, "show this help and exit", NULL },
	{ "version", OPT_VERSION, G, NULL, "show the version and exit", NULL },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const scope_names[] = { "global part", "[relay NAME]",
    "[tunnel NAME]" };

/* The entry for name in scope, or else the first of that name. */
static const struct opt_def *
find_opt(const char *name, enum opt_scope scope)
{
	const struct opt_def	*first = NULL;
	size_t			 i;

	for (i = 0; i < NOPTS; i++) {
		if (strcmp(opts[i].name, name) != 0)
			continue;
		if (opts[i].scope == scope)
			return &opts[i];
		if (first == NULL)
			first = &opts[i];
	}
	return first;
}

/* The other entry of an option that relays and tunnels both take, or
 * NULL. */
static const struct opt_def *
twin_opt(const struct opt_def *o)
{
	size_t	i;

	for (i = 0; i < NOPTS; i++)
		if (&opts[i] != o && strcmp(opts[i].name, o->name) == 0)
			return &opts[i];
	return NULL;
}

static int
parse_flag(const char *v, const char **out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t	i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = "1";
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = "0";
			return 0;
		}
	}
	return -1;
}

int
options_set(struct config *cfg, enum opt_scope scope, void *obj,
    const char *name, const char *value, char *err, size_t errlen)
{
	const struct opt_def	*o = find_opt(name, scope);

	if (o == NULL || o->set == NULL || o->set == set_config ||
	    o->set == set_check || o->set == set_status) {
		snprintf(err, errlen, "unknown key \"%s\"", name);
		return -1;
	}
	if (o->scope != scope) {
		snprintf(err, errlen, "\"%s\" belongs in the %s, not the %s",
		    name, scope_names[o->scope], scope_names[scope]);
		return -1;
	}
	if (o->argname == NULL && parse_flag(value, &value) == -1) {
		snprintf(err, errlen, "%s: \"%s\" is not yes or no", name,
		    value);
		return -1;
	}
	return o->set(scope == SCOPE_GLOBAL ? cfg : obj, value, err, errlen);
}

/* The object a command-line option of scope applies to. */
static void *
cli_object(struct config *cfg, enum opt_scope scope)
{
	if (scope == SCOPE_RELAY && cfg->cli_relay == NULL)
		cfg->cli_relay = config_add_relay(cfg, "", 0);
	if (scope == SCOPE_TUNNEL && cfg->cli_tunnel == NULL)
		cfg->cli_tunnel = config_add_tunnel(cfg, "", 0);
	switch (scope) {
	case SCOPE_RELAY:
		return cfg->cli_relay;
	case SCOPE_TUNNEL:
		return cfg->cli_tunnel;
	default:
		return cfg;
	}
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

static void
getopt_error(int c, char **argv, char *err, size_t errlen)
{
	const char	*bad = argv[optind - 1];

	if (c == '?' && optopt != 0 && bad[1] != '-')
		snprintf(err, errlen, "unknown option -%c", optopt);
	else if (c == '?')
		snprintf(err, errlen, "unknown option %s", bad);
	else
		snprintf(err, errlen, "option %s needs a value", bad);
}

/*
 * An option that relays and tunnels both take (--connect-retry) applies on
 * the command line to its relay and its tunnel, whichever are given, and
 * to a relay when neither is.
 */
static enum options_result
apply_shared(struct config *cfg, const struct opt_def *o, const char *v,
    char *err, size_t errlen)
{
	const struct opt_def	*twin = twin_opt(o);
	const struct opt_def	*mine;
	enum opt_scope		 scope;

	for (scope = SCOPE_RELAY; scope <= SCOPE_TUNNEL; scope++) {
		mine = o->scope == scope ? o : twin;
		if (mine->scope != scope)
			continue;
		if (scope == SCOPE_RELAY && cfg->cli_relay == NULL &&
		    cfg->cli_tunnel != NULL)
			continue;
		if (scope == SCOPE_TUNNEL && cfg->cli_tunnel == NULL)
			continue;
		if (cli_object(cfg, scope) == NULL) {
			snprintf(err, errlen, "out of memory");
			return OPTIONS_ERROR;
		}
		if (mine->set(cli_object(cfg, scope), v, err, errlen) == -1)
			return OPTIONS_ERROR;
	}
	return OPTIONS_OK;
}

enum options_result
options_parse(struct config *cfg, int argc, char **argv, char *err,
    size_t errlen)
{
	struct option		 lo[NOPTS + 1];
	char			 so[2 * NOPTS + 2];
	const struct opt_def	*o, *shared = NULL;
	const char		*shared_val = NULL;
	void			*obj;
	int			 c, idx;

	build_getopt(lo, so + 1, sizeof(so) - 1);
	so[0] = ':';	/* report a missing argument as ':' */
	opterr = 0;
	optind = 0;	/* full reset, so tests can parse repeatedly */
	while ((c = getopt_long(argc, argv, so, lo, &idx)) != -1) {
		if (c == '?' || c == ':') {
			getopt_error(c, argv, err, errlen);
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
		/* Known only once every option is read: whose it is. */
		if (twin_opt(o) != NULL) {
			shared = o;
			shared_val = optarg;
			continue;
		}
		if ((obj = cli_object(cfg, o->scope)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return OPTIONS_ERROR;
		}
		if (o->set(obj, o->argname ? optarg : "1", err, errlen) == -1)
			return OPTIONS_ERROR;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\"",
		    argv[optind]);
		return OPTIONS_ERROR;
	}
	return shared == NULL ? OPTIONS_OK : apply_shared(cfg, shared,
	    shared_val, err, errlen);
}

const char *
options_config_file(int argc, char **argv)
{
	int	i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if ((strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return NULL;
}

void
options_usage(FILE *fp)
{
	static const char *const heads[] = { "general", "relays",
	    "tunnels" };
	static const enum opt_scope order[] = { SCOPE_RELAY, SCOPE_TUNNEL,
	    SCOPE_GLOBAL };
	enum opt_scope	scope;
	char		left[64];
	size_t		i, k;

	fprintf(fp, "usage: relayd --listen [ADDR:]PORT --to HOST:PORT "
	    "[options]\n"
	    "       relayd --ssh [USER@]HOST[:PORT] -R|-L|-D SPEC ... "
	    "[options]\n"
	    "       relayd -c FILE [--check]\n\n"
	    "Relays TCP and unix-socket connections and UDP datagrams, and "
	    "keeps SSH\nforwards up; binds privileged ports, then runs as an "
	    "unprivileged user\nkeeping only CAP_NET_BIND_SERVICE. Every long "
	    "option is also a config\nfile key.\n");
	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		scope = order[k];
		fprintf(fp, "\n%s:\n", heads[scope]);
		for (i = 0; i < NOPTS; i++) {
			if (opts[i].scope != scope)
				continue;
			snprintf(left, sizeof(left), "%s%c%s--%s%s%s",
			    opts[i].shortopt ? "-" : "  ",
			    opts[i].shortopt ? opts[i].shortopt : ' ',
			    opts[i].shortopt ? ", " : "  ", opts[i].name,
			    opts[i].argname ? " " : "",
			    opts[i].argname ? opts[i].argname : "");
			fprintf(fp, "  %-38s %s\n", left, opts[i].help);
		}
	}
}
