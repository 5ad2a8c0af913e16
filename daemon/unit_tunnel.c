/* A tunnel as a unit: tunnel.h behind the unit operations. */
#include <sysexits.h>

#include "daemon/unit_ops.h"
#include "tunnel/tunnel.h"

static size_t
t_nconfs(const struct config *cfg)
{
	return cfg->ntunnels;
}

static const void *
t_conf_at(const struct config *cfg, size_t i)
{
	return cfg->tunnels[i];
}

static void
t_forget_confs(struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->ntunnels; i++)
		tunnel_conf_free(cfg->tunnels[i]);
	cfg->ntunnels = 0;
}

/* libssh2 is set up before the first tunnel (again is harmless). */
static void *
t_new(struct event_base *base, const void *conf, char *err, size_t errlen,
    int *exitcode)
{
	if (tunnel_global_init() == -1) {
		snprintf(err, errlen, "libssh2 cannot be initialised");
		*exitcode = EX_OSERR;
		return NULL;
	}
	return tunnel_new(base, conf, err, errlen, exitcode);
}

static const void *
t_conf(const void *obj)
{
	return tunnel_conf(obj);
}

static int
t_conf_equal(const void *a, const void *b)
{
	return tunnel_conf_equal(a, b);
}

static const char *
t_conf_name(const void *conf)
{
	return ((const struct tunnel_conf *)conf)->name;
}

static void
t_start(void *obj)
{
	tunnel_start(obj);
}

static void
t_stop_accepting(void *obj)
{
	tunnel_stop_accepting(obj);
}

/* -R channels are refused first, then the -L/-D ports go back. */
static void
t_retire(void *obj)
{
	tunnel_stop_accepting(obj);
	tunnel_close_listeners(obj);
}

static unsigned
t_active(const void *obj)
{
	return tunnel_active(obj);
}

static int
t_ready(const void *obj)
{
	return tunnel_ready(obj);
}

static int
t_exit_code(const void *obj)
{
	return tunnel_exit_code(obj);
}

static void
t_write_status(const void *obj, FILE *fp)
{
	tunnel_write_status(obj, fp);
}

static void
t_free(void *obj)
{
	tunnel_free(obj);
}

const struct unit_ops	unit_tunnel_ops = {
	.name = "tunnel",
	.nconfs = t_nconfs,
	.conf_at = t_conf_at,
	.forget_confs = t_forget_confs,
	.new = t_new,
	.conf = t_conf,
	.conf_equal = t_conf_equal,
	.conf_name = t_conf_name,
	.start = t_start,
	.stop_accepting = t_stop_accepting,
	.retire = t_retire,
	.active = t_active,
	.ready = t_ready,
	.exit_code = t_exit_code,
	.write_status = t_write_status,
	.free = t_free,
	.give_away = t_free,
};
