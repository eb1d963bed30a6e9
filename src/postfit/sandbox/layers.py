"""The isolation layers and how a sandboxed program is started with them (bubblewrap's arguments, the interpreter).

Which layers a machine really gives is decided by the start-up probe (probe.py); every verdict names them.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_UID = 65534  # nobody: the uid programs run as when postfit runs as root
STRONGEST = (
    "uid-drop", "userns", "pidns", "netns", "mountns", "ipcns", "utsns", "seccomp", "no-new-privs", "no-caps",
    "rlimits", "session", "scrubbed-env", "private-tmp", "landlock", "cgroup",
)  # fmt: skip
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
ENV_KEYS = ("PATH", "HOME", "LANG", "MALLOC_ARENA_MAX", "PWD")  # PWD: set by bwrap --chdir


@dataclass(frozen=True)
class Isolation:
    """How programs are started here: the verified `layers` are reported in every verdict."""

    python: str
    bwrap: str | None = None
    seccomp: bool = False
    uid: int | None = None  # drop to this uid/gid before exec (only when running as root)
    layers: tuple[str, ...] = field(default=())
    landlock: bool = False  # the launcher restricts itself with Landlock (launcher.landlock_ruleset)
    cgroup: bool = False  # each sandbox gets a cgroup bounding its memory, processes and CPU (cgroup.py)
    fork_server: bool = False  # programs may run as forks of a long-lived sandbox (server.py): verified like the rest
    problems: tuple[str, ...] = ()  # why a stronger candidate was not used (named in refusals, policy.py)

    def env(self, home: str) -> dict[str, str]:
        # MALLOC_ARENA_MAX: each glibc arena reserves 64 MiB of address space, so under RLIMIT_AS threads fail early
        return {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}

    @property
    def prefix(self) -> str:
        return str(Path(self.python).resolve().parents[1])

    def landlock_rules(self, workdir: str | None) -> dict:
        """What a program may read (the paths bubblewrap binds) and write (its own /tmp and /dev/shm, or without
        bubblewrap its host working directory), for launcher.landlock_ruleset."""
        read = [*SYSTEM_DIRS, self.prefix, "/proc", "/dev"]
        write = ["/tmp", "/dev/shm"] if self.bwrap else [workdir]
        return {"read": read, "write": write, "files": ["/dev/null"]}

    def argv(self, launcher_args: list[str], *, seccomp_fd: int | None, tmp_mb: int) -> list[str]:
        cmd = [self.python, "-I", "-S", *launcher_args]
        if not self.bwrap:
            return cmd
        args = [
            self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--as-pid-1",  # the launcher is the namespace's init: when it exits, the kernel kills everything left
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        for top in SYSTEM_DIRS[1:]:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        if not self.prefix.startswith("/usr"):
            args += ["--ro-bind", self.prefix, self.prefix]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_mb << 20), "--tmpfs", "/tmp"]
        args += ["--size", str(16 << 20), "--tmpfs", "/dev/shm", "--chdir", "/tmp", "--clearenv"]
        args += ["--remount-ro", "/", "--remount-ro", "/dev"]  # only /tmp and /dev/shm stay writable
        for k, v in self.env("/tmp").items():
            args += ["--setenv", k, v]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        return args + cmd


def _world_executable(path: str) -> bool:
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & stat.S_IXOTH for d in [p, *p.parents]) and bool(os.stat(p).st_mode & stat.S_IROTH)


def sandbox_python(dropping_uid: bool) -> str:
    """This interpreter's base executable, or the system's python3 when the sandbox uid cannot reach it."""
    own = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    for cand in (own, "/usr/bin/python3"):
        if os.path.exists(cand) and (not dropping_uid or _world_executable(cand)):
            return os.path.realpath(cand)
    raise RuntimeError(f"no Python interpreter the sandbox user can execute (tried {own}, /usr/bin/python3)")
