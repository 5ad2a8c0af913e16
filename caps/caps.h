/*
 * The only code that changes credentials: after the listeners are bound the
 * relay process keeps CAP_NET_BIND_SERVICE (to bind again on reload) and
 * nothing else of root; the tunnels' processes keep nothing at all.
 */
#ifndef CAPS_CAPS_H
#define CAPS_CAPS_H

#include <sys/types.h>
#include <stddef.h>

struct caps_user {
	char	name[64];
	uid_t	uid;
	gid_t	gid;
};

/* Looks up name. Returns 0, or -1 with a message (unknown user, or root). */
int	caps_lookup_user(const char *name, struct caps_user *u, char *err,
	    size_t errlen);
/*
 * From root: becomes u with its groups, keeping only CAP_NET_BIND_SERVICE
 * if keep_bind (permitted, effective and bounding set; else nothing at
 * all), no ambient capabilities, no-new-privs set, not dumpable; then
 * proves it cannot regain root. Returns 0, or -1 with a message (the
 * caller must exit).
 */
int	caps_drop_root(const struct caps_user *u, int keep_bind, char *err,
	    size_t errlen);
/*
 * Not root: keeps CAP_NET_BIND_SERVICE if keep_bind and a file capability
 * gave it, drops any other, clears ambient capabilities, sets
 * no-new-privs and clears the dumpable flag (the bounding set stays:
 * emptying it needs CAP_SETPCAP).
 */
int	caps_restrict(int keep_bind, char *err, size_t errlen);
/* Asks for sig when the parent dies, and checks that parent still is it.
 * Returns 0, or -1 with a message. */
int	caps_die_with_parent(pid_t parent, int sig, char *err, size_t errlen);
/* Whether the process may bind ports below 1024 right now. */
int	caps_can_bind_low(void);
/* Writes "uid=N gid=N caps=..." for the start-up log line. */
void	caps_describe(char *buf, size_t len);

#endif
