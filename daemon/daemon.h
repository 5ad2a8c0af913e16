/*
 * The daemon: what one relayd process runs (its relays and tunnels, in one
 * list), how it starts, reloads, reports and stops. Only daemon/ wires
 * relay/, tunnel/ and caps/ together; the prototypes below are grouped by
 * the file that defines them.
 */
#ifndef DAEMON_DAEMON_H
#define DAEMON_DAEMON_H

#include <sys/types.h>
#include <stdatomic.h>

#include "caps/caps.h"
#include "daemon/unit.h"
#include "relay/config.h"

#define NSIGNALS	6

struct event;
struct event_base;
struct listener;
struct metrics;

struct daemon {
	struct config		 cfg;
	int			 argc;
	char			**argv;		/* kept: reloads apply it again */
	struct event_base	*base;
	struct unit_list	 units;		/* running, relays first */
	/* Removed by a reload: no new connections, gone once idle. */
	struct unit_list	 retired;
	struct event		*sigs[NSIGNALS];
	struct event		*drain_timer;
	struct event		*watchdog;
	struct event		*closed_ev;	/* a worker loop closed one */
	/* Whether a worker loop tells of each close: only while draining or
	 * while retired units wait for their last connection. Set before
	 * the counts it depends on are read (see drained_check). */
	_Atomic int		 watch_closes;
	struct listener		*control;
	struct metrics		*metrics;	/* --metrics, or NULL */
	int			 draining;
	int			 ready_sent;	/* READY=1 told to systemd */
	char			 status[256];	/* the STATUS= told last */
	/* The tunnels run in processes of their own (tunproc.h): the relay
	 * process has tunproc, each tunnels' worker has tunchan. */
	struct tunproc		*tunproc;
	struct tunchan		*tunchan;
	int			 tun_code;	/* the keeper's exit code */
	pid_t			 relay_pid;
	pid_t			 keeper_pid;
	unsigned		 starts;	/* a worker's number, 1 first */
	int			 from_root;
	struct caps_user	 user;
};

/* The process's one daemon, for the hooks that take no argument. */
extern struct daemon	*the_daemon;

/* config_read.c */
/* The file first, then the command line on top; all errors reported.
 * Returns 0, or -1 with the exit code in *code (help and version: 0). */
int	read_config(struct config *cfg, int argc, char **argv, int *code);
/* The same, exiting with that code on failure. */
void	load_config(struct config *cfg, int argc, char **argv);
/* --check: what can be known without binding or connecting; exits. */
void	check_only(const struct config *cfg) __attribute__((noreturn));

/* startup.c */
/* Fills fds 0-2 with /dev/null where they are closed. */
void	keep_std_fds_open(void);
/* Finds the user to become (exits if there is none): 1 when running as
 * root, which will change to *u, else 0. */
int	lookup_user(const struct config *cfg, struct caps_user *u);
/* Detaches from the terminal; the parent exits 0 once the child runs. */
void	daemonize(void);
/* Writes our pid to path, or exits. */
void	write_pidfile(const char *path);
/* Becomes d->user; keep_bind: CAP_NET_BIND_SERVICE stays. Exits on
 * failure. */
void	drop_privileges(const struct daemon *d, int keep_bind);
/* Enters the seccomp sandbox unless --no-sandbox; exits on failure. */
void	enter_sandbox(const struct config *cfg);
/* The privileged part: every listener bound, every key read; exits on
 * failure. The units are not started. */
void	open_units(struct daemon *d);

/* lifecycle.c */
/* Watches for connections closed in worker loops and hooks
 * drained_check to every close. */
void	watch_closed(struct daemon *d);
/* After each closed connection: a drain may be over, a retired unit idle. */
void	drained_check(void);
/* Frees the retired units whose last connection has closed. */
void	reap_retired(struct daemon *d);
/* Tells systemd READY=1 once every relay listens and every tunnel's
 * forwards are up (after a reload too). */
void	check_ready(void);
/* Pings systemd's watchdog, if it wants that. */
void	start_watchdog(struct daemon *d);
/* SIGTERM: stop accepting, let live connections finish, then leave the
 * loop. */
void	start_drain(struct daemon *d);
/* Frees everything; returns the exit code. */
int	close_everything(struct daemon *d);

/* reload.c */
/* SIGHUP: the new config replaces the old; unchanged units keep their
 * sockets and connections, a bad config changes nothing. */
void	reload(struct daemon *d);

/* control.c */
/* One line per unit, for SIGUSR1 and the control socket. Returns a
 * malloc'd text, or NULL. */
char	*status_text(const struct daemon *d);
/* Writes the status text to the log, a line at a time. */
void	log_status(const struct daemon *d);
/* Listens on --control, if given; exits on failure. */
void	open_control(struct daemon *d);
/* --status: asks the running relayd for its status, prints it, exits. */
void	print_status(const struct config *cfg) __attribute__((noreturn));

/* metrics.c */
/* Listens on --metrics, if given (and notes the start time); exits on
 * failure. */
void	open_metrics(struct daemon *d);
/* Closes the listener and every scrape; in_child: a forked copy, whose
 * unix socket file is the parent's. */
void	metrics_close(struct daemon *d, int in_child);

/* expose.c */
/* The relay process's families (relays, UDP, process), with health the
 * reason it is not healthy or NULL. Returns a malloc'd text, or NULL. */
char	*metrics_relays_text(const struct daemon *d, const char *health);
/* Why the relays are not healthy (malloc'd), or NULL if they are. */
char	*relays_health(const struct daemon *d);
/* In the tunnels' process: "ok" or why not, one line. */
void	tunnels_health(const struct daemon *d, char *buf, size_t len);
/* In the tunnels' process: its health line, then the tunnel and forward
 * families. Returns a malloc'd text, or NULL. */
char	*metrics_tunnels_text(const struct daemon *d);

/* status_json.c */
/* The --status --json document, around tunnels (the tunnels' JSON array,
 * or NULL for none); health as for metrics_relays_text. Malloc'd. */
char	*status_json(const struct daemon *d, const char *tunnels,
	    const char *health);
/* In the tunnels' process: its health line, then its JSON array. */
char	*json_tunnels_text(const struct daemon *d);

/* procstat.c */
struct procstat {
	double		cpu_seconds;
	long long	rss_bytes;	/* -1: unknown */
	long		open_fds;	/* -1: unknown */
	long		max_fds;	/* -1: unlimited */
	double		start_time;	/* seconds since the epoch */
};
/* Notes the start time (call early). */
void	procstat_init(void);
void	procstat_read(struct procstat *);

/* signals.c */
/* Watches the signals the daemon acts on and unblocks them. */
void	watch_signals(struct daemon *d);

/* split.c */
/* Moves the tunnels to processes of their own unless there can be none.
 * Returns in the relay process, which keeps no tunnel, and in each
 * tunnels' worker, which keeps no relay. */
void	split_tunnels(struct daemon *d);
/* In a --fork child: drops what belongs to the parent. */
void	as_fork_child(void);

#endif
