/*
 * The seccomp allow-list, built with libseccomp. What is on it follows from
 * what relayd does after start-up: relay and tunnel bytes (sockets, pipes
 * for splice, epoll), resolve names (getaddrinfo_a threads, NSS reading
 * files and asking DNS or nscd), reload (read the config, bind, unlink and
 * chmod unix sockets), serve --fork children, log to syslog, talk to
 * systemd, run OpenSSL and libssh2 (getrandom), and let the ACME thread
 * talk to its server and store certificates (sockets, names, rename). Everything else kills
 * the whole process; a call that a library makes only as an optional probe
 * gets the error a kernel without it would give, so the library falls back.
 */
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <endian.h>
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "caps/sandbox.h"

/* Allowed whatever their arguments. */
static const char *const allowed[] = {
	/* descriptors and files: config, keys, known_hosts, NSS, zoneinfo */
	"read", "readv", "pread64", "write", "writev", "close", "close_range",
	"lseek", "dup", "dup2", "dup3", "fcntl", "fstat", "newfstatat",
	"stat", "lstat", "statx", "openat", "open", "access", "faccessat",
	"faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
	/* unix sockets come and go on reload; chmod opens them up */
	"unlink", "unlinkat", "chmod", "fchmod", "fchmodat", "umask",
	/* ACME replaces its certificate and key whole in --acme-dir */
	"rename", "renameat", "renameat2", "fsync",
	/* the event loop and its wake-ups, splice through pipes */
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
	"epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
	"eventfd2", "pipe", "pipe2", "splice",
	/* libevent's precise timers (EVENT_PRECISE_TIMER in the environment) */
	"timerfd_create", "timerfd_settime", "timerfd_gettime",
	/* sockets (socket() itself is checked below) */
	"socketpair", "bind", "listen", "accept", "accept4", "connect",
	"getsockname", "getpeername", "getsockopt", "setsockopt", "sendto",
	"recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
	/* memory; NSS modules are dlopen'ed at the first lookup, so
	 * executable mappings cannot be refused */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* signals: libevent's handlers, --fork children, the drain */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"kill", "tgkill", "tkill", "wait4", "waitid",
	/* a sleep or poll stopped by SIGSTOP (or a debugger) resumes
	 * through this one */
	"restart_syscall",
	/* time */
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep",
	"clock_nanosleep",
	/* identity, read only: logs, caps_can_bind_low, getpwuid */
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
	"getegid", "getresuid", "getresgid", "getgroups", "capget", "uname",
	"sysinfo", "getrlimit",
	/* threads (getaddrinfo_a, workers) and their end */
	"futex", "set_robust_list", "rseq", "set_tid_address", "sched_yield",
	"sched_getaffinity", "exit", "exit_group",
	/* OpenSSL and libssh2 */
	"getrandom",
#ifdef __SANITIZE_ADDRESS__
	/* LeakSanitizer stops the world at exit: a tracer task attaches
	 * to every thread, which it finds in /proc/self/task. */
	"ptrace", "prctl", "getdents",
#endif
};

/* Namespaces are what a clone may not ask for (threads and fork may). */
#define CLONE_NS_FLAGS	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | \
	CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* Adds one rule for name if this architecture has the call. */
static int
add(scmp_filter_ctx ctx, uint32_t action, const char *name,
    unsigned n, const struct scmp_arg_cmp *cmp, char *err, size_t errlen)
{
	int	nr, rc;

	if ((nr = seccomp_syscall_resolve_name(name)) == __NR_SCMP_ERROR)
		return 0;
	if ((rc = seccomp_rule_add_array(ctx, action, nr, n, cmp)) < 0) {
		snprintf(err, errlen, "sandbox: cannot add a rule for %s: %s",
		    name, strerror(-rc));
		return -1;
	}
	return 1;
}

#ifdef __SANITIZE_ADDRESS__
/* The list above has prctl whole. */
static int
add_pdeathsig(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	return 0;
}
#else
/* A tunnels' worker, forked by the sandboxed keeper, asks to die with it. */
static int
add_pdeathsig(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const struct scmp_arg_cmp	pdeathsig = SCMP_A0_32(SCMP_CMP_EQ,
					    PR_SET_PDEATHSIG);

	return add(ctx, SCMP_ACT_ALLOW, "prctl", 1, &pdeathsig, err, errlen);
}
#endif

