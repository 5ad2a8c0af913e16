/* What the user asked for: parsed options, before anything is opened. */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>

#include "relay/acl.h"
#include "relay/addr.h"
#include "relay/log.h"
#include "relay/spec.h"

#define CONF_USER_MAX	64
#define CONF_NAME_MAX	64
/* --alpn's list, as given */
#define CONF_ALPN_MAX	256
/* What a tls: listener offers without --alpn */
#define CONF_ALPN_DEFAULT	"http/1.1"
/* --max-held's default, and the bound of each -R forward's held channels */
#define CONF_MAX_HELD	256
/* --connect-retry's default for -R targets, in seconds */
#define CONF_TUNNEL_CONNECT_RETRY 5

/* A route: connections that name NAME (TLS SNI, HTTP Host) go to TO. */
struct route_conf {
	char			 name[256];	/* lowercase; "*.rest" wildcard */
	struct addr_spec	 to;
};

struct relay_conf {
	char			 name[CONF_NAME_MAX];	/* "" = command line */
	int			 line;		/* its section's line, or 0 */
	struct addr_spec	*listen;	/* nlisten entries, owned */
	size_t			 nlisten;
	struct addr_spec	 to;
	int			 has_to;
	int			 connect_timeout;	/* seconds */
	int			 idle_timeout;		/* seconds, 0 = none */
	unsigned		 max_conns;		/* 0 = unlimited */
	int			 fork_mode;
	int			 send_proxy;	/* PROXY version to send, 0 = no */
	int			 accept_proxy;	/* read one from each client */
	int			 handshake_timeout;	/* seconds */
	struct acl_rule		*acl;		/* nacl rules, owned */
	size_t			 nacl;
	unsigned		 max_conns_per_ip;	/* 0 = unlimited */
	unsigned		 rate;		/* new conns/s per address, 0 = any */
	char			**certs;	/* ncerts paths, owned: the */
	size_t			 ncerts;	/* i-th --cert goes with */
	char			**keys;		/* the i-th --key */
	size_t			 nkeys;
	char			*ca;		/* owned; NULL = system store */
	char			*verify_name;	/* owned; NULL = to's host */
	char			 alpn[CONF_ALPN_MAX];	/* "h2,http/1.1"; "" =
							 * the default */
	/* ACME certificates for its tls: listeners: acme_dir set */
	char			*acme_dir;	/* owned, or NULL: no ACME */
	char			*acme_email;	/* owned, or NULL */
	char			*acme_server;	/* owned, NULL = Let's Encrypt */
	char			*acme_ca;	/* owned, NULL = system store */
	char			**acme_names;	/* nacme_names, owned; none: */
	size_t			 nacme_names;	/* the routes' names */
	int			 udp_timeout;	/* seconds a silent flow lives */
	int			 connect_retry;	/* seconds a client is held, 0 = no */
	unsigned		 max_held;	/* held at once, every loop */
	struct route_conf	*routes;	/* nroutes, owned; to is then */
	size_t			 nroutes;	/* the default, if has_to */
};

struct tunnel_conf {
	char			 name[CONF_NAME_MAX];	/* "" = command line */
	int			 line;
	int			 enabled;	/* ssh given */
	struct ssh_dest		 dest;
	struct forward_spec	*fwd;		/* nfwd entries, owned */
	size_t			 nfwd;
	char			*identity;	/* paths, owned; NULL = default */
	char			*passphrase_file;
	char			*known_hosts;
	int			 accept_new_host_key;
	int			 keepalive;		/* seconds */
	int			 keepalive_count;
	int			 exit_on_forward_failure;
	int			 compress;
	int			 strip_proxy;	/* forwarded clients send PROXY */
	int			 connect_retry;	/* seconds an -R channel is held */
	int			 probe;		/* seconds between -R probes, 0 */
};

struct config {
	char			*file;		/* -c FILE, owned, or NULL */
	int			 check;		/* --check: validate, exit */
	int			 status;	/* --status: ask, print, exit */
	char			*control;	/* status socket path, owned */
	char			*metrics;	/* --metrics as given, owned */
	int			 json;		/* --status --json */
	char			 user[CONF_USER_MAX];	/* "" = default */
	enum log_level		 log_level;
	int			 use_syslog;
	int			 daemonize;
	char			*pidfile;
	int			 no_sandbox;	/* no seccomp filter */
	int			 drain_timeout;	/* seconds */
	unsigned		 workers;	/* event loops, 0 = per CPU */
	int			 no_splice;	/* copy even TCP <-> TCP */
	struct relay_conf	**relays;	/* owned */
	size_t			 nrelays;
	struct tunnel_conf	**tunnels;	/* owned */
	size_t			 ntunnels;
	struct relay_conf	*cli_relay;	/* the command line's, if any */
	struct tunnel_conf	*cli_tunnel;
};

/* Fills defaults. */
void	config_init(struct config *cfg);
/* Frees what config_init and parsing allocated (not cfg itself). */
void	config_free(struct config *cfg);
/* Adds an empty relay or tunnel with its defaults; NULL when out of
 * memory. The config owns it. */
struct relay_conf *config_add_relay(struct config *, const char *name,
	    int line);
struct tunnel_conf *config_add_tunnel(struct config *, const char *name,
	    int line);
/* Deep copies (NULL when out of memory) and their destructors; a running
 * relay or tunnel owns a copy, so configurations can come and go. */
struct relay_conf *relay_conf_dup(const struct relay_conf *);
struct tunnel_conf *tunnel_conf_dup(const struct tunnel_conf *);
void	relay_conf_free(struct relay_conf *);
void	tunnel_conf_free(struct tunnel_conf *);
/* Whether two relays or tunnels would behave the same (names included). */
int	relay_conf_equal(const struct relay_conf *, const struct relay_conf *);
int	tunnel_conf_equal(const struct tunnel_conf *,
	    const struct tunnel_conf *);
/* Checks one relay or tunnel: 0, or -1 with one line in err. */
int	config_check_relay(const struct relay_conf *, char *err, size_t errlen);
int	config_check_tunnel(const struct tunnel_conf *, char *err,
	    size_t errlen);
/* Checks the whole: returns 0, or -1 with one line in err. */
int	config_validate(const struct config *cfg, char *err, size_t errlen);

#endif
