/*
 * relayd: binds its listeners, gives up root but CAP_NET_BIND_SERVICE, and
 * relays connections in one or more event loops (--workers) and keeps SSH
 * tunnels up. The main thread's loop owns tunnels, signals, the control
 * socket, reloads and systemd; relays accept in every loop.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "caps/caps.h"
#include "caps/sandbox.h"
#include "relay/bufpool.h"
#include "relay/cfgfile.h"
#include "relay/config.h"
#include "relay/listener.h"
#include "relay/log.h"
#include "relay/options.h"
#include "relay/pipepool.h"
#include "relay/pump.h"
#include "relay/relay.h"
#include "relay/resolve.h"
#include "relay/service.h"
#include "relay/systemd.h"
#include "relay/tunproc.h"
#include "relay/workers.h"
#include "tunnel/tunnel.h"

#define NSIGNALS	6
#define MAX_UNITS	1024	/* relays and tunnels, running or retired */

struct daemon {
	struct config		 cfg;
	int			 argc;
	char			**argv;		/* kept: reloads apply it again */
	struct event_base	*base;
	struct relay		*relays[MAX_UNITS];
	size_t			 nrelays;
	struct tunnel		*tunnels[MAX_UNITS];
	size_t			 ntunnels;
	/* Removed by a reload: no new connections, gone once idle. */
	struct relay		*old_relays[MAX_UNITS];
	size_t			 nold_relays;
	struct tunnel		*old_tunnels[MAX_UNITS];
	size_t			 nold_tunnels;
	struct event		*sigs[NSIGNALS];
	struct event		*drain_timer;
	struct event		*watchdog;
	struct event		*closed_ev;	/* a worker loop closed one */
	struct listener		*control;
	int			 draining;
	int			 ready_sent;	/* READY=1 told to systemd */
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

/* A closed fd 0-2 would be handed to the first socket, and logs would then
 * be written into a connection. */
static void
keep_std_fds_open(void)
{
	int	fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

/*
 * The file first, then the command line on top; all errors reported.
 * Returns 0, or -1 with the exit code in *code (help and version: 0).
 */
static int
read_config(struct config *cfg, int argc, char **argv, int *code)
{
	const char	*file = options_config_file(argc, argv);
	char		 err[512];
	int		 errors = 0;

	config_init(cfg);
	if (file != NULL)
		errors = cfgfile_load(cfg, file);
	switch (options_parse(cfg, argc, argv, err, sizeof(err))) {
	case OPTIONS_HELP:
		options_usage(stdout);
		*code = 0;
		return -1;
	case OPTIONS_VERSION:
		tunnel_libssh2_version(err, sizeof(err));
		printf("relayd %s\nlibssh2 %s\n", RELAYD_VERSION, err);
		*code = 0;
		return -1;
	case OPTIONS_ERROR:
		log_warnx("%s", err);
		*code = EX_USAGE;
		return -1;
	case OPTIONS_OK:
		break;
	}
	*code = file != NULL ? EX_CONFIG : EX_USAGE;
	if (errors > 0) {
		log_warnx("%s: %d error%s", file, errors, errors == 1 ? "" : "s");
		return -1;
	}
	if (file != NULL && (cfg->cli_relay != NULL ||
	    cfg->cli_tunnel != NULL)) {
		log_warnx("give relays and tunnels either in %s or on the "
		    "command line, not both", file);
		*code = EX_USAGE;
		return -1;
	}
	if (!cfg->status && config_validate(cfg, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

static void
load_config(struct config *cfg, int argc, char **argv)
{
	int	code;

	if (read_config(cfg, argc, argv, &code) == -1) {
		config_free(cfg);
		exit(code);
	}
}

/* Root picks the user to become now, so a typo fails before binding. */
static int
lookup_user(const struct config *cfg, struct caps_user *u)
{
	char	err[256];

	if (geteuid() != 0) {
		if (cfg->user[0] == '\0')
			return 0;
		if (caps_lookup_user(cfg->user, u, err, sizeof(err)) == -1)
			fatalx(EX_NOUSER, "%s", err);
		if (u->uid != geteuid())
			fatalx(EX_NOPERM, "--user %s: only root can change "
			    "user", cfg->user);
		return 0;
	}
	if (caps_lookup_user(cfg->user[0] ? cfg->user : "nobody", u, err,
	    sizeof(err)) == -1)
		fatalx(EX_NOUSER, "%s", err);
	return 1;
}

/* "tls:*:443" binds what "*:443" binds. */
static const char *
without_tls(const char *addr)
{
	return strncmp(addr, "tls:", 4) == 0 ? addr + 4 : addr;
}

/* --check: what can be known without binding or connecting. */
static void
check_only(const struct config *cfg)
{
	const struct tunnel_conf	*t;
	struct caps_user		 u;
	size_t				 i, j, k, l;
	char				 a[ADDR_STR_MAX], b[ADDR_STR_MAX];
	char				 err[512];

	if (cfg->user[0] != '\0' && caps_lookup_user(cfg->user, &u, err,
	    sizeof(err)) == -1)
		fatalx(EX_NOUSER, "%s", err);
	for (i = 0; i < cfg->ntunnels; i++) {
		t = cfg->tunnels[i];
		if (t->identity && access(t->identity, R_OK) == -1)
			fatalx(EX_NOINPUT, "identity %s: %s", t->identity,
			    strerror(errno));
		if (t->passphrase_file && access(t->passphrase_file, R_OK) ==
		    -1)
			fatalx(EX_NOINPUT, "passphrase file %s: %s",
			    t->passphrase_file, strerror(errno));
	}
	for (i = 0; i < cfg->nrelays; i++)
		if (relay_check_tls(cfg->relays[i], err, sizeof(err)) == -1)
			fatalx(EX_NOINPUT, "%s", err);
	for (i = 0; i < cfg->nrelays; i++)
		for (j = 0; j < cfg->relays[i]->nlisten; j++)
			for (k = i; k < cfg->nrelays; k++)
				for (l = k == i ? j + 1 : 0;
				    l < cfg->relays[k]->nlisten; l++) {
					addr_spec_format(&cfg->relays[i]->
					    listen[j], a, sizeof(a));
					addr_spec_format(&cfg->relays[k]->
					    listen[l], b, sizeof(b));
					if (strcmp(without_tls(a),
					    without_tls(b)) == 0)
						fatalx(EX_CONFIG, "listener %s "
						    "is given twice",
						    without_tls(a));
				}
	printf("configuration OK\n");
	exit(0);
}

/* keep_bind: the relays keep CAP_NET_BIND_SERVICE, the tunnels nothing. */
static void
drop_privileges(int from_root, const struct caps_user *u, int keep_bind)
{
	char	err[256], desc[256];

	if (from_root ? caps_drop_root(u, keep_bind, err, sizeof(err)) :
	    caps_restrict(keep_bind, err, sizeof(err)))
		fatalx(EX_OSERR, "%s", err);
	caps_describe(desc, sizeof(desc));
	if (keep_bind)
		log_info("running as %s", desc);
	else
		log_info("tunnel keeper %ld running as %s", (long)getpid(),
		    desc);
}

/* From here on only the system calls on caps/sandbox.c's list work. */
static void
enter_sandbox(const struct config *cfg)
{
	char	err[256];
	int	n;

	if (cfg->no_sandbox) {
		log_info("sandbox off (--no-sandbox)");
		return;
	}
	if ((n = sandbox_enter(err, sizeof(err))) == -1)
		fatalx(EX_OSERR, "%s", err);
	log_info("sandbox on: %d system calls allowed", n);
}

/* Detaches from the terminal; the parent exits 0 once the child runs. */
static void
daemonize(void)
{
	pid_t	pid;
	int	fd;

	if ((pid = fork()) == -1)
		fatal(EX_OSERR, "fork");
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		fatal(EX_OSERR, "setsid");
	if (chdir("/") == -1)
		fatal(EX_OSERR, "chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
}

static void
write_pidfile(const char *path)
{
	char	buf[32];
	int	fd, n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1 || write(fd, buf, (size_t)n) != n)
		fatal(EX_CANTCREAT, "pid file %s", path);
	close(fd);
}

static unsigned
active_conns(const struct daemon *d)
{
	unsigned	n = 0;
	size_t		i;

	for (i = 0; i < d->nrelays; i++)
		n += relay_active(d->relays[i]);
	for (i = 0; i < d->ntunnels; i++)
		n += tunnel_active(d->tunnels[i]);
	for (i = 0; i < d->nold_relays; i++)
		n += relay_active(d->old_relays[i]);
	for (i = 0; i < d->nold_tunnels; i++)
		n += tunnel_active(d->old_tunnels[i]);
	return n;
}

static struct daemon	*the_daemon;	/* for the connection-closed hook */

/* Frees retired relays and tunnels whose last connection has closed. */
static void
reap_retired(struct daemon *d)
{
	size_t	i;

	for (i = 0; i < d->nold_relays; i++) {
		if (relay_active(d->old_relays[i]) > 0)
			continue;
		relay_free(d->old_relays[i]);
		d->old_relays[i--] = d->old_relays[--d->nold_relays];
	}
	for (i = 0; i < d->nold_tunnels; i++) {
		if (tunnel_active(d->old_tunnels[i]) > 0)
			continue;
		tunnel_free(d->old_tunnels[i]);
		d->old_tunnels[i--] = d->old_tunnels[--d->nold_tunnels];
	}
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	reap_retired(arg);
}

static void	drained_check(void);

static void
on_closed_in_worker(evutil_socket_t fd, short what, void *arg)
{
	drained_check();
}

/* After each closed connection: a drain may be over, a retired relay idle.
 * The relay that called us is still on the stack: free from the loop.
 * A worker loop's connection tells the main loop, which does the rest. */
static void
drained_check(void)
{
	struct daemon	*d = the_daemon;
	struct timeval	 now = { 0, 0 };

	if (!workers_on_main()) {
		event_active(d->closed_ev, EV_TIMEOUT, 0);
		return;
	}
	if (d->nold_relays > 0 || d->nold_tunnels > 0)
		event_base_once(d->base, -1, EV_TIMEOUT, on_reap, d, &now);
	if (d->draining && active_conns(d) == 0)
		event_base_loopbreak(d->base);
}

/* READY=1 once every relay listens and every tunnel's forwards are up. */
static void
check_ready(void)
{
	struct daemon	*d = the_daemon;
	char		 status[128];
	size_t		 i;

	if (d->ready_sent)
		return;
	for (i = 0; i < d->ntunnels; i++)
		if (!tunnel_ready(d->tunnels[i]))
			return;
	if (d->tunproc != NULL && !tunproc_ready(d->tunproc))
		return;
	if (d->tunchan != NULL) {	/* the relay process tells systemd */
		tunchan_ready(d->tunchan);
		d->ready_sent = 1;
		return;
	}
	snprintf(status, sizeof(status), "serving: %zu relays, %zu tunnels",
	    d->nrelays, d->ntunnels);
	sysd_ready(status);
	d->ready_sent = 1;
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sysd_watchdog_ping();
}

static void
start_watchdog(struct daemon *d)
{
	uint64_t	usec = sysd_watchdog_usec();
	struct timeval	tv;

	if (usec == 0)
		return;
	/* Twice per interval, as systemd advises. */
	tv.tv_sec = (time_t)(usec / 2 / 1000000);
	tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
	if ((d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog,
	    d)) == NULL || event_add(d->watchdog, &tv) == -1)
		log_warnx("cannot start the systemd watchdog");
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon	*d = arg;

	log_info("drain timeout: closing %u connections", active_conns(d));
	event_base_loopbreak(d->base);
}

/* SIGTERM: stop accepting, let live connections finish, then exit. */
static void
start_drain(struct daemon *d)
{
	struct timeval	tv = { d->cfg.drain_timeout, 0 };
	size_t		i;
	unsigned	n = active_conns(d);

	sysd_stopping();
	if (d->draining || n == 0 || d->cfg.drain_timeout == 0) {
		event_base_loopbreak(d->base);
		return;
	}
	d->draining = 1;
	for (i = 0; i < d->nrelays; i++)
		relay_stop_accepting(d->relays[i]);
	for (i = 0; i < d->ntunnels; i++)
		tunnel_stop_accepting(d->tunnels[i]);
	log_info("draining %u connections for up to %d s", n,
	    d->cfg.drain_timeout);
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	if (d->drain_timer == NULL || evtimer_add(d->drain_timer, &tv) == -1)
		event_base_loopbreak(d->base);
}

/* The running relay that new would leave unchanged, or -1. */
static int
find_relay(const struct daemon *d, const struct relay_conf *new,
    const int *kept)
{
	size_t	i;

	for (i = 0; i < d->nrelays; i++)
		if (!kept[i] && relay_conf_equal(relay_conf(d->relays[i]), new))
			return (int)i;
	return -1;
}

static int
find_tunnel(const struct daemon *d, const struct tunnel_conf *new,
    const int *kept)
{
	size_t	i;

	for (i = 0; i < d->ntunnels; i++)
		if (!kept[i] && tunnel_conf_equal(tunnel_conf(d->tunnels[i]),
		    new))
			return (int)i;
	return -1;
}

/* Relays and tunnels the new config no longer has stop accepting and
 * give their ports back; their connections finish in their own time. */
static void
retire_unkept(struct daemon *d, const int *kept_r, const int *kept_t)
{
	size_t	i;

	for (i = 0; i < d->nrelays; i++) {
		if (kept_r[i])
			continue;
		relay_close_listeners(d->relays[i]);
		if (d->nold_relays < MAX_UNITS)
			d->old_relays[d->nold_relays++] = d->relays[i];
		else
			relay_free(d->relays[i]);
	}
	for (i = 0; i < d->ntunnels; i++) {
		if (kept_t[i])
			continue;
		tunnel_stop_accepting(d->tunnels[i]);
		tunnel_close_listeners(d->tunnels[i]);
		if (d->nold_tunnels < MAX_UNITS)
			d->old_tunnels[d->nold_tunnels++] = d->tunnels[i];
		else
			tunnel_free(d->tunnels[i]);
	}
}

/* SIGHUP: the new config replaces the old; unchanged relays and tunnels
 * keep their sockets and connections, a bad config changes nothing. */
/* Whether a relay running the same as conf is among the first n. */
static int
find_relay_in(struct relay *const *relays, size_t n,
    const struct relay_conf *conf)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (relay_conf_equal(relay_conf(relays[i]), conf))
			return 1;
	return 0;
}

static int
find_tunnel_in(struct tunnel *const *tunnels, size_t n,
    const struct tunnel_conf *conf)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (tunnel_conf_equal(tunnel_conf(tunnels[i]), conf))
			return 1;
	return 0;
}

/* The relays of a configuration that the tunnels' process reads, and the
 * tunnels of one the relay process reads, are not theirs to run. */
static void
nc_forget_relays(struct config *c)
{
	size_t	i;

	for (i = 0; i < c->nrelays; i++)
		relay_conf_free(c->relays[i]);
	c->nrelays = 0;
}

static void
nc_forget_tunnels(struct config *c)
{
	size_t	i;

	for (i = 0; i < c->ntunnels; i++)
		tunnel_conf_free(c->tunnels[i]);
	c->ntunnels = 0;
}

/* The loops run as they started: a reload cannot add --fork to them, and
 * a new count waits for a restart. */
static int
workers_reloadable(const struct daemon *d, const struct config *nc)
{
	unsigned	n = workers_count();
	/* The tunnels' process decides the same, without saying it twice. */
	int		speak = d->tunchan == NULL;

	if (n > 1 && workers_config_forks(nc)) {
		if (speak)
			log_warnx("--fork needs one event loop, and %u are "
			    "running: restart relayd with --workers 1", n);
		return 0;
	}
	if (speak && workers_wanted(nc) != n)
		log_warnx("workers = %u takes a restart; %u event loops keep "
		    "running", workers_wanted(nc), n);
	return 1;
}

static void
reload(struct daemon *d)
{
	struct relay	*relays[MAX_UNITS];
	struct tunnel	*tunnels[MAX_UNITS];
	struct config	 nc;
	int		 kept_r[MAX_UNITS] = { 0 }, kept_t[MAX_UNITS] = { 0 };
	int		 code, j;
	size_t		 i, nr = 0, nt = 0, nkept = 0;
	char		 err[512];

	/* Certificates are read again even when the relay stays as it is. */
	for (i = 0; i < d->nrelays; i++)
		relay_reload_tls(d->relays[i]);
	if (d->cfg.file == NULL) {
		log_info("SIGHUP: nothing else to reload without a config file");
		return;
	}
	sysd_reloading();
	if (read_config(&nc, d->argc, d->argv, &code) == -1 ||
	    nc.nrelays > MAX_UNITS || nc.ntunnels > MAX_UNITS ||
	    !workers_reloadable(d, &nc)) {
		log_warnx("reload rejected: the running configuration stays");
		config_free(&nc);
		sysd_ready("reload rejected: the running configuration stays");
		return;
	}
	/* Each process runs its own half of the configuration. */
	if (d->tunchan != NULL)
		nc_forget_relays(&nc);
	if (d->tunproc != NULL)
		nc_forget_tunnels(&nc);
	for (i = 0; i < nc.nrelays; i++)
		if ((j = find_relay(d, nc.relays[i], kept_r)) != -1) {
			kept_r[j] = 1;
			relays[nr++] = d->relays[j];
			nkept++;
		}
	for (i = 0; i < nc.ntunnels; i++)
		if ((j = find_tunnel(d, nc.tunnels[i], kept_t)) != -1) {
			kept_t[j] = 1;
			tunnels[nt++] = d->tunnels[j];
			nkept++;
		}
	retire_unkept(d, kept_r, kept_t);
	/* What is new binds now, with the CAP_NET_BIND_SERVICE kept. */
	for (i = 0; i < nc.nrelays; i++) {
		if (find_relay_in(relays, nr, nc.relays[i]))
			continue;
		if ((relays[nr] = relay_new(d->base, nc.relays[i], err,
		    sizeof(err), &code)) == NULL) {
			log_warnx("relay %s not started: %s", nc.relays[i]->name,
			    err);
			continue;
		}
		relay_start(relays[nr++]);
	}
	for (i = 0; i < nc.ntunnels; i++) {
		if (find_tunnel_in(tunnels, nt, nc.tunnels[i]))
			continue;
		if (tunnel_global_init() == -1 || (tunnels[nt] = tunnel_new(
		    d->base, nc.tunnels[i], err, sizeof(err), &code)) == NULL) {
			log_warnx("tunnel %s not started: %s",
			    nc.tunnels[i]->name, err);
			continue;
		}
		tunnel_start(tunnels[nt++]);
	}
	memcpy(d->relays, relays, nr * sizeof(*relays));
	d->nrelays = nr;
	memcpy(d->tunnels, tunnels, nt * sizeof(*tunnels));
	d->ntunnels = nt;
	log_init(nc.log_level, nc.use_syslog || nc.daemonize);
	if (nc.no_sandbox != d->cfg.no_sandbox)
		log_warnx("reload: no-sandbox takes effect only at start");
	nc.no_sandbox = d->cfg.no_sandbox;
	pump_set_splice(!nc.no_splice);
	config_free(&d->cfg);
	d->cfg = nc;
	sysd_close_unused_sockets();
	log_info("reloaded: %zu relays, %zu tunnels (%zu unchanged)", nr, nt,
	    nkept);
	reap_retired(d);
	d->ready_sent = 0;
	check_ready();
}

/* One line per relay and tunnel, for SIGUSR1 and the control socket.
 * Returns a malloc'd text, or NULL. */
static char *
status_text(const struct daemon *d)
{
	char	*text = NULL;
	size_t	 len = 0, i;
	FILE	*fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	for (i = 0; i < d->nrelays; i++)
		relay_write_status(d->relays[i], fp);
	for (i = 0; i < d->ntunnels; i++)
		tunnel_write_status(d->tunnels[i], fp);
	if (d->nold_relays + d->nold_tunnels > 0)
		fprintf(fp, "%zu relays and %zu tunnels finishing after a "
		    "reload\n", d->nold_relays, d->nold_tunnels);
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void
log_status(const struct daemon *d)
{
	char	*text, *line, *save = NULL;

	if ((text = status_text(d)) == NULL)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_info("status: %s", line);
	free(text);
}

/* A client of the control socket gets the status text, then EOF. */
static void
on_control(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct daemon	*d = arg;
	char		*text = status_text(d);

	if (d->tunproc != NULL) {	/* the tunnels' lines come from there */
		tunproc_status(d->tunproc, fd, text);
		return;
	}

	/* A few lines: the socket buffer takes them whole. */
	if (text != NULL && send(fd, text, strlen(text), MSG_NOSIGNAL |
	    MSG_DONTWAIT) == -1)
		log_debug("control: %s", strerror(errno));
	free(text);
	close(fd);
}

static void
open_control(struct daemon *d)
{
	struct addr_spec	spec = { .kind = ADDR_UNIX };
	char			err[512];
	int			code;

	if (d->cfg.control == NULL)
		return;
	if (strlen(d->cfg.control) > ADDR_PATH_MAX)
		fatalx(EX_USAGE, "--control %s: path too long", d->cfg.control);
	strcpy(spec.path, d->cfg.control);
	if ((d->control = listener_bind(d->base, &spec, on_control, d, err,
	    sizeof(err), &code)) == NULL)
		fatalx(code, "%s", err);
	listener_enable(d->control);
}

/* --status: asks the running relayd for its status and prints it. */
static void
print_status(const struct config *cfg)
{
	struct sockaddr_un	sun;
	char			buf[4096];
	ssize_t			n;
	int			fd;

	if (cfg->control == NULL)
		fatalx(EX_USAGE, "--status needs --control PATH (or control = "
		    "PATH in the config file)");
	if (strlen(cfg->control) > ADDR_PATH_MAX)
		fatalx(EX_USAGE, "--control %s: path too long", cfg->control);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, addr_unix_sockaddr(
	    cfg->control, &sun)) == -1)
		fatal(EX_UNAVAILABLE, "cannot reach relayd at %s",
		    cfg->control);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	exit(n == 0 ? 0 : EX_IOERR);
}

/* A child that is not a --fork child: the tunnels' keeper. */
static void
on_other_child(pid_t pid, int status)
{
	struct daemon	*d = the_daemon;
	int		 code;

	if (d->tunproc == NULL || !tunproc_reaped(d->tunproc, pid, status,
	    &code))
		return;
	if (d->draining && code == 0)
		return;
	/* Not asked to stop (someone else signalled it): no success, so that
	 * a service manager restarts relayd. */
	if (code == 0) {
		log_warnx("the tunnels' process ended: stopping");
		code = EX_SOFTWARE;
	}
	d->tun_code = code;
	event_base_loopbreak(d->base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon	*d = arg;

	if (d->tunproc != NULL && sig != SIGCHLD)
		tunproc_signal(d->tunproc, (int)sig);
	switch (sig) {
	case SIGCHLD:
		relay_reap_children(on_other_child);
		drained_check();	/* a draining --fork relayd may be done */
		return;
	case SIGHUP:
		if (d->cfg.file != NULL)
			log_info("SIGHUP: reloading %s", d->cfg.file);
		reload(d);
		return;
	case SIGUSR1:
		log_status(d);
		return;
	case SIGTERM:
		log_info("SIGTERM: shutting down");
		start_drain(d);
		return;
	default:
		log_info("signal %d: shutting down", (int)sig);
		event_base_loopbreak(d->base);
	}
}

static void
watch_signals(struct daemon *d)
{
	const int	sigs[NSIGNALS] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP,
			    SIGQUIT, SIGUSR1 };
	size_t		i;

	sigset_t	set;

	sigemptyset(&set);
	for (i = 0; i < NSIGNALS; i++) {
		d->sigs[i] = evsignal_new(d->base, sigs[i], on_signal, d);
		if (d->sigs[i] == NULL || evsignal_add(d->sigs[i], NULL) == -1)
			fatalx(EX_OSERR, "cannot watch signal %d", sigs[i]);
		sigaddset(&set, sigs[i]);
	}
	/* Blocked while the tunnels' process was forked: watched now. */
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* The privileged part: every listener bound, every key read. */
static void
open_everything(struct daemon *d)
{
	char	err[512];
	size_t	i;
	int	code = EX_OSERR;

	if (d->cfg.nrelays > MAX_UNITS || d->cfg.ntunnels > MAX_UNITS)
		fatalx(EX_CONFIG, "more than %d relays or tunnels", MAX_UNITS);
	for (i = 0; i < d->cfg.nrelays; i++, d->nrelays++)
		if ((d->relays[i] = relay_new(d->base, d->cfg.relays[i], err,
		    sizeof(err), &code)) == NULL)
			fatalx(code, "%s", err);
	for (i = 0; i < d->cfg.ntunnels; i++, d->ntunnels++)
		if (tunnel_global_init() == -1 || (d->tunnels[i] = tunnel_new(
		    d->base, d->cfg.tunnels[i], err, sizeof(err), &code)) ==
		    NULL)
			fatalx(code, "%s", err);
}

static int
close_everything(struct daemon *d)
{
	size_t	i;
	int	code = 0;

	relay_kill_children();
	listener_free(d->control);
	for (i = 0; i < d->nrelays; i++)
		relay_free(d->relays[i]);
	for (i = 0; i < d->nold_relays; i++)
		relay_free(d->old_relays[i]);
	for (i = 0; i < d->ntunnels; i++) {
		if (code == 0)
			code = tunnel_exit_code(d->tunnels[i]);
		tunnel_free(d->tunnels[i]);
	}
	for (i = 0; i < d->nold_tunnels; i++)
		tunnel_free(d->old_tunnels[i]);
	tunchan_free(d->tunchan);
	if (code == 0)
		code = d->tun_code;
	if (d->tunproc != NULL && (i = (size_t)tunproc_finish(d->tunproc,
	    d->cfg.drain_timeout + 2)) != 0 && code == 0)
		code = (int)i;
	tunnel_global_exit();
	resolve_shutdown();
	for (i = 0; i < NSIGNALS; i++)
		event_free(d->sigs[i]);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	if (d->watchdog != NULL)
		event_free(d->watchdog);
	if (d->closed_ev != NULL)
		event_free(d->closed_ev);
	workers_shutdown();	/* frees d->base too */
	bufpool_drain();
	pipepool_drain();
	if (d->cfg.pidfile != NULL && d->tunchan == NULL)
		(void)unlink(d->cfg.pidfile);
	config_free(&d->cfg);
	return code;
}

static char *
worker_status(void *arg)
{
	return status_text(arg);
}

/* In a --fork child: the control socket and the tunnels' process are the
 * parent's; a status request or a worker's message must not land here. */
static void
as_fork_child(void)
{
	struct daemon	*d = the_daemon;

	listener_free_in_child(d->control);
	d->control = NULL;
	if (d->tunproc != NULL) {
		tunproc_forget(d->tunproc);
		d->tunproc = NULL;
	}
}

/* In the keeper, once: none of the relays' sockets, no capability at all,
 * its own sandbox. Its workers inherit all of it. */
static void
as_keeper(void *arg)
{
	struct daemon	*d = arg;
	char		 err[256];
	size_t		 i;

	/* Every loop: the relays' loops share their epoll with the relay
	 * process until then. No thread runs them here. */
	if (workers_reinit() == -1)
		fatalx(EX_OSERR, "event_reinit failed in the tunnels' process");
	resolve_after_fork();
	for (i = 0; i < d->nrelays; i++)
		relay_free_inherited(d->relays[i]);
	d->nrelays = 0;
	/* The relay process's pipes are its own: close our copies. */
	pipepool_drain();
	listener_free_in_child(d->control);
	d->control = NULL;
	/* Only the relay process speaks to systemd. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	d->keeper_pid = getpid();
	drop_privileges(d->from_root, &d->user, 0);
	if (caps_die_with_parent(d->relay_pid, TUNPROC_PARENT_GONE, err, sizeof(err)) ==
	    -1)
		fatalx(EX_OSERR, "%s", err);
	enter_sandbox(&d->cfg);
}

/* In each worker: dies with its keeper. */
static void
as_worker(void *arg, unsigned number)
{
	struct daemon	*d = arg;
	char		 err[256];

	d->starts = number;
	if (workers_reinit() == -1)
		fatalx(EX_OSERR, "event_reinit failed in the tunnels' process");
	if (caps_die_with_parent(d->keeper_pid, SIGKILL, err, sizeof(err)) ==
	    -1)
		fatalx(EX_OSERR, "%s", err);
	/* It signals no other process: not the relay process either. */
	if (!d->cfg.no_sandbox && sandbox_signal_only_self(err, sizeof(err)) ==
	    -1)
		fatalx(EX_OSERR, "%s", err);
}

/*
 * The tunnels go to processes of their own unless there can be none (no
 * tunnel, no config file to add one). Returns in the relay process, which
 * keeps no tunnel, and in each tunnels' worker, which keeps no relay.
 */
static void
split_tunnels(struct daemon *d)
{
	struct tunproc_hooks	h = { as_keeper, as_worker, d };
	pid_t			keeper;
	size_t			i;
	int			fd;

	if (d->ntunnels == 0 && d->cfg.file == NULL)
		return;
	d->relay_pid = getpid();
	switch (tunproc_fork(&h, &keeper, &fd)) {
	case -1:
		fatal(EX_OSERR, "cannot start the tunnels' process");
	case 1:
		if ((d->tunchan = tunchan_new(d->base, fd, worker_status, d)) ==
		    NULL)
			fatalx(EX_OSERR, "out of memory");
		return;
	}
	for (i = 0; i < d->ntunnels; i++)
		tunnel_free(d->tunnels[i]);
	d->ntunnels = 0;
	if ((d->tunproc = tunproc_new(d->base, keeper, fd, check_ready)) ==
	    NULL)
		fatalx(EX_OSERR, "out of memory");
}

int
main(int argc, char **argv)
{
	static struct daemon	 d;
	struct caps_user	 u = { .uid = 0 };
	size_t			 i;
	unsigned		 nloops;
	char			 err[256];
	int			 from_root;

	keep_std_fds_open();
	signal(SIGPIPE, SIG_IGN);
	d.argc = argc;
	d.argv = argv;
	load_config(&d.cfg, argc, argv);
	if (d.cfg.status)
		print_status(&d.cfg);
	if (d.cfg.check)
		check_only(&d.cfg);
	log_init(d.cfg.log_level, d.cfg.use_syslog || d.cfg.daemonize);
	pump_set_splice(!d.cfg.no_splice);
	from_root = lookup_user(&d.cfg, &u);

	nloops = workers_wanted(&d.cfg);
	if ((d.base = workers_init(nloops, err, sizeof(err))) == NULL)
		fatalx(EX_OSERR, "%s", err);
	open_everything(&d);
	open_control(&d);
	sysd_close_unused_sockets();
	if (d.cfg.daemonize && (daemonize(), workers_reinit() == -1))
		fatalx(EX_OSERR, "event_reinit failed");
	if (d.cfg.pidfile != NULL)
		write_pidfile(d.cfg.pidfile);
	d.from_root = from_root;
	d.user = u;
	split_tunnels(&d);
	the_daemon = &d;
	if ((d.closed_ev = event_new(d.base, -1, 0, on_closed_in_worker,
	    &d)) == NULL)
		fatalx(EX_OSERR, "out of memory");
	if (d.tunchan == NULL) {
		drop_privileges(from_root, &u, 1);
		enter_sandbox(&d.cfg);
		/* Threads start only now, in the relay process alone: they
		 * inherit the dropped privileges and the sandbox. */
		if (workers_run(err, sizeof(err)) == -1)
			fatalx(EX_OSERR, "%s", err);
		if (nloops > 1)
			log_info("accepting in %u event loops", nloops);
	}
	conn_set_closed_hook(drained_check);
	relay_set_forked_hook(as_fork_child);
	tunnel_set_up_hook(check_ready);
	watch_signals(&d);
	for (i = 0; i < d.nrelays; i++)
		relay_start(d.relays[i]);
	for (i = 0; i < d.ntunnels; i++)
		tunnel_start(d.tunnels[i]);
	/* A restarted worker catches up with reloads its keeper missed. */
	if (d.tunchan != NULL && d.starts > 1 && d.cfg.file != NULL) {
		log_info("tunnels restarted: reading %s again", d.cfg.file);
		reload(&d);
	}
	start_watchdog(&d);
	if (d.tunchan == NULL)
		log_info("ready");
	check_ready();

	event_base_dispatch(d.base);

	return close_everything(&d);
}
