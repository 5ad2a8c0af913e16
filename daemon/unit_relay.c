/* A relay as a unit: relay.h behind the unit operations. */
#include "daemon/unit_ops.h"
#include "relay/relay.h"

static size_t
r_nconfs(const struct config *cfg)
{
	return cfg->nrelays;
}

static const void *
r_conf_at(const struct config *cfg, size_t i)
{
	return cfg->relays[i];
}

static void
r_forget_confs(struct config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nrelays; i++)
		relay_conf_free(cfg->relays[i]);
	cfg->nrelays = 0;
}

static void *
r_new(struct event_base *base, const void *conf, char *err, size_t errlen,
    int *exitcode)
{
	return relay_new(base, conf, err, errlen, exitcode);
}

static const void *
r_conf(const void *obj)
{
	return relay_conf(obj);
}

static int
r_conf_equal(const void *a, const void *b)
{
	return relay_conf_equal(a, b);
}

static const char *
r_conf_name(const void *conf)
{
	return ((const struct relay_conf *)conf)->name;
}

static void
r_start(void *obj)
{
	relay_start(obj);
}

static void
r_stop_accepting(void *obj)
{
	relay_stop_accepting(obj);
}

/* Its listening sockets wait, parked, for the relay that replaces it. */
static void
r_retire(void *obj)
{
	relay_park_listeners(obj);
}

static void
r_reload_tls(void *obj)
{
	relay_reload_tls(obj);
}

static unsigned
r_active(const void *obj)
{
	return relay_active(obj);
}

static void
r_write_status(const void *obj, FILE *fp)
{
	relay_write_status(obj, fp);
}

static void
r_free(void *obj)
{
	relay_free(obj);
}

static void
r_give_away(void *obj)
{
	relay_free_inherited(obj);
}

const struct unit_ops	unit_relay_ops = {
	.name = "relay",
	.nconfs = r_nconfs,
	.conf_at = r_conf_at,
	.forget_confs = r_forget_confs,
	.new = r_new,
	.conf = r_conf,
	.conf_equal = r_conf_equal,
	.conf_name = r_conf_name,
	.start = r_start,
	.stop_accepting = r_stop_accepting,
	.retire = r_retire,
	.reload_tls = r_reload_tls,
	.active = r_active,
	.write_status = r_write_status,
	.free = r_free,
	.give_away = r_give_away,
};
