/* Relays and tunnels behind one table of operations, and their lists. */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "daemon/unit.h"
#include "daemon/unit_ops.h"

/* Indexed by enum unit_kind. */
static const struct unit_ops	*const kinds[UNIT_NKINDS] = {
	[UNIT_RELAY] = &unit_relay_ops,
	[UNIT_TUNNEL] = &unit_tunnel_ops,
};

size_t
unit_nconfs(const struct config *cfg, enum unit_kind kind)
{
	return kinds[kind]->nconfs(cfg);
}

void
unit_forget_confs(struct config *cfg, enum unit_kind kind)
{
	kinds[kind]->forget_confs(cfg);
}

const char *
unit_conf_name(const struct config *cfg, enum unit_kind kind, size_t i)
{
	return kinds[kind]->conf_name(kinds[kind]->conf_at(cfg, i));
}

const char *
unit_kind_name(enum unit_kind kind)
{
	return kinds[kind]->name;
}

struct unit *
unit_new(struct event_base *base, const struct config *cfg,
    enum unit_kind kind, size_t i, char *err, size_t errlen, int *exitcode)
{
	struct unit	*u;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(err, errlen, "out of memory");
		*exitcode = EX_OSERR;
		return NULL;
	}
	u->kind = kind;
	if ((u->obj = kinds[kind]->new(base, kinds[kind]->conf_at(cfg, i), err,
	    errlen, exitcode)) == NULL) {
		free(u);
		return NULL;
	}
	return u;
}

void
unit_start(struct unit *u)
{
	kinds[u->kind]->start(u->obj);
}

int
unit_runs(const struct unit *u, const struct config *cfg, size_t i)
{
	const struct unit_ops	*ops = kinds[u->kind];

	return ops->conf_equal(ops->conf(u->obj), ops->conf_at(cfg, i));
}

void
unit_stop_accepting(struct unit *u)
{
	kinds[u->kind]->stop_accepting(u->obj);
}

void
unit_retire(struct unit *u)
{
	kinds[u->kind]->retire(u->obj);
}

void
unit_reload_tls(struct unit *u)
{
	if (kinds[u->kind]->reload_tls != NULL)
		kinds[u->kind]->reload_tls(u->obj);
}

unsigned
unit_active(const struct unit *u)
{
	return kinds[u->kind]->active(u->obj);
}

int
unit_ready(const struct unit *u)
{
	return kinds[u->kind]->ready == NULL || kinds[u->kind]->ready(u->obj);
}

int
unit_exit_code(const struct unit *u)
{
	if (kinds[u->kind]->exit_code == NULL)
		return 0;
	return kinds[u->kind]->exit_code(u->obj);
}

void
unit_write_status(const struct unit *u, FILE *fp)
{
	kinds[u->kind]->write_status(u->obj, fp);
}

void
unit_free(struct unit *u)
{
	kinds[u->kind]->free(u->obj);
	free(u);
}

void
unit_give_away(struct unit *u)
{
	kinds[u->kind]->give_away(u->obj);
	free(u);
}

void
units_insert(struct unit_list *list, struct unit *u)
{
	struct unit	*after;

	TAILQ_FOREACH_REVERSE(after, list, unit_list, entry)
		if (after->kind <= u->kind) {
			TAILQ_INSERT_AFTER(list, after, u, entry);
			return;
		}
	TAILQ_INSERT_HEAD(list, u, entry);
}

size_t
units_count(const struct unit_list *list, enum unit_kind kind)
{
	const struct unit	*u;
	size_t			 n = 0;

	TAILQ_FOREACH(u, list, entry)
		n += u->kind == kind;
	return n;
}

unsigned
units_active(const struct unit_list *list)
{
	const struct unit	*u;
	unsigned		 n = 0;

	TAILQ_FOREACH(u, list, entry)
		n += unit_active(u);
	return n;
}

int
units_exit_code(const struct unit_list *list)
{
	const struct unit	*u;
	int			 code;

	TAILQ_FOREACH(u, list, entry)
		if ((code = unit_exit_code(u)) != 0)
			return code;
	return 0;
}

void
units_free(struct unit_list *list)
{
	struct unit	*u;

	while ((u = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, u, entry);
		unit_free(u);
	}
}

void
units_give_away(struct unit_list *list, enum unit_kind kind)
{
	struct unit	*u, *next;

	for (u = TAILQ_FIRST(list); u != NULL; u = next) {
		next = TAILQ_NEXT(u, entry);
		if (u->kind != kind)
			continue;
		TAILQ_REMOVE(list, u, entry);
		unit_give_away(u);
	}
}
