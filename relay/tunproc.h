/*
 * The tunnels' own processes. The relay process forks a keeper, which
 * forks the worker that runs the tunnels and forks it again, with
 * backoff, whenever it dies of a signal. The worker and the relay process
 * talk over a socketpair: readiness one way, status on request.
 */
#ifndef RELAY_TUNPROC_H
#define RELAY_TUNPROC_H

#include <signal.h>

/* The keeper's parent-death signal: it stops the worker once, gracefully. */
#define TUNPROC_PARENT_GONE	SIGUSR2

#include <sys/types.h>

struct event_base;
struct tunproc;
struct tunchan;

struct tunproc_hooks {
	/* In the keeper, once, before the first worker: give up what the
	 * tunnels must not have. Exits on failure. */
	void	(*keeper)(void *arg);
	/* In each worker, before it returns to run the tunnels; the first
	 * worker is number 1. */
	void	(*worker)(void *arg, unsigned number);
	void	 *arg;
};

/*
 * Forks the keeper. Returns 0 in the relay process (*keeper its pid, *fd
 * its end of the channel), 1 in each worker (*fd the worker's end); never
 * returns in the keeper. SIGHUP, SIGTERM, SIGINT, SIGQUIT and SIGUSR1 stay
 * blocked in both: unblock them once they are watched. -1 on failure.
 */
int	tunproc_fork(const struct tunproc_hooks *, pid_t *keeper, int *fd);

/* The relay's side. on_ready is called when every forward is up. NULL
 * when out of memory. */
struct tunproc *tunproc_new(struct event_base *, pid_t keeper, int fd,
	    void (*on_ready)(void));
/* Whether the worker said that every forward is up since the last reload. */
int	tunproc_ready(const struct tunproc *);
/* Passes sig on; a SIGHUP makes it not ready until the worker says so. */
void	tunproc_signal(struct tunproc *, int sig);
/*
 * After waitpid: 1 if pid was the keeper (it is gone, *code is the exit
 * code to stop with), else 0.
 */
int	tunproc_reaped(struct tunproc *, pid_t pid, int status, int *code);
/*
 * What the tunnels' process is asked: done(arg, text, NULL) gets its
 * answer, done(arg, NULL, why) says why there is none ("not running",
 * "not answering (restarting)", "stopping"): within a second, and maybe
 * before tunproc_ask returns. done(arg, NULL, NULL): forgotten (a --fork
 * child), free arg only. Kinds: 'S' the status text, 'M' and 'J' what
 * the worker's answer function makes of them (the metrics, the JSON).
 */
typedef void tunproc_answer(void *arg, const char *text, const char *why);
void	tunproc_ask(struct tunproc *, char kind, tunproc_answer *done,
	    void *arg);
/* Sends head (malloc'd, taken) and the tunnels' status to client, then
 * closes client; waits for the worker at most a second. */
void	tunproc_status(struct tunproc *, int client, char *head);
/* At exit: waits up to timeout seconds for the keeper, then kills it.
 * Returns its exit code (0 unless a tunnel failed fatally), and frees. */
int	tunproc_finish(struct tunproc *, int timeout);
/* In a --fork child: frees the parent's handle without a word to the
 * keeper (the channel and the keeper belong to the parent). */
void	tunproc_forget(struct tunproc *);

/* The worker's side: answers each question with answer(arg, kind)'s
 * malloc'd text (at most 64 KiB goes). NULL when out of memory. */
struct tunchan *tunchan_new(struct event_base *, int fd,
	    char *(*answer)(void *, char kind), void *arg);
/* Tells the relay process that every forward is up. */
void	tunchan_ready(struct tunchan *);
void	tunchan_free(struct tunchan *);

#endif
