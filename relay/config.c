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
	cfg->drain_timeout = 10;
}

static void
free_strv(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n && v != NULL; i++)
		free(v[i]);
	free(v);
}

void
relay_conf_free(struct relay_conf *r)
{
	if (r == NULL)
		return;
	free(r->listen);
	free(r->acl);
	free(r->routes);
	free_strv(r->certs, r->ncerts);
	free_strv(r->keys, r->nkeys);
	free(r->ca);
	free(r->verify_name);
	free(r->acme_dir);
	free(r->acme_email);
	free(r->acme_server);
	free(r->acme_ca);
	free_strv(r->acme_names, r->nacme_names);
	free(r);
}

void
tunnel_conf_free(struct tunnel_conf *t)
{
	if (t == NULL)
		return;
	free(t->fwd);
	free(t->identity);
	free(t->passphrase_file);
	free(t->known_hosts);
	free(t);
}

static void *
memdup(const void *p, size_t n)
{
	void	*q;

	if (n == 0 || (q = malloc(n)) == NULL)
		return NULL;
	return memcpy(q, p, n);
}

/* strdup that keeps NULL; sets *failed when memory runs out. */
static char *
dupstr(const char *s, int *failed)
{
	char	*d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*failed = 1;
	return d;
}

/* Copies n strings; NULL for none, *failed when memory runs out. */
static char **
dup_strv(char *const *v, size_t n, int *failed)
{
	char	**d;
	size_t	  i;

	if (n == 0)
		return NULL;
	if ((d = calloc(n, sizeof(*d))) == NULL) {
		*failed = 1;
		return NULL;
	}
	for (i = 0; i < n; i++)
		d[i] = dupstr(v[i], failed);
	return d;
}

struct relay_conf *
relay_conf_dup(const struct relay_conf *r)
{
	struct relay_conf	*c;
	int			 failed = 0;

	if ((c = memdup(r, sizeof(*r))) == NULL)
		return NULL;
	c->listen = memdup(r->listen, r->nlisten * sizeof(*r->listen));
	c->acl = memdup(r->acl, r->nacl * sizeof(*r->acl));
	c->routes = memdup(r->routes, r->nroutes * sizeof(*r->routes));
	c->certs = dup_strv(r->certs, r->ncerts, &failed);
	c->keys = dup_strv(r->keys, r->nkeys, &failed);
	c->ca = dupstr(r->ca, &failed);
	c->verify_name = dupstr(r->verify_name, &failed);
	c->acme_dir = dupstr(r->acme_dir, &failed);
	c->acme_email = dupstr(r->acme_email, &failed);
	c->acme_server = dupstr(r->acme_server, &failed);
	c->acme_ca = dupstr(r->acme_ca, &failed);
	c->acme_names = dup_strv(r->acme_names, r->nacme_names, &failed);
	if (failed || (r->nlisten > 0 && c->listen == NULL) ||
	    (r->nacl > 0 && c->acl == NULL) ||
	    (r->nroutes > 0 && c->routes == NULL)) {
		relay_conf_free(c);
		return NULL;
	}
	return c;
}

struct tunnel_conf *
tunnel_conf_dup(const struct tunnel_conf *t)
{
	struct tunnel_conf	*c;
	int			 failed = 0;

	if ((c = memdup(t, sizeof(*t))) == NULL)
		return NULL;
	c->fwd = memdup(t->fwd, t->nfwd * sizeof(*t->fwd));
	c->identity = dupstr(t->identity, &failed);
	c->passphrase_file = dupstr(t->passphrase_file, &failed);
	c->known_hosts = dupstr(t->known_hosts, &failed);
	if (failed || (t->nfwd > 0 && c->fwd == NULL)) {
		tunnel_conf_free(c);
		return NULL;
	}
	return c;
}

static int
samestr(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0);
}

static int
same_strv(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t	i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (!samestr(a[i], b[i]))
			return 0;
	return 1;
}

/* memcmp for arrays that may be empty, and then NULL (which memcmp may
 * not be given even for no bytes). */
