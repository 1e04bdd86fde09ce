"""Confine a sandbox worker process: resource limits and a seccomp filter.

A sandbox worker runs untrusted JavaScript in QuickJS, whose memory-safety bugs
are reachable from plain JavaScript. `apply()` is called once by the worker,
after its imports and before it reads any request, so that code which escapes
the engine still cannot start programs, open sockets, create processes, write
files or lift the limits. The seccomp filter denies what is dangerous and
allows the rest: an allow-list would have to track every syscall CPython,
glibc and QuickJS may ever make, and a miss kills the worker in production.

Threads stay allowed (QuickJS's binding and the wall-clock watchdog use them);
`RLIMIT_NPROC` is not set because it counts the threads of the whole user.
"""

from __future__ import annotations

import errno
import math
import os
import resource
import socket
from dataclasses import asdict, dataclass
from typing import Any

GiB = 1024 * 1024 * 1024

# Cut off from the worker entirely; each fails with EPERM.
# fmt: off
DENIED_SYSCALLS = (
    # programs and processes (clone without CLONE_THREAD is handled below)
    "execve", "execveat", "fork", "vfork",
    # network and local sockets
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # changes to the file system
    "creat", "truncate", "ftruncate", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "utimensat", "utimes",
    # limits, identity, other processes and the kernel
    "setrlimit", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "name_to_handle_at", "open_by_handle_at", "memfd_create",
    # administration, which matters when the service runs as root
    "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "mount_setattr", "quotactl", "syslog",
    "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "vhangup", "fanotify_init", "capset", "setfsuid", "setfsgid", "personality",
    "setpriority", "sched_setscheduler", "sched_setparam", "ioprio_set", "migrate_pages", "move_pages",
    "kcmp", "process_madvise",
    # io_uring performs its operations without passing through seccomp
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)
# fmt: on

# Their arguments live in memory seccomp cannot read; ENOSYS makes glibc fall
# back to `clone` and `openat`, whose flags the filter can check.
UNSUPPORTED_SYSCALLS = ("clone3", "openat2")

_CLONE_THREAD = 0x00010000
_OPEN_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


@dataclass(frozen=True)
class ProcessLimits:
    """Per-process limits of a sandbox worker (a mapping's own are `Limits`).

    `cpu_seconds` is a soft lifetime budget: when a worker has used that much
    CPU it answers its current batch and retires, and the pool starts a fresh
    one; the hard limit (`cpu_grace_seconds` later) kills it. A worker retires
    the same way once its resident memory has reached `retire_rss_bytes`: each
    cached mapping's runtime keeps the garbage of its last call until its next
    collection, up to the memory limit, and many of them would otherwise fill
    the address space, where an allocation fails in whichever mapping asks next.
    """

    address_space_bytes: int = 1 * GiB
    open_files: int = 32
    cpu_seconds: int = 3600
    cpu_grace_seconds: int = 60
    retire_rss_bytes: int = GiB // 2


@dataclass(frozen=True)
class Confinement:
    """What `apply()` put in force, reported by every worker to the pool."""

    rlimits: dict[str, list[int]]
    seccomp: bool
    seccomp_detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Confinement:
        return cls(rlimits=data["rlimits"], seccomp=data["seccomp"], seccomp_detail=data["seccomp_detail"])


def apply(limits: ProcessLimits) -> Confinement:
    """Set rlimits, then load the seccomp filter where the platform has one;
    call once, before any input. The report says what was applied."""
    rlimits = _set_rlimits(limits)
    seccomp, detail = _load_seccomp()
    return Confinement(rlimits=rlimits, seccomp=seccomp, seccomp_detail=detail)


def _set_rlimits(limits: ProcessLimits) -> dict[str, list[int]]:
    cpu_used = math.ceil(sum(os.times()[:2]))  # user + system seconds so far
    wanted = {
        "RLIMIT_AS": (limits.address_space_bytes, limits.address_space_bytes),
        "RLIMIT_NOFILE": (limits.open_files, limits.open_files),
        "RLIMIT_FSIZE": (0, 0),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_CPU": (cpu_used + limits.cpu_seconds, cpu_used + limits.cpu_seconds + limits.cpu_grace_seconds),
    }
    applied: dict[str, list[int]] = {}
    for name, (soft, hard) in wanted.items():
        which = getattr(resource, name)
        _, ceiling = resource.getrlimit(which)
        if ceiling != resource.RLIM_INFINITY:  # only root may raise a hard limit
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(which, (soft, hard))
        applied[name] = [soft, hard]
    return applied


def _load_seccomp() -> tuple[bool, str]:
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError) as error:  # RuntimeError: libseccomp.so missing
        return False, f"libseccomp unavailable: {error}"
    try:
        syscall_filter = _build_filter(seccomp)
        syscall_filter.load()
    except OSError as error:
        return False, f"seccomp filter not loaded: {error}"
    return True, "deny-list filter: exec, process creation, sockets, file writes, limit changes"


def _build_filter(seccomp: Any) -> Any:
    """The deny-list filter; foreign architectures and x32 calls kill the process."""
    syscall_filter = seccomp.SyscallFilter(seccomp.ALLOW)
    syscall_filter.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    syscall_filter.set_attr(seccomp.Attr.CTL_TSYNC, 1)
    deny = seccomp.ERRNO(errno.EPERM)

    def rule(action: int, name: str, *args: Any) -> None:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number >= 0:  # absent on this architecture (e.g. `open` on arm64)
            syscall_filter.add_rule(action, number, *args)

    for name in DENIED_SYSCALLS:
        rule(deny, name)
    for name in UNSUPPORTED_SYSCALLS:
        rule(seccomp.ERRNO(errno.ENOSYS), name)
    rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, 0))
    rule(deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))
    # Signals only to itself: glibc's raise()/abort() use tgkill on the own pid.
    own_pid = os.getpid()
    for name in ("tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        rule(deny, name, seccomp.Arg(0, seccomp.NE, own_pid))
    for flag in _OPEN_WRITE_FLAGS:
        rule(deny, "open", seccomp.Arg(1, seccomp.MASKED_EQ, flag, flag))
        rule(deny, "openat", seccomp.Arg(2, seccomp.MASKED_EQ, flag, flag))
    return syscall_filter


def probe() -> dict[str, str]:
    """Try each forbidden operation harmlessly and say how it went.

    Every attempt targets a path that does not exist, so an unconfined process
    fails with ENOENT and changes nothing, while a confined one gets EPERM.
    """
    missing = "/nonexistent-flowhook-probe/x"

    def exec_program() -> None:
        os.execv(missing, [missing])

    def spawn_process() -> None:
        os.waitpid(os.posix_spawn(missing, [missing], {}), 0)

    def open_socket() -> None:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()

    def write_file() -> None:
        open(missing, "w").close()

    def signal_parent() -> None:
        os.kill(os.getppid(), 0)

    attempts = {
        "exec": exec_program,
        "spawn": spawn_process,
        "socket": open_socket,
        "write": write_file,
        "signal": signal_parent,
    }
    outcomes = {name: _outcome(attempt) for name, attempt in attempts.items()}
    outcomes["read"] = _outcome(lambda: open(os.__file__, "rb").close())
    return outcomes


def _outcome(attempt: Any) -> str:
    try:
        attempt()
    except OSError as error:
        return "blocked" if error.errno == errno.EPERM else f"allowed ({errno.errorcode.get(error.errno or 0, '?')})"
    return "allowed"
