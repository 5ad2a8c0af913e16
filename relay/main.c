/*
 * relayd: binds its listeners, gives up root but CAP_NET_BIND_SERVICE, and
 * relays connections from one event loop (or one process each, --fork).
 */
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "caps/caps.h"
#include "relay/bufpool.h"
#include "relay/config.h"
#include "relay/resolve.h"
#include "relay/log.h"
#include "relay/options.h"
#include "relay/relay.h"
#include "tunnel/tunnel.h"

struct daemon {
	struct event_base	*base;
	struct relay		*relay;
	struct tunnel		*tunnel;
	struct event		*sigs[4];
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

static void
parse_or_exit(struct config *cfg, int argc, char **argv)
{
	char	err[512];

	config_init(cfg);
	switch (options_parse(cfg, argc, argv, err, sizeof(err))) {
	case OPTIONS_HELP:
		options_usage(stdout);
		exit(0);
	case OPTIONS_VERSION:
		printf("relayd %s\n", RELAYD_VERSION);
		exit(0);
	case OPTIONS_ERROR:
		fatalx(EX_USAGE, "%s", err);
	case OPTIONS_OK:
		break;
	}
	if (config_validate(cfg, err, sizeof(err)) == -1)
		fatalx(EX_USAGE, "%s", err);
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

static void
drop_privileges(int from_root, const struct caps_user *u)
{
	char	err[256], desc[256];

	if (from_root ? caps_drop_root(u, err, sizeof(err)) :
	    caps_restrict(err, sizeof(err)))
		fatalx(EX_OSERR, "%s", err);
	caps_describe(desc, sizeof(desc));
	log_info("running as %s", desc);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon	*d = arg;

	if (sig == SIGCHLD) {
		relay_reap_children();
		return;
	}
	if (sig == SIGHUP) {
		log_info("SIGHUP: nothing to reload (options come from the "
		    "command line)");
		return;
	}
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(d->base);
}

static void
watch_signals(struct daemon *d)
{
	const int	sigs[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP };
	size_t		i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		d->sigs[i] = evsignal_new(d->base, sigs[i], on_signal, d);
		if (d->sigs[i] == NULL || evsignal_add(d->sigs[i], NULL) == -1)
			fatalx(EX_OSERR, "cannot watch signal %d", sigs[i]);
	}
}

int
main(int argc, char **argv)
{
	struct daemon	 d = { 0 };
	struct caps_user u;
	struct config	 cfg;
	char		 err[512];
	int		 from_root, code = EX_OSERR;
	size_t		 i;

	keep_std_fds_open();
	signal(SIGPIPE, SIG_IGN);
	parse_or_exit(&cfg, argc, argv);
	log_init(cfg.log_level, 0);
	from_root = lookup_user(&cfg, &u);

	if ((d.base = event_base_new()) == NULL)
		fatalx(EX_OSERR, "cannot create the event loop");
	if (cfg.relay.nlisten > 0 && (d.relay = relay_new(d.base, &cfg.relay,
	    err, sizeof(err), &code)) == NULL)
		fatalx(code, "%s", err);
	if (cfg.tunnel.enabled) {
		if (tunnel_global_init() == -1)
			fatalx(EX_SOFTWARE, "cannot initialise libssh2");
		if ((d.tunnel = tunnel_new(d.base, &cfg.tunnel, err,
		    sizeof(err), &code)) == NULL)
			fatalx(code, "%s", err);
	}
	drop_privileges(from_root, &u);
	watch_signals(&d);
	if (d.relay != NULL)
		relay_start(d.relay);
	if (d.tunnel != NULL)
		tunnel_start(d.tunnel);
	log_info("ready");

	event_base_dispatch(d.base);

	code = tunnel_exit_code(d.tunnel);
	relay_kill_children();
	relay_free(d.relay);
	if (d.tunnel != NULL) {
		tunnel_free(d.tunnel);
		tunnel_global_exit();
	}
	resolve_shutdown();
	for (i = 0; i < sizeof(d.sigs) / sizeof(d.sigs[0]); i++)
		event_free(d.sigs[i]);
	event_base_free(d.base);
	bufpool_drain();
	config_free(&cfg);
	return code;
}
