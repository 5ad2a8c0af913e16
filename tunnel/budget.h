/*
 * The tunnel's memory budget: what libssh2 allocates is counted, and
 * while the count is over TUNNEL_MEM_BUDGET new channels are refused.
 */
#ifndef TUNNEL_BUDGET_H
#define TUNNEL_BUDGET_H

#include <stddef.h>

/*
 * Memory (see SECURITY.md): what libssh2 may hold before new channels are
 * refused, and the receive window of the channels we open (accepted -R
 * channels get libssh2's fixed LIBSSH2_CHANNEL_WINDOW_DEFAULT).
 */
#define TUNNEL_MEM_BUDGET	(64u * 1024 * 1024)
#define TUNNEL_OPEN_WINDOW	(256 * 1024)

struct budget;

/* A budget whose logs name the tunnel name (kept, not copied); NULL on
 * allocation failure. */
struct budget *budget_new(const char *name);
void	budget_free(struct budget *);
/* malloc, realloc and free for libssh2, counting what is held. */
void	*budget_alloc(struct budget *, size_t);
void	*budget_realloc(struct budget *, void *, size_t);
void	 budget_release(struct budget *, void *);
/* Whether a new channel may be opened or accepted now; logs refusals. */
int	 budget_admit(struct budget *);

#endif
