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
#include "tunnel/budget.h"

struct budget {
	const char	*name;		/* the tunnel's, for logs */
	size_t		 held;		/* allocated by libssh2 */
	unsigned	 refused;	/* channels refused, over budget */
};

struct budget *
budget_new(const char *name)
{
	struct budget	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->name = name;
	return b;
}

void
budget_free(struct budget *b)
{
	free(b);
}

static void
count(struct budget *b, void *p, int sign)
{
	size_t	n;

	if (p == NULL)
		return;
	n = malloc_usable_size(p);
	if (sign > 0)
		b->held += n;
	else
		b->held -= n < b->held ? n : b->held;
}

void *
budget_alloc(struct budget *b, size_t len)
{
	void	*p = malloc(len);

	count(b, p, 1);
	return p;
}

void *
budget_realloc(struct budget *b, void *old, size_t len)
{
	size_t		 was = old != NULL ? malloc_usable_size(old) : 0;
	void		*p;

	/* realloc(p, 0) may free p and return NULL: count it as the free. */
	if (len == 0 && old != NULL) {
		budget_release(b, old);
		return NULL;
	}
	if ((p = realloc(old, len)) == NULL)
		return NULL;
	b->held -= was < b->held ? was : b->held;
	count(b, p, 1);
	return p;
}

void
budget_release(struct budget *b, void *p)
{
	count(b, p, -1);
	free(p);
}

/*
 * Whether a new channel may be opened or accepted now. The first refusal
 * and the return under the budget are logged, with how many channels
 * were refused in between.
 */
int
budget_admit(struct budget *b)
{
	if (b->held >= TUNNEL_MEM_BUDGET) {
		if (b->refused++ == 0)
			log_warnx("tunnel %s: memory budget spent (libssh2 "
			    "holds %zu KiB of %u): refusing new channels",
			    b->name, b->held / 1024,
			    TUNNEL_MEM_BUDGET / 1024);
		return 0;
	}
	if (b->refused > 0) {
		log_info("tunnel %s: memory back under budget (%zu KiB); "
		    "%u new channels were refused", b->name,
		    b->held / 1024, b->refused);
		b->refused = 0;
	}
	return 1;
}
