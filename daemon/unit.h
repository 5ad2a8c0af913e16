/*
 * Units: the relays and tunnels a process runs, in one list, each driven
 * through the small table of operations of its kind.
 */
#ifndef DAEMON_UNIT_H
#define DAEMON_UNIT_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdio.h>

#include "relay/config.h"

struct event_base;

/* In the order the units are listed, started and described. */
enum unit_kind {
	UNIT_RELAY,
	UNIT_TUNNEL,
	UNIT_NKINDS
};

struct unit {
	enum unit_kind		 kind;
	void			*obj;	/* struct relay or struct tunnel */
	TAILQ_ENTRY(unit)	 entry;
};
TAILQ_HEAD(unit_list, unit);

/* How many relays or tunnels of kind cfg has. */
size_t	unit_nconfs(const struct config *cfg, enum unit_kind kind);
/* Frees cfg's relays or tunnels of kind: another process runs them. */
void	unit_forget_confs(struct config *cfg, enum unit_kind kind);

/*
 * The privileged step for cfg's i-th relay or tunnel of kind: binds,
 * reads keys. Returns a unit that is not started yet, or NULL with a
 * one-line message and a sysexits.h code.
 */
struct unit *unit_new(struct event_base *, const struct config *cfg,
	    enum unit_kind kind, size_t i, char *err, size_t errlen,
	    int *exitcode);
/* Starts accepting or connecting (after privileges are dropped). */
void	unit_start(struct unit *);
/* Whether u runs exactly what cfg's i-th relay or tunnel of its kind
 * says (names included). */
int	unit_runs(const struct unit *u, const struct config *cfg, size_t i);
/* The name of cfg's i-th relay or tunnel of kind ("" on the command
 * line), and the kind's ("relay", "tunnel"), for the log. */
const char *unit_conf_name(const struct config *cfg, enum unit_kind kind,
	    size_t i);
const char *unit_kind_name(enum unit_kind);
/* Stops taking new connections; live ones go on. */
void	unit_stop_accepting(struct unit *);
/* Left by a reload: stops accepting and hands its listening sockets on
 * to whatever listens on the same address next (reload.c closes those
 * that nothing takes); its connections finish in their own time. */
void	unit_retire(struct unit *);
/* Reads its TLS certificates and CAs again, if it has any; a failure is
 * logged and the old ones stay. */
void	unit_reload_tls(struct unit *);
/* Live connections (or --fork children). */
unsigned unit_active(const struct unit *);
/* Whether it is ready for systemd (a tunnel: every forward up). */
int	unit_ready(const struct unit *);
/* A tunnel's exit code after a fatal failure, else 0. */
int	unit_exit_code(const struct unit *);
/* Writes its status lines. */
void	unit_write_status(const struct unit *, FILE *);
/* Closes and frees it. */
void	unit_free(struct unit *);
/* Frees a unit that another process runs (a relay leaves its unix socket
 * files to that process). */
void	unit_give_away(struct unit *);

/* Appends u after the last unit of its kind or an earlier one, so that
 * relays stay listed before tunnels. */
void	units_insert(struct unit_list *, struct unit *u);
/* How many units of kind are in the list. */
size_t	units_count(const struct unit_list *, enum unit_kind kind);
/* Live connections of every unit in the list. */
unsigned units_active(const struct unit_list *);
/* The first non-zero unit_exit_code in the list, or 0. */
int	units_exit_code(const struct unit_list *);
/* Frees every unit of the list. */
void	units_free(struct unit_list *);
/* Gives away every unit of kind in the list (unit_give_away). */
void	units_give_away(struct unit_list *, enum unit_kind kind);

#endif
