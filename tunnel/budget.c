/*
 * The tunnel's memory budget. libssh2 allocates through these functions,
 * which count what the session holds: the channels' queued data above
 * all, up to each channel's receive window. While the count is over the
 * budget, new channels are refused, so a target or client that stops
 * reading costs its own window and no more channels are opened to fill.
 */
#include <malloc.h>
#include <stdlib.h>

#include "relay/log.h"
#include "tunnel/tunnel_int.h"

static void
count(struct tunnel *t, void *p, int sign)
{
	size_t	n;

	if (p == NULL)
		return;
	n = malloc_usable_size(p);
	if (sign > 0)
		t->mem_held += n;
	else
		t->mem_held -= n < t->mem_held ? n : t->mem_held;
}

void *
budget_alloc(size_t len, void **abstract)
{
	void	*p = malloc(len);

	count(*abstract, p, 1);
	return p;
}

void *
budget_realloc(void *old, size_t len, void **abstract)
{
	struct tunnel	*t = *abstract;
	size_t		 was = old != NULL ? malloc_usable_size(old) : 0;
	void		*p;

	if ((p = realloc(old, len)) == NULL)
		return NULL;
	t->mem_held -= was < t->mem_held ? was : t->mem_held;
	count(t, p, 1);
	return p;
}

void
budget_free(void *p, void **abstract)
{
	count(*abstract, p, -1);
	free(p);
}

/*
 * Whether a new channel may be opened or accepted now. The first refusal
 * and the return under the budget are logged, with how many channels
 * were refused in between.
 */
int
budget_admit(struct tunnel *t)
{
	if (t->mem_held >= TUNNEL_MEM_BUDGET) {
		if (t->mem_refused++ == 0)
			log_warnx("tunnel %s: memory budget spent (libssh2 "
			    "holds %zu KiB of %u): refusing new channels",
			    t->name, t->mem_held / 1024,
			    TUNNEL_MEM_BUDGET / 1024);
		return 0;
	}
	if (t->mem_refused > 0) {
		log_info("tunnel %s: memory back under budget (%zu KiB); "
		    "%u new channels were refused", t->name,
		    t->mem_held / 1024, t->mem_refused);
		t->mem_refused = 0;
	}
	return 1;
}
