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
from pathlib import Path

from postfit.sandbox import cgroup, seccomp
from postfit.sandbox.launcher import landlock_abi
from postfit.sandbox.layers import ENV_KEYS, SANDBOX_UID, STRONGEST, Isolation, sandbox_python
from postfit.sandbox.run import Limits, execute
from postfit.sandbox.server import ForkServer

log = logging.getLogger(__name__)

PROBE = r"""
import errno, json, os, resource, socket
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); sock = "allowed"
except PermissionError:
    sock = "eperm"
except OSError as e:
    sock = "oserror %s" % e.errno
ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
def denied(act):
    try:
        act(); return "allowed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
outside = os.path.join(os.path.dirname(os.getcwd()), "postfit-probe-%d" % os.getpid())
def write_outside():
    os.close(os.open(outside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)); os.unlink(outside)
print(json.dumps({
    "uid_map": open("/proc/self/uid_map").read().split(), "uid": os.getuid(), "pid": os.getpid(),
    "pids": [p for p in os.listdir("/proc") if p.isdigit()],
    "host_dirs": [d for d in ("root", "home", "work", "etc") if os.path.exists("/" + d)],
    "list_root": denied(lambda: os.listdir("/")), "list_usr": denied(lambda: os.listdir("/usr")),
    "write_outside": denied(write_outside),
    "ifaces": ifaces, "seccomp": st["Seccomp"].strip(), "nnp": st["NoNewPrivs"].strip(),
    "capeff": st["CapEff"].strip(), "as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "env": sorted(os.environ), "sid": os.getsid(0), "sock": sock,
    "hostname": os.uname().nodename, "cwd": os.getcwd(), "cwd_entries": os.listdir("."),
}))
"""


def _verify(iso: Isolation, server=None) -> tuple[str, ...]:
    outer = {}

    def on_start(proc) -> None:  # the uid every sandbox process descends from, seen from the host
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return  # already gone: the layer stays unverified
        outer["uid"] = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])
        try:
            outer["cgroup"] = "/postfit-" in Path(f"/proc/{proc.pid}/cgroup").read_text()
        except OSError:
            pass

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
    if not f["host_dirs"]:
        seen.append("mountns")
    if f["list_root"] == "EACCES" and f["list_usr"] == "allowed" and f["write_outside"] != "allowed":
        seen.append("landlock")  # / is readable without it, with or without bubblewrap
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
    if iso.cgroup and outer.get("cgroup") and raw.cgroup.get("memory_peak", 0) > 0:
        seen.append("cgroup")  # the sandbox was inside its cgroup, which counted the probe's memory
    return tuple(name for name in STRONGEST if name in seen)


def _with_fork_server(iso: Isolation) -> Isolation:
    """Turn the fork server on only if a program run through it shows every layer a fresh sandbox shows."""
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
    root = os.geteuid() == 0
    uid = SANDBOX_UID if root else None
    python = sandbox_python(root)
    bwrap = shutil.which("bwrap")
    problems = [] if bwrap else ["bubblewrap (`bwrap`) is not installed."]
    # Each optional layer is tried on and then off: one that fails its probe must not cost bubblewrap.
    landlock = [True, False] if landlock_abi() else [False]
    cgroups = [True, False] if cgroup.where() else [False]
    options = [(x, y) for x in landlock for y in cgroups]
    candidates = []
    if bwrap:
        candidates += [Isolation(python, bwrap, seccomp.supported(), uid, landlock=x, cgroup=y) for x, y in options]
    candidates += [Isolation(python, None, False, uid, landlock=x, cgroup=y) for x, y in options]
    if not landlock_abi():
        problems.append("the kernel has no Landlock (Linux >= 5.13 with lsm=landlock).")
    if not cgroup.where():
        problems.append(cgroup.problem())
    if bwrap and not seccomp.supported():
        problems.append("no seccomp filter: libseccomp is missing (apt-get install libseccomp2).")
    for cand in candidates:
        try:
            layers = _verify(cand)
        except Exception as e:  # noqa: BLE001 - a failed layer is reported, and the next candidate tried
            problems.append(f"{'bubblewrap' if cand.bwrap else 'plain subprocess'} sandbox failed its probe: {e}")
            continue
        iso = dataclasses.replace(cand, layers=layers, problems=tuple(problems))
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
