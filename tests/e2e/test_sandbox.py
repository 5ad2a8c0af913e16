"""The system-call sandbox: after start-up every thread and every --fork child
of relayd runs under its seccomp filter, and that filter, read back from the
running process, kills the calls an attacker would want (exec, ptrace, new
namespaces, setuid) while passing the ones relaying needs."""

import ctypes
import os
import platform
import signal
import struct
import time

import pytest

from conftest import (SANITIZE, children_of, fwd, proc_stat, proc_status, sink_roundtrip,
                      tcp4, free_port)

pytestmark = pytest.mark.root

# ---------------------------------------------------------------- the filter

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
WALL = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003

# x86-64 system call numbers.
NR = {"read": 0, "write": 1, "ioctl": 16, "socket": 41, "clone": 56,
      "execve": 59, "ptrace": 101, "setuid": 105, "mount": 165, "unshare": 272,
      "splice": 275, "accept4": 288, "process_vm_writev": 311, "bpf": 321,
      "execveat": 322, "getrandom": 318, "clone3": 435, "restart_syscall": 219, "prctl": 157,
      "kill": 62, "tkill": 200, "tgkill": 234, "seccomp": 317}

FIONREAD, TIOCSTI = 0x541B, 0x5412
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
AF_INET, AF_PACKET = 2, 17
CLONE_THREAD_FLAGS = 0x3D0F00     # what pthread_create passes
CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38


