"""Which isolation layers this machine gives, chosen strongest-first and verified by a probe at start-up.

The probe runs a small program through the real sandbox and checks each layer from the inside (its uid map,
its view of /, /proc and the network, its seccomp state, its rlimits, its environment). A layer counts only if
the probe saw it work; every verdict names the verified layers, and a missing one is logged once as a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_UID = 65534  # nobody: the uid programs run as when postfit runs as root
STRONGEST = (
    "uid-drop", "userns", "pidns", "netns", "mountns", "ipcns", "utsns", "seccomp", "no-new-privs", "no-caps",
    "rlimits", "session", "scrubbed-env", "private-tmp",
)  # fmt: skip
ENV_KEYS = ("PATH", "HOME", "LANG", "MALLOC_ARENA_MAX", "PWD")  # PWD: set by bwrap --chdir


@dataclass(frozen=True)
class Isolation:
    """How programs are started here: the verified `layers` are reported in every verdict."""

    python: str
    bwrap: str | None = None
    seccomp: bool = False
    uid: int | None = None  # drop to this uid/gid before exec (only when running as root)
    layers: tuple[str, ...] = field(default=())
    fork_server: bool = False  # programs may run as forks of a long-lived sandbox (server.py): verified like the rest
    problems: tuple[str, ...] = ()  # why a stronger candidate was not used (named in refusals, policy.py)

    def env(self, home: str) -> dict[str, str]:
        # MALLOC_ARENA_MAX: each glibc arena reserves 64 MiB of address space, so under RLIMIT_AS threads fail early
        return {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}

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
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        prefix = str(Path(self.python).resolve().parents[1])
        if not prefix.startswith("/usr"):
            args += ["--ro-bind", prefix, prefix]
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


PROBE = r"""
import json, os, resource, socket
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); sock = "allowed"
except PermissionError:
    sock = "eperm"
except OSError as e:
    sock = "oserror %s" % e.errno
ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({
    "uid_map": open("/proc/self/uid_map").read().split(), "uid": os.getuid(), "pid": os.getpid(),
    "pids": [p for p in os.listdir("/proc") if p.isdigit()], "root": sorted(os.listdir("/")),
    "ifaces": ifaces, "seccomp": st["Seccomp"].strip(), "nnp": st["NoNewPrivs"].strip(),
    "capeff": st["CapEff"].strip(), "as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "env": sorted(os.environ), "sid": os.getsid(0), "sock": sock,
    "hostname": os.uname().nodename, "cwd": os.getcwd(), "cwd_entries": os.listdir("."),
}))
"""


def _verify(iso: Isolation, server=None) -> tuple[str, ...]:
    from postfit.sandbox.run import Limits, execute

    outer = {}

    def on_start(proc) -> None:  # the uid every sandbox process descends from, seen from the host
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return  # already gone: the layer stays unverified
        outer["uid"] = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])

    raw = execute(iso, "io", PROBE, limits=Limits(timeout=20.0, memory_mb=512), on_start=on_start, server=server)
    if not raw.started or raw.returncode != 0:
        raise RuntimeError(f"sandbox probe failed to run: {raw.stderr[-2000:].decode(errors='replace')}")
    f = json.loads(raw.stdout)
    seen = []
    userns = f["uid_map"] != ["0", "0", "4294967295"]
    if userns:
        seen.append("userns")
    if iso.uid is not None and outer.get("uid") == iso.uid:
        seen.append("uid-drop")
    if f["pid"] < 10 and len(f["pids"]) < 5:
        seen.append("pidns")
    if f["ifaces"] == ["lo"] or (iso.bwrap and not [i for i in f["ifaces"] if i != "lo"]):
        seen.append("netns")
    if not {"root", "home", "work", "etc"} & set(f["root"]):
        seen.append("mountns")
    if f["hostname"] == "sandbox":
        seen += ["ipcns", "utsns"]  # created by the same bwrap call as the UTS namespace that proves it
    if f["seccomp"] == "2" and f["sock"] == "eperm":
        seen.append("seccomp")
    if f["nnp"] == "1":
        seen.append("no-new-privs")
    if int(f["capeff"], 16) == 0:
        seen.append("no-caps")
    if f["as"] == 512 << 20:
        seen.append("rlimits")
    if f["sid"] == f["pid"] or (f["sid"] == 1 and "pidns" in seen):  # bwrap's init leads the sandbox session
        seen.append("session")
    if set(f["env"]) <= set(ENV_KEYS):
        seen.append("scrubbed-env")
    if not f["cwd_entries"]:
        seen.append("private-tmp")
    return tuple(name for name in STRONGEST if name in seen)


def _with_fork_server(iso: Isolation) -> Isolation:
    """Turn the fork server on only if a program run through it shows every layer a fresh sandbox shows."""
    from postfit.sandbox.server import ForkServer

    try:
        server = ForkServer(iso, 64)
        try:
            seen = _verify(iso, server)
        finally:
            server.discard()
    except Exception as e:  # noqa: BLE001 - reported; programs then get one sandbox each
        log.warning("fork server unavailable, one sandbox per program (slower): %s", e)
        return iso
    if seen != iso.layers:
        log.warning("fork server disabled: its programs lack layers %s", sorted(set(iso.layers) - set(seen)))
        return iso
    return dataclasses.replace(iso, fork_server=True)


@functools.cache
def isolation() -> Isolation:
    """The strongest isolation this machine gives, verified once per process; warns once about what is missing."""
    from postfit.sandbox import seccomp

    root = os.geteuid() == 0
    uid = SANDBOX_UID if root else None
    python = sandbox_python(root)
    bwrap = shutil.which("bwrap")
    candidates = []
    if bwrap:
        candidates.append(Isolation(python, bwrap, seccomp.supported(), uid))
    candidates.append(Isolation(python, None, False, uid))
    problems = [] if bwrap else ["bubblewrap (`bwrap`) is not installed."]
    for cand in candidates:
        try:
            layers = _verify(cand)
        except Exception as e:  # noqa: BLE001 - a failed layer is reported, and the next candidate tried
            problems.append(f"{'bubblewrap' if cand.bwrap else 'plain subprocess'} sandbox failed its probe: {e}")
            continue
        iso = Isolation(cand.python, cand.bwrap, cand.seccomp, cand.uid, layers, problems=tuple(problems))
        expected = [x for x in STRONGEST if not (x == "uid-drop" and not root)]
        missing = [x for x in expected if x not in layers]
        if missing or problems:
            log.warning(
                "SANDBOX IS WEAKER THAN IT SHOULD BE: missing layers %s. %s Model-written code is refused (verdict "
                "`error`) unless the user opts in to the weaker layers (postfit.sandbox.policy).",
                ", ".join(missing) or "none", " ".join(problems),
            )  # fmt: skip
        if iso.bwrap and "pidns" in layers:
            iso = _with_fork_server(iso)
        log.info("sandbox layers: %s (python %s, fork server %s)", ", ".join(layers), python, iso.fork_server)
        return iso
    raise RuntimeError("no working sandbox: " + " ".join(problems))