/* Calls allowed only with some arguments, and the refused probes. */
static int
add_checked(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const struct scmp_arg_cmp	no_ns = SCMP_A0_64(SCMP_CMP_MASKED_EQ,
					    CLONE_NS_FLAGS, 0);
	const struct scmp_arg_cmp	inet = SCMP_A0_32(SCMP_CMP_EQ, AF_INET);
	const struct scmp_arg_cmp	inet6 = SCMP_A0_32(SCMP_CMP_EQ,
					    AF_INET6);
	const struct scmp_arg_cmp	local = SCMP_A0_32(SCMP_CMP_EQ,
					    AF_UNIX);
	const struct scmp_arg_cmp	route[2] = {
		SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK),
		SCMP_A2_32(SCMP_CMP_EQ, NETLINK_ROUTE),
	};
	const struct scmp_arg_cmp	readonly = SCMP_A2_64(SCMP_CMP_EQ, 0);
	const struct scmp_arg_cmp	filter_only[2] = {
		SCMP_A0_32(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
		SCMP_A1_32(SCMP_CMP_EQ, 0),
	};
	const unsigned long		ioctls[] = { FIONREAD, FIONBIO, FIOCLEX,
					    FIONCLEX, TCGETS, TIOCGWINSZ };
	struct scmp_arg_cmp		io;
	size_t				i;

	/* Threads and fork, never new namespaces. clone3 passes its flags
	 * in memory, out of a filter's sight: "not implemented" makes
	 * glibc fall back to clone. */
	if (add(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns, err, errlen) < 0 ||
	    add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err,
	    errlen) < 0)
		return -1;
	/* IP and unix sockets, and the routing netlink socket getaddrinfo's
	 * AI_ADDRCONFIG reads; other families (packet, raw netlink) are
	 * refused as a kernel without them would. */
	if (add(ctx, SCMP_ACT_ALLOW, "socket", 1, &inet, err, errlen) < 0 ||
	    add(ctx, SCMP_ACT_ALLOW, "socket", 1, &inet6, err, errlen) < 0 ||
	    add(ctx, SCMP_ACT_ALLOW, "socket", 1, &local, err, errlen) < 0 ||
	    add(ctx, SCMP_ACT_ALLOW, "socket", 2, route, err, errlen) < 0)
		return -1;
	if (add_pdeathsig(ctx, err, errlen) < 0)
		return -1;
	/* Another filter, without flags, can only narrow this one: a
	 * tunnels' worker adds sandbox_signal_only_self's. */
	if (add(ctx, SCMP_ACT_ALLOW, "seccomp", 2, filter_only, err,
	    errlen) < 0)
		return -1;
	/* Reading a limit is fine, raising one is not. */
	if (add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &readonly, err,
	    errlen) < 0)
		return -1;
	/* Socket ioctls, and the terminal queries of isatty() and stdio;
	 * any other (TIOCSTI, device ioctls) kills. */
	for (i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
		io = (struct scmp_arg_cmp)SCMP_A1_64(SCMP_CMP_MASKED_EQ,
		    0xffffffffUL, ioctls[i]);
		if (add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &io, err, errlen) < 0)
			return -1;
	}
	return 0;
}

#ifdef __SANITIZE_ADDRESS__
/* A sanitizer report starts llvm-symbolizer: refused, the report is still
 * written, with addresses instead of names. */
static int
add_refused(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	return add(ctx, SCMP_ACT_ERRNO(EPERM), "execve", 0, NULL, err,
	    errlen) < 0 ? -1 : 0;
}
#else
static int
add_refused(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	return 0;
}
#endif

int
sandbox_enter(char *err, size_t errlen)
{
	scmp_filter_ctx	ctx;
	size_t		i;
	int		rc, n = 0;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL) {
		snprintf(err, errlen, "sandbox: seccomp_init failed");
		return -1;
	}
	/* Every thread now, and a foreign system-call ABI (i386 calls from
	 * an x86-64 process) kills as an unknown call does. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) < 0) {
		snprintf(err, errlen, "sandbox: %s", strerror(-rc));
		goto fail;
	}
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if ((rc = add(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err,
		    errlen)) < 0)
			goto fail;
		n += rc;
	}
	if (add_checked(ctx, err, errlen) == -1)
		goto fail;
	if (add_refused(ctx, err, errlen) == -1)
		goto fail;
	if ((rc = seccomp_load(ctx)) < 0) {
		snprintf(err, errlen, "sandbox: cannot load the filter: %s",
		    strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	return n + 5;	/* and clone, socket, seccomp, prlimit64, ioctl */
fail:
	seccomp_release(ctx);
	return -1;
}

/* The low 32 bits of the first argument: a pid_t is an int. */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define ARG0_LOW	offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LOW	(offsetof(struct seccomp_data, args[0]) + 4)
#endif

int
sandbox_signal_only_self(char *err, size_t errlen)
{
	/* Written by hand: libseccomp would probe the kernel with calls
	 * that the list of sandbox_enter does not have. */
	struct sock_filter	insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kill, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tkill, 3, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)getpid(), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog	prog = {
		sizeof(insns) / sizeof(insns[0]), insns
	};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == -1) {
		snprintf(err, errlen, "sandbox: cannot narrow the filter: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}
