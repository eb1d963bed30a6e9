"""The seccomp filter, built by libseccomp (through pyseccomp) from syscall names, for x86_64 and aarch64, and handed
to bubblewrap as BPF (`--seccomp FD`).

A deny-list on top of the namespaces: it closes kernel interfaces that untrusted Python has no business with and
that have a history of escapes (ptrace, io_uring, bpf, perf, keyrings, mounts, new namespaces, terminal
injection) and refuses every socket family but AF_UNIX, so network access fails even where a network namespace
could not be created. libseccomp resolves the names per architecture (a call an architecture lacks is skipped)
and kills a process that calls through another ABI of the machine (i386's int 0x80, x32 on x86_64), which would
otherwise bypass the numbers. Without libseccomp (Debian's `libseccomp2`) the layer reports itself missing.
"""

from __future__ import annotations

import errno
import functools
import os
import platform

# Refused with EPERM, by name.
DENIED = (
    "ptrace", "syslog", "uselib", "personality", "vhangup", "modify_ldt", "pivot_root", "adjtimex", "chroot", "acct",
    "settimeofday", "mount", "umount2", "swapon", "swapoff", "reboot", "sethostname", "setdomainname", "iopl",
    "ioperm", "init_module", "delete_module", "quotactl", "lookup_dcookie", "clock_settime", "mbind", "kexec_load",
    "add_key", "request_key", "keyctl", "migrate_pages", "unshare", "move_pages", "perf_event_open",
    "name_to_handle_at", "open_by_handle_at", "clock_adjtime", "setns", "process_vm_readv", "process_vm_writev",
    "kcmp", "finit_module", "kexec_file_load", "bpf", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_getfd",
    "mount_setattr",
    # IPC objects outlive their creator inside the sandbox's IPC namespace, so a fork server's next program could
    # find them: refuse creating any (multiprocessing's POSIX semaphores live in /dev/shm, which is wiped instead)
    "shmget", "semget", "msgget", "mq_open",
)  # fmt: skip
AF_UNIX = 1
TIOCSTI = 0x5412
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
ARCHES = {"x86_64": "X86_64", "aarch64": "AARCH64", "arm64": "AARCH64"}


@functools.cache
def _lib():
    """pyseccomp, or None where it or libseccomp.so.2 is missing."""
    try:
        import pyseccomp
    except (ImportError, OSError):
        return None
    return pyseccomp


def supported() -> bool:
    return _lib() is not None and platform.machine() in ARCHES


def policy(arch: str | None = None):
    """The filter for `arch` ("x86_64" or "aarch64"; default this machine's) as a libseccomp SyscallFilter, not
    loaded. Raises RuntimeError where libseccomp is missing."""
    sc = _lib()
    if sc is None:
        raise RuntimeError("libseccomp not available: pip install pyseccomp, apt-get install libseccomp2")
    name = ARCHES[arch or platform.machine()]
    f = sc.SyscallFilter(sc.ALLOW)
    target = getattr(sc.Arch, name)
    if target != sc.system_arch():
        f.add_arch(target)
        f.remove_arch(sc.Arch.NATIVE)
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # another ABI's numbers would bypass the rules below
    eperm = sc.ERRNO(errno.EPERM)
    for call in DENIED:
        f.add_rule(eperm, call)
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags live in memory BPF cannot read: glibc falls back
    f.add_rule(eperm, "socket", sc.Arg(0, sc.NE, AF_UNIX))
    for flag in CLONE_NAMESPACES:  # clone's flags are its first argument on both architectures
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))  # the kernel reads an unsigned int
    return f


def bpf(f) -> bytes:
    """A SyscallFilter as `struct sock_filter[]` bytes, the format `bwrap --seccomp` reads."""
    fd = os.memfd_create("postfit-seccomp")
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            f.export_bpf(out)
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def build_filter(arch: str | None = None) -> bytes:
    return bpf(policy(arch))
