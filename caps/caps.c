/* Privilege drop with libcap and prctl, verified after the fact. */
#include <sys/capability.h>
#include <sys/prctl.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "caps/caps.h"

int
caps_lookup_user(const char *name, struct caps_user *u, char *err,
    size_t errlen)
{
	struct passwd	*pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		if (errno != 0)
			snprintf(err, errlen, "--user %s: cannot look up: %s",
			    name, strerror(errno));
		else
			snprintf(err, errlen, "--user %s: no such user", name);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		snprintf(err, errlen, "--user %s: refusing to keep running as "
		    "root (uid or gid 0); name an unprivileged user", name);
		return -1;
	}
	if (strlen(name) >= sizeof(u->name)) {
		snprintf(err, errlen, "--user %s: name too long", name);
		return -1;
	}
	strcpy(u->name, name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/* Sets exactly CAP_NET_BIND_SERVICE (or nothing) in permitted and effective. */
static int
set_only_bind_cap(int keep, char *err, size_t errlen)
{
	cap_value_t	 want = CAP_NET_BIND_SERVICE;
	cap_t		 c;
	int		 rc = 0;

	if ((c = cap_init()) == NULL) {
		snprintf(err, errlen, "cap_init: %s", strerror(errno));
		return -1;
	}
	if (keep && (cap_set_flag(c, CAP_PERMITTED, 1, &want, CAP_SET) == -1 ||
	    cap_set_flag(c, CAP_EFFECTIVE, 1, &want, CAP_SET) == -1))
		rc = -1;
	if (rc == 0 && cap_set_proc(c) == -1)
		rc = -1;
	if (rc == -1)
		snprintf(err, errlen, "cannot set capabilities: %s",
		    strerror(errno));
	cap_free(c);
	return rc;
}

static int
drop_bounding_set(int keep, char *err, size_t errlen)
{
	cap_value_t	v;

	for (v = 0; v < (cap_value_t)cap_max_bits(); v++) {
		if (keep && v == CAP_NET_BIND_SERVICE)
			continue;
		if (cap_drop_bound(v) == -1 && errno != EINVAL) {
			snprintf(err, errlen, "cannot drop capability %d from "
			    "the bounding set: %s", v, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int
set_no_new_privs(char *err, size_t errlen)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 &&
	    errno != EINVAL) {
		snprintf(err, errlen, "cannot clear ambient capabilities: %s",
		    strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "cannot set no-new-privs: %s",
		    strerror(errno));
		return -1;
	}
	/* The relay process and the tunnels' run as one user: without this
	 * (started without root, or fs.suid_dumpable set) each could open
	 * another's /proc/PID/mem and write into it. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		snprintf(err, errlen, "cannot clear the dumpable flag: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Proves the drop: root is out of reach and the capability set is exact. */
static int
verify_dropped(const struct caps_user *u, int keep, char *err, size_t errlen)
{
	cap_value_t	 nbs = CAP_NET_BIND_SERVICE;
	cap_t		 have, want;
	int		 same;

	gid_t	groups[2];

	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1 ||
	    getuid() != u->uid || geteuid() != u->uid || getgid() != u->gid ||
	    getegid() != u->gid || getgroups(2, groups) != 1 ||
	    groups[0] != u->gid) {
		snprintf(err, errlen, "privilege drop did not stick");
		return -1;
	}
	if ((have = cap_get_proc()) == NULL || (want = cap_init()) == NULL) {
		snprintf(err, errlen, "cap_get_proc: %s", strerror(errno));
		cap_free(have);
		return -1;
	}
	if (keep) {
		cap_set_flag(want, CAP_PERMITTED, 1, &nbs, CAP_SET);
		cap_set_flag(want, CAP_EFFECTIVE, 1, &nbs, CAP_SET);
	}
	same = cap_compare(have, want) == 0;
	cap_free(have);
	cap_free(want);
	if (!same) {
		snprintf(err, errlen, "capability set is not what was asked");
		return -1;
	}
	return 0;
}

int
caps_drop_root(const struct caps_user *u, int keep_bind, char *err,
    size_t errlen)
{
	if (drop_bounding_set(keep_bind, err, errlen) == -1)
		return -1;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	/* Only the primary group: a supplementary one (docker, disk) can
	 * be as good as root. */
	if (setgroups(1, &u->gid) == -1) {
		snprintf(err, errlen, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(u->gid, u->gid, u->gid) == -1 ||
	    setresuid(u->uid, u->uid, u->uid) == -1) {
		snprintf(err, errlen, "cannot become %s: %s", u->name,
		    strerror(errno));
		return -1;
	}
	if (set_only_bind_cap(keep_bind, err, errlen) == -1)
		return -1;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == -1) {
		snprintf(err, errlen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	if (set_no_new_privs(err, errlen) == -1)
		return -1;
	return verify_dropped(u, keep_bind, err, errlen);
}

int
caps_can_bind_low(void)
{
	cap_flag_value_t	 v = CAP_CLEAR;
	cap_t			 c;

	if ((c = cap_get_proc()) == NULL)
		return 0;
	cap_get_flag(c, CAP_NET_BIND_SERVICE, CAP_EFFECTIVE, &v);
	cap_free(c);
	return v == CAP_SET;
}

int
caps_restrict(int keep_bind, char *err, size_t errlen)
{
	cap_flag_value_t	 v = CAP_CLEAR;
	cap_t			 c;

	if ((c = cap_get_proc()) == NULL) {
		snprintf(err, errlen, "cap_get_proc: %s", strerror(errno));
		return -1;
	}
	cap_get_flag(c, CAP_NET_BIND_SERVICE, CAP_PERMITTED, &v);
	cap_free(c);
	if (set_only_bind_cap(keep_bind && v == CAP_SET, err, errlen) == -1)
		return -1;
	return set_no_new_privs(err, errlen);
}

int
caps_die_with_parent(pid_t parent, int sig, char *err, size_t errlen)
{
	if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == -1) {
		snprintf(err, errlen, "PR_SET_PDEATHSIG: %s", strerror(errno));
		return -1;
	}
	/* It may have gone before the request was made. */
	if (getppid() != parent) {
		snprintf(err, errlen, "parent process %ld is gone",
		    (long)parent);
		return -1;
	}
	return 0;
}

void
caps_describe(char *buf, size_t len)
{
	cap_t	 c = cap_get_proc();
	char	*text = c ? cap_to_text(c, NULL) : NULL;

	snprintf(buf, len, "uid=%u gid=%u caps=%s", (unsigned)getuid(),
	    (unsigned)getgid(), text && strcmp(text, "=") != 0 ? text : "none");
	cap_free(text);
	cap_free(c);
}