static int
samemem(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

int
relay_conf_equal(const struct relay_conf *a, const struct relay_conf *b)
{
	return strcmp(a->name, b->name) == 0 && a->nlisten == b->nlisten &&
	    samemem(a->listen, b->listen, a->nlisten * sizeof(*a->listen)) &&
	    memcmp(&a->to, &b->to, sizeof(a->to)) == 0 &&
	    a->connect_timeout == b->connect_timeout &&
	    a->idle_timeout == b->idle_timeout &&
	    a->max_conns == b->max_conns && a->fork_mode == b->fork_mode &&
	    a->send_proxy == b->send_proxy &&
	    a->accept_proxy == b->accept_proxy &&
	    a->handshake_timeout == b->handshake_timeout &&
	    a->nacl == b->nacl &&
	    samemem(a->acl, b->acl, a->nacl * sizeof(*a->acl)) &&
	    a->max_conns_per_ip == b->max_conns_per_ip && a->rate == b->rate &&
	    a->udp_timeout == b->udp_timeout && a->nroutes == b->nroutes &&
	    samemem(a->routes, b->routes, a->nroutes * sizeof(*a->routes)) &&
	    a->connect_retry == b->connect_retry &&
	    a->max_held == b->max_held &&
	    same_strv(a->certs, a->ncerts, b->certs, b->ncerts) &&
	    same_strv(a->keys, a->nkeys, b->keys, b->nkeys) &&
	    samestr(a->ca, b->ca) && samestr(a->verify_name, b->verify_name) &&
	    strcmp(a->alpn, b->alpn) == 0 &&
	    samestr(a->acme_dir, b->acme_dir) &&
	    samestr(a->acme_email, b->acme_email) &&
	    samestr(a->acme_server, b->acme_server) &&
	    samestr(a->acme_ca, b->acme_ca) &&
	    same_strv(a->acme_names, a->nacme_names, b->acme_names,
	    b->nacme_names);
}

int
tunnel_conf_equal(const struct tunnel_conf *a, const struct tunnel_conf *b)
{
	return strcmp(a->name, b->name) == 0 &&
	    memcmp(&a->dest, &b->dest, sizeof(a->dest)) == 0 &&
	    a->nfwd == b->nfwd &&
	    samemem(a->fwd, b->fwd, a->nfwd * sizeof(*a->fwd)) &&
	    samestr(a->identity, b->identity) &&
	    samestr(a->passphrase_file, b->passphrase_file) &&
	    samestr(a->known_hosts, b->known_hosts) &&
	    a->accept_new_host_key == b->accept_new_host_key &&
	    a->keepalive == b->keepalive &&
	    a->keepalive_count == b->keepalive_count &&
	    a->exit_on_forward_failure == b->exit_on_forward_failure &&
	    a->compress == b->compress && a->strip_proxy == b->strip_proxy &&
	    a->connect_retry == b->connect_retry && a->probe == b->probe;
}

void
config_free(struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nrelays; i++)
		relay_conf_free(cfg->relays[i]);
	for (i = 0; i < cfg->ntunnels; i++)
		tunnel_conf_free(cfg->tunnels[i]);
	free(cfg->relays);
	free(cfg->tunnels);
	free(cfg->file);
	free(cfg->pidfile);
	free(cfg->control);
	free(cfg->metrics);
	config_init(cfg);
}

/* Appends p to a growing array of pointers; -1 when out of memory. */
static int
append(void ***arr, size_t *n, void *p)
{
	void	**grown;

	if ((grown = reallocarray(*arr, *n + 1, sizeof(*grown))) == NULL)
		return -1;
	grown[(*n)++] = p;
	*arr = grown;
	return 0;
}

struct relay_conf *
config_add_relay(struct config *cfg, const char *name, int line)
{
	struct relay_conf	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->line = line;
	r->connect_timeout = 10;
	r->handshake_timeout = 5;
	r->udp_timeout = 60;
	r->max_held = CONF_MAX_HELD;
	if (append((void ***)&cfg->relays, &cfg->nrelays, r) == -1) {
		free(r);
		return NULL;
	}
	return r;
}

struct tunnel_conf *
config_add_tunnel(struct config *cfg, const char *name, int line)
{
	struct tunnel_conf	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->line = line;
	t->keepalive = 15;
	t->keepalive_count = 3;
	t->connect_retry = CONF_TUNNEL_CONNECT_RETRY;
	if (append((void ***)&cfg->tunnels, &cfg->ntunnels, t) == -1) {
		free(t);
		return NULL;
	}
	return t;
}

/* ACME serves a tls: listener in place of --cert, and answers HTTP-01
 * on the relay's plain listeners (no --fork: it runs in a thread). */