def read_filter(pid, index=0):
    """The classic BPF program of pid's seccomp filter number index (0 the
    first installed), as read by a tracer (PTRACE_SECCOMP_GET_FILTER, root
    only): [(code, jt, jf, k)]."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    def ptrace(req, addr=None, data=None):
        rc = libc.ptrace(req, pid, addr, data)
        if rc == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"ptrace {req:#x}: {os.strerror(err)}")
        return rc

    ptrace(PTRACE_SEIZE)
    try:
        ptrace(PTRACE_INTERRUPT)
        os.waitpid(pid, WALL)
        n = ptrace(PTRACE_SECCOMP_GET_FILTER, index)
        buf = ctypes.create_string_buffer(8 * n)
        ptrace(PTRACE_SECCOMP_GET_FILTER, index, buf)
    finally:
        ptrace(PTRACE_DETACH)
    return [struct.unpack_from("<HBBI", buf.raw, 8 * i) for i in range(n)]


def run_filter(prog, nr, args=(), arch=AUDIT_ARCH_X86_64):
    """What prog answers for system call nr with args: a classic BPF
    interpreter for the instructions libseccomp emits."""
    args = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:                        # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x60:                      # ld M[k]
            a = mem[k]
        elif code == 0x02:                      # st M[k]
            mem[k] = a
        elif code == 0x54:                      # and #k
            a &= k
        elif code == 0x05:                      # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            hit = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: a & k != 0}[code]
            pc += jt if hit else jf
        elif code == 0x06:                      # ret #k
            return k
        elif code == 0x16:                      # ret a
            return a
        else:
            raise AssertionError(f"BPF opcode {code:#x} at {pc - 1} not interpreted")


def run_filters(progs, nr, args=()):
    """What a stack of filters answers: the most restrictive action wins
    (the kernel compares the actions as signed numbers)."""
    def rank(ret):
        action = ret & 0xFFFF0000
        return action - (1 << 32) if action & 0x80000000 else action
    return min((run_filter(p, nr, args) for p in progs), key=rank)


@pytest.fixture
def x86_64():
    if platform.machine() != "x86_64":
        pytest.skip("the system call numbers here are x86-64's")


def test_filter_kills_what_an_attacker_wants(relayd, sink, x86_64):
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", sink.spec)
    r.wait_log(r"^relayd: sandbox on: \d+ system calls allowed$")
    prog = read_filter(r.pid)
    kill = RET_KILL_PROCESS

    def answer(name, *args):
        return run_filter(prog, NR[name], args)

    for name in ("setuid", "mount", "unshare", "bpf", "process_vm_writev", "execveat"):
        assert answer(name) == kill, name
    # ASan's leak check at exit attaches to the threads, and its report
    # may try to start llvm-symbolizer: that build lets both fail softly.
    assert answer("execve") == (RET_ERRNO | EPERM if SANITIZE else kill)
    if not SANITIZE:
        assert answer("ptrace") == kill
        # A tunnels' worker asks to die with its keeper; nothing else.
        assert answer("prctl", PR_SET_PDEATHSIG, 9) == RET_ALLOW
        assert answer("prctl", PR_SET_DUMPABLE, 1) == kill
    assert answer("clone", CLONE_NEWUSER | 17) == kill
    assert answer("clone", CLONE_THREAD_FLAGS) == RET_ALLOW
    assert answer("clone3") == RET_ERRNO | ENOSYS
    assert answer("socket", AF_PACKET, 3, 0) == kill
    assert answer("socket", AF_INET, 1, 0) == RET_ALLOW
    assert answer("ioctl", 0, TIOCSTI) == kill
    assert answer("ioctl", 0, FIONREAD) == RET_ALLOW
    # restart_syscall: a sleeping thread of a stopped and continued relayd.
    for name in ("read", "write", "accept4", "splice", "getrandom", "restart_syscall"):
        assert answer(name) == RET_ALLOW, name
    # The i386 entry point of an x86-64 process is no way around it.
    assert run_filter(prog, 0, arch=AUDIT_ARCH_I386) == kill
    sink_roundtrip(r_addr(r))


def r_addr(r):
    port = int(r.wait_log(r"^relayd: listening on 127\.0\.0\.1:(\d+)$").group(1))
    return tcp4(port)


def thread_statuses(pid):
    return {tid: proc_status(f"{pid}/task/{tid}") for tid in os.listdir(f"/proc/{pid}/task")}


def assert_filtered(statuses):
    got = {tid: (s["Seccomp"], s["Seccomp_filters"]) for tid, s in statuses.items()}
    assert got and all(v == ("2", "1") for v in got.values()), got


def test_every_thread_is_filtered(relayd, sink, x86_64):
    # A target given by name: each connection starts a getaddrinfo_a thread.
    port = int(sink.spec.rsplit(":", 1)[1])
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", f"localhost:{port}")
    sink_roundtrip(r_addr(r))
    assert_filtered(thread_statuses(r.pid))
    assert run_filter(read_filter(r.pid), NR["execve"]) != RET_ALLOW


def wait_all_stopped(pid, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        states = [proc_stat(f"{pid}/task/{t}")[0] for t in os.listdir(f"/proc/{pid}/task")]
        if all(s == "T" for s in states):
            return
        assert time.monotonic() < deadline, f"tasks of {pid} not stopped: {states}"
        time.sleep(0.01)


def test_stopped_and_continued_keeps_serving(relayd, sink):
    # A stop interrupts the resolver thread's timed wait; on SIGCONT the
    # kernel resumes it through restart_syscall, which must be allowed.
    port = int(sink.spec.rsplit(":", 1)[1])
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", f"localhost:{port}")
    addr = r_addr(r)
    sink_roundtrip(addr)
    os.kill(r.pid, signal.SIGSTOP)
    wait_all_stopped(r.pid)
    os.kill(r.pid, signal.SIGCONT)
    sink_roundtrip(addr)
    assert r.alive()


def test_fork_children_are_filtered(relayd, sink):
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", sink.spec, "--fork", "-v")
    addr = r_addr(r)
    with addr.connect() as held:
        held.sendall(b"x")
        child = int(r.wait_log(r"connection served by process (\d+)$").group(1))
        assert child in [pid for pid, _ in children_of(r.pid)]
        assert_filtered(thread_statuses(child))
    sink_roundtrip(addr)
    assert_filtered(thread_statuses(r.pid))


def test_no_sandbox_turns_it_off(relayd, sink):
    r = relayd("--listen", f"127.0.0.1:{free_port()}", "--to", sink.spec, "--no-sandbox")
    r.wait_log(r"^relayd: sandbox off \(--no-sandbox\)$")
    assert r.status()["Seccomp"] == "0"
    sink_roundtrip(r_addr(r))


def test_tunnel_worker_signals_only_itself(tunnel, sink, x86_64):
    """The tunnels' worker, the process that parses what an SSH server
    sends, runs as the relay process's user: its filter lets it signal
    itself only, never the relay process, its keeper or a process group."""
    rport = free_port()
    t = tunnel("-R", f"{rport}:{sink.spec}")
    sink_roundtrip(fwd(rport))
    relay = t.relayd.pid
    (keeper,) = [pid for pid, _ in children_of(relay)]
    (worker,) = [pid for pid, _ in children_of(keeper)]
    assert proc_status(worker)["Seccomp_filters"] == "2"
    progs = [read_filter(worker, i) for i in range(2)]
    kill, allow = RET_KILL_PROCESS, RET_ALLOW
    minus_one = (1 << 64) - 1

    def answer(name, *args):
        return run_filters(progs, NR[name], args)

    assert answer("kill", worker, signal.SIGTERM) == allow
    assert answer("tgkill", worker, worker, signal.SIGABRT) == allow
    for target in (relay, keeper, 0, minus_one):
        assert answer("kill", target, signal.SIGKILL) == kill, target
    assert answer("tgkill", relay, relay, signal.SIGKILL) == kill
    assert answer("tkill", relay, signal.SIGKILL) == kill
    assert answer("read") == allow
    # A filter can be added (only narrowing), with no flag.
    assert answer("seccomp", 1, 0) == allow
    assert answer("seccomp", 1, 1) == kill
    # The keeper, which signals its workers, keeps the plain list.
    assert proc_status(keeper)["Seccomp_filters"] == "1"
    assert run_filter(read_filter(keeper), NR["kill"], (worker, 1)) == allow
    sink_roundtrip(fwd(rport), seed=2)
