/*
 * Event loops in threads (--workers N): loop 0 is the main thread's, the
 * others each run their own event_base in a thread of their own. What a
 * loop owns (listeners, connections) is touched only from its thread; the
 * main thread gets things done there with workers_call.
 */
#ifndef RELAY_WORKERS_H
#define RELAY_WORKERS_H

#include "relay/config.h"

#define WORKERS_MAX	256

struct event_base;

/*
 * How many loops cfg asks for: --workers, or by default the CPUs online
 * (1 when a relay uses --fork, which already spreads over processes).
 */
unsigned workers_wanted(const struct config *cfg);
/* Whether any relay of cfg uses --fork. */
int	workers_config_forks(const struct config *cfg);
/*
 * Creates the main loop and, for n > 1, n - 1 more (with libevent's
 * locking on); their threads start with workers_run. Returns the main
 * base, or NULL with a message in err. n == 1: one plain event_base.
 */
struct event_base *workers_init(unsigned n, char *err, size_t errlen);
/* Re-initialises every loop after fork() (--daemon). -1 on failure. */
int	workers_reinit(void);
/* Starts the threads (after the privilege drop: they inherit it). */
int	workers_run(char *err, size_t errlen);
/* How many loops there are (1 before workers_init). */
unsigned workers_count(void);
/* Loop i's event_base (0: the main one). */
struct event_base *workers_base(unsigned i);
/*
 * Runs fn(arg) in loop i's thread and returns once it has: directly for
 * loop 0 or before the threads run. Only the main thread calls it.
 */
void	workers_call(unsigned i, void (*fn)(void *), void *arg);
/* Whether the caller is the main thread. */
int	workers_on_main(void);
/* Stops the threads (their loops must own nothing by now), joins them
 * and frees every event_base, the main one included. */
void	workers_shutdown(void);

#endif