static int
check_acme(const struct relay_conf *r, int tls_listen, char *err,
    size_t errlen)
{
	const char	*dash = r->line ? "" : "--", *why = NULL;
	size_t		 i;
	int		 plain = 0;

	for (i = 0; i < r->nlisten; i++)
		plain |= !r->listen[i].tls && !r->listen[i].udp &&
		    r->listen[i].kind == ADDR_INET;
	if (r->acme_dir == NULL)
		why = r->acme_email != NULL || r->acme_server != NULL ||
		    r->acme_ca != NULL || r->nacme_names > 0 ?
		    "needs acme-dir" : NULL;
	else if (!tls_listen)
		why = "needs a tls: listener";
	else if (r->ncerts > 0)
		why = "replaces cert and key: give one or the other";
	else if (!plain)
		why = "needs a plain TCP listener for HTTP-01 (port 80)";
	else if (r->fork_mode)
		why = "cannot be combined with fork";
	else if (r->nacme_names == 0 && r->nroutes == 0)
		why = "needs acme-name (or routes to take names from)";
	for (i = 0; why == NULL && r->acme_dir != NULL &&
	    r->nacme_names == 0 && i < r->nroutes; i++)
		if (r->routes[i].name[0] == '*')
			why = "cannot get a wildcard route's name (HTTP-01): "
			    "give acme-name";
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "%sacme %s", dash, why);
	return -1;
}

/* --cert/--key pairs go with tls: listeners, --ca with a tls: target
 * (--to's or a route's), --verify-name with --to's. A PROXY header
 * travels outside TLS, which the PROXY code does not do yet. */
static int
check_relay_tls(const struct relay_conf *r, char *err, size_t errlen)
{
	const char	*dash = r->line ? "" : "--";
	size_t		 i;
	int		 tls_listen = 0, tls_to = r->to.tls;

	for (i = 0; i < r->nlisten; i++)
		tls_listen |= r->listen[i].tls;
	for (i = 0; i < r->nroutes; i++)
		tls_to |= r->routes[i].to.tls;
	if (check_acme(r, tls_listen, err, errlen) == -1)
		return -1;
	if (tls_listen && r->ncerts == 0 && r->acme_dir == NULL) {
		snprintf(err, errlen, "a tls: listener needs %scert FILE and "
		    "%skey FILE", dash, dash);
		return -1;
	}
	if (r->ncerts != r->nkeys) {
		snprintf(err, errlen, "give one %skey for each %scert (%zu "
		    "certificates, %zu keys)", dash, dash, r->ncerts, r->nkeys);
		return -1;
	}
	if (!tls_listen && r->ncerts > 0) {
		snprintf(err, errlen, "%scert and %skey need a tls: listener "
		    "(%slisten tls:[ADDR:]PORT)", dash, dash, dash);
		return -1;
	}
	if (!tls_listen && r->alpn[0] != '\0') {
		snprintf(err, errlen, "%salpn needs a tls: listener", dash);
		return -1;
	}
	if (!tls_to && (r->ca != NULL || r->verify_name != NULL)) {
		snprintf(err, errlen, "%s%s needs a tls: target (%sto "
		    "tls:HOST:PORT, or a route to one)", dash, r->ca != NULL ?
		    "ca" : "verify-name", dash);
		return -1;
	}
	if ((tls_listen && r->accept_proxy) || (tls_to && r->send_proxy)) {
		snprintf(err, errlen, "%s cannot be combined with a tls: %s "
		    "yet", tls_listen && r->accept_proxy ? "accept-proxy" :
		    "proxy-protocol", tls_listen && r->accept_proxy ?
		    "listener" : "target");
		return -1;
	}
	return 0;
}

/* Routes read the first bytes of plain TCP connections, or the name a
 * tls: listener's handshake settled on. */
static int
check_routes(const struct relay_conf *r, char *err, size_t errlen)
{
	const char	*opt = r->line ? "route" : "--route", *what = NULL;
	size_t		 i;

	if (r->nroutes == 0)
		return 0;
	for (i = 0; i < r->nlisten; i++)
		if (r->listen[i].udp)
			what = "a udp: listener";
	if (r->has_to && r->to.udp)
		what = "a udp: target";
	if (r->accept_proxy)
		what = r->line ? "accept-proxy yet" : "--accept-proxy yet";
	if (r->fork_mode)
		what = r->line ? "fork yet" : "--fork yet";
	if (what == NULL)
		return 0;
	snprintf(err, errlen, "%s cannot be combined with %s", opt, what);
	return -1;
}

