"""A seccomp filter, assembled by hand as classic BPF and handed to bubblewrap (`--seccomp FD`).

A deny-list on top of the namespaces: it closes kernel interfaces that untrusted Python has no business with and
that have a history of escapes (ptrace, io_uring, bpf, perf, keyrings, mounts, new namespaces, terminal
injection) and refuses every socket family but AF_UNIX, so network access fails even where a network namespace
could not be created. Only x86_64 is described; elsewhere the layer reports itself missing.
"""

from __future__ import annotations

import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38

# x86_64 numbers of the calls refused with EPERM.
# fmt: off
DENIED = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "vhangup": 153, "modify_ldt": 154,
    "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
    "clock_settime": 227, "mbind": 237, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "migrate_pages": 256, "unshare": 272, "move_pages": 279, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_getfd": 438, "mount_setattr": 442,
    # IPC objects outlive their creator inside the sandbox's IPC namespace, so a fork server's next program could
    # find them: refuse creating any (multiprocessing's POSIX semaphores live in /dev/shm, which is wiped instead)
    "shmget": 29, "semget": 64, "msgget": 68, "mq_open": 240,
}
# fmt: on
SYS_SOCKET, SYS_CLONE, SYS_CLONE3, SYS_IOCTL = 41, 56, 435, 16
AF_UNIX = 1
TIOCSTI = 0x5412
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# classic BPF opcodes
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
NR, ARCH, ARG0, ARG1 = 0, 4, 16, 24  # offsets in struct seccomp_data (low 32 bits of args on little-endian)


def supported() -> bool:
    return platform.machine() == "x86_64"


def _assemble(prog: list[tuple]) -> bytes:
    """prog: (code, jt, jf, k) rows and label strings; jt/jf may name a label."""
    labels, rows = {}, []
    for p in prog:
        if isinstance(p, str):
            labels[p] = len(rows)
        else:
            rows.append(p)
    out = []
    for i, (code, jt, jf, k) in enumerate(rows):
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError("BPF jump out of range")
        out.append(struct.pack("=HBBI", code, jt, jf, k))
    return b"".join(out)


def build_filter() -> bytes:
    """The filter as `struct sock_filter[]` bytes, the format `bwrap --seccomp` reads."""
    p: list = [
        (LD_ABS, 0, 0, ARCH),
        (JEQ, 1, 0, AUDIT_ARCH_X86_64),
        (RET, 0, 0, RET_KILL_PROCESS),  # another ABI (i386 via int 0x80) would bypass the numbers below
        (LD_ABS, 0, 0, NR),
        (JGE, "kill", 0, 0x40000000),  # x32 ABI
    ]
    p += [(JEQ, "eperm", 0, nr) for nr in sorted(DENIED.values())]
    p += [
        (JEQ, "enosys", 0, SYS_CLONE3),  # its flags live in memory BPF cannot read: glibc falls back to clone
        (JEQ, "socket", 0, SYS_SOCKET),
        (JEQ, "clone", 0, SYS_CLONE),
        (JEQ, "ioctl", 0, SYS_IOCTL),
        (RET, 0, 0, RET_ALLOW),
        "socket",
        (LD_ABS, 0, 0, ARG0),
        (JEQ, "allow", "eperm", AF_UNIX),
        "clone",
        (LD_ABS, 0, 0, ARG0),
        (JSET, "eperm", "allow", CLONE_NAMESPACES),
        "ioctl",
        (LD_ABS, 0, 0, ARG1),
        (JEQ, "eperm", "allow", TIOCSTI),
        "allow",
        (RET, 0, 0, RET_ALLOW),
        "eperm",
        (RET, 0, 0, RET_ERRNO | EPERM),
        "enosys",
        (RET, 0, 0, RET_ERRNO | ENOSYS),
        "kill",
        (RET, 0, 0, RET_KILL_PROCESS),
    ]
    return _assemble(p)
