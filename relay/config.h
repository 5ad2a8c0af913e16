/* What the user asked for: parsed options, before anything is opened. */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>

#include "relay/addr.h"
#include "relay/log.h"
#include "relay/spec.h"

#define CONF_USER_MAX	64

struct relay_conf {
	struct addr_spec	*listen;	/* nlisten entries, owned */
	size_t			 nlisten;
	struct addr_spec	 to;
	int			 has_to;
	int			 connect_timeout;	/* seconds */
	int			 idle_timeout;		/* seconds, 0 = none */
	unsigned		 max_conns;		/* 0 = unlimited */
	int			 fork_mode;
};

struct tunnel_conf {
	int			 enabled;	/* --ssh given */
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
};

struct config {
	char			 user[CONF_USER_MAX];	/* "" = default */
	enum log_level		 log_level;
	struct relay_conf	 relay;		/* the command line's relay */
	struct tunnel_conf	 tunnel;	/* the command line's tunnel */
};

/* Fills defaults. */
void	config_init(struct config *cfg);
/* Frees what config_init and parsing allocated (not cfg itself). */
void	config_free(struct config *cfg);
/* Checks the whole: returns 0, or -1 with one line in err. */
int	config_validate(const struct config *cfg, char *err, size_t errlen);

#endif