/* UDP goes only to UDP, and every flow lives in the one event loop. */
static int
check_udp(const struct relay_conf *r, char *err, size_t errlen)
{
	char	l[ADDR_STR_MAX], t[ADDR_STR_MAX];
	size_t	i;

	for (i = 0; i < r->nlisten; i++) {
		if (r->listen[i].udp == r->to.udp)
			continue;
		addr_spec_format(&r->listen[i], l, sizeof(l));
		addr_spec_format(&r->to, t, sizeof(t));
		snprintf(err, errlen, "%s %s and %s %s: UDP goes only to UDP "
		    "(give udp: on both sides)", r->line ? "listen" :
		    "--listen", l, r->line ? "to" : "--to", t);
		return -1;
	}
	if (r->to.udp && (r->send_proxy || r->accept_proxy || r->nacl > 0 ||
	    r->max_conns_per_ip > 0 || r->rate > 0 || r->connect_retry > 0)) {
		snprintf(err, errlen, "proxy-protocol, accept-proxy, allow, deny, "
		    "max-conns-per-ip, rate and connect-retry apply to TCP "
		    "relays, not to UDP ones");
		return -1;
	}
	if (r->to.udp && r->fork_mode) {
		snprintf(err, errlen, "%s does not apply to UDP relays: every "
		    "flow is served in the one event loop", r->line ? "fork" :
		    "--fork");
		return -1;
	}
	return 0;
}

int
config_check_relay(const struct relay_conf *r, char *err, size_t errlen)
{
	/* A [relay NAME] section may take all its sockets from systemd
	 * (FileDescriptorName=NAME): whether they came is known at start. */
	if (r->nlisten == 0 && (r->line == 0 || r->to.udp)) {
		snprintf(err, errlen, "missing %s: where should relayd "
		    "accept connections?", r->line ? "listen" : "--listen");
		return -1;
	}
	if (!r->has_to && r->nroutes == 0) {
		snprintf(err, errlen, "missing %s HOST:PORT: where should "
		    "connections go?", r->line ? "to" : "--to");
		return -1;
	}
	if (check_routes(r, err, errlen) == -1)
		return -1;
	/* Each --fork child would count only its own connection. */
	if (r->fork_mode && (r->max_conns_per_ip > 0 || r->rate > 0)) {
		snprintf(err, errlen, "%s cannot be combined with "
		    "max-conns-per-ip or rate", r->line ? "fork" : "--fork");
		return -1;
	}
	if (check_udp(r, err, errlen) == -1)
		return -1;
	return check_relay_tls(r, err, errlen);
}

int
config_check_tunnel(const struct tunnel_conf *t, char *err, size_t errlen)
{
	if (!t->enabled) {
		snprintf(err, errlen, "forwards need a server: give %s "
		    "[USER@]HOST[:PORT]", t->line ? "ssh =" : "--ssh");
		return -1;
	}
	if (t->nfwd == 0) {
		snprintf(err, errlen, "%s needs at least one forward "
		    "(remote, local or dynamic)", t->line ? "ssh" : "--ssh");
		return -1;
	}
	return 0;
}

/* Two ACME clients on one directory would write over each other. */
static int
check_acme_dirs(const struct config *cfg, char *err, size_t errlen)
{
	const struct relay_conf	*a, *b;
	size_t			 i, j;

	for (i = 0; i < cfg->nrelays; i++)
		for (j = i + 1; j < cfg->nrelays; j++) {
			a = cfg->relays[i];
			b = cfg->relays[j];
			if (a->acme_dir == NULL || b->acme_dir == NULL ||
			    strcmp(a->acme_dir, b->acme_dir) != 0)
				continue;
			snprintf(err, errlen, "relays %s and %s both use "
			    "acme-dir %s: give each its own", a->name[0] ?
			    a->name : "-", b->name[0] ? b->name : "-",
			    a->acme_dir);
			return -1;
		}
	return 0;
}

int
config_validate(const struct config *cfg, char *err, size_t errlen)
{
	size_t	i;
	int	forking = 0;

	if (cfg->nrelays == 0 && cfg->ntunnels == 0) {
		snprintf(err, errlen, "nothing to do: give --listen and --to, "
		    "--ssh with forwards, or -c FILE (see --help)");
		return -1;
	}
	if (check_acme_dirs(cfg, err, errlen) == -1)
		return -1;
	for (i = 0; i < cfg->nrelays; i++) {
		if (config_check_relay(cfg->relays[i], err, errlen) == -1)
			return -1;
		forking |= cfg->relays[i]->fork_mode;
	}
	for (i = 0; i < cfg->ntunnels; i++)
		if (config_check_tunnel(cfg->tunnels[i], err, errlen) == -1)
			return -1;
	/* A forked child would inherit the SSH session and break it. */
	if (forking && cfg->ntunnels > 0) {
		snprintf(err, errlen, "--fork cannot be combined with --ssh: "
		    "run the tunnel in a relayd of its own");
		return -1;
	}
	/* Children of a multi-threaded process would inherit locked loops. */
	if (forking && cfg->workers > 1) {
		snprintf(err, errlen, "--fork cannot be combined with --workers "
		    "%u: --fork already spreads over one process per "
		    "connection", cfg->workers);
		return -1;
	}
	return 0;
}
