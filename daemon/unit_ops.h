/* The operations behind a unit, one table per kind (unit_relay.c,
 * unit_tunnel.c); only unit.c calls them. */
#ifndef DAEMON_UNIT_OPS_H
#define DAEMON_UNIT_OPS_H

#include <stddef.h>
#include <stdio.h>

#include "relay/config.h"

struct event_base;

/* What a kind of unit does: each operation does what unit.h says of the
 * unit_ function of its name, on the kind's object or configuration.
 * ready, exit_code and reload_tls may be NULL (always ready, never fails,
 * nothing to reload). */
struct unit_ops {
	const char	*name;
	size_t		 (*nconfs)(const struct config *);
	const void	*(*conf_at)(const struct config *, size_t i);
	void		 (*forget_confs)(struct config *);
	void		*(*new)(struct event_base *, const void *conf,
			    char *err, size_t errlen, int *exitcode);
	const void	*(*conf)(const void *obj);
	int		 (*conf_equal)(const void *, const void *);
	const char	*(*conf_name)(const void *conf);
	void		 (*start)(void *obj);
	void		 (*stop_accepting)(void *obj);
	void		 (*retire)(void *obj);
	void		 (*reload_tls)(void *obj);
	unsigned	 (*active)(const void *obj);
	int		 (*ready)(const void *obj);
	int		 (*exit_code)(const void *obj);
	void		 (*write_status)(const void *obj, FILE *);
	void		 (*free)(void *obj);
	void		 (*give_away)(void *obj);
};

extern const struct unit_ops	unit_relay_ops;
extern const struct unit_ops	unit_tunnel_ops;

#endif
