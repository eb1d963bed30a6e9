"""The sandbox's standard building blocks: the seccomp policy through libseccomp (x86_64 and aarch64), Landlock,
and a cgroup bounding a whole program with all its children."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from postfit.sandbox import cgroup, isolation, missing_layers, probe, seccomp
from postfit.sandbox.launcher import landlock_abi
from postfit.sandbox.run import Limits, execute

JEQ, JGE, JGT, LD_ABS = 0x15, 0x35, 0x25, 0x20
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# The same calls have other numbers on the two architectures: (x86_64, aarch64).
NUMBERS = {"ptrace": (101, 117), "bpf": (321, 280), "mount": (165, 40), "unshare": (272, 97), "socket": (41, 198),
           "clone": (56, 220), "ioctl": (16, 29), "io_uring_setup": (425, 425), "keyctl": (250, 219)}  # fmt: skip
ALLOWED = {"nanosleep": (35, 101), "mmap": (9, 222), "execve": (59, 221)}


def _needs(available: bool, what: str, ci_has_it: bool = True) -> None:
    """Skip, saying why, where this machine lacks `what`; fail instead under CI when CI's machine has it (the
    kernel's features do; a writable cgroup depends on the container a CI run gets, so it only skips)."""
    if not available:
        if os.environ.get("CI") and ci_has_it:
            pytest.fail(f"CI must test {what}: this machine lacks it")
        pytest.skip(f"this kernel or container lacks {what}")


def _has_cgroup() -> bool:
    return not missing_layers() and "cgroup" in isolation().layers


def _constants(bpf: bytes) -> tuple[set[int], set[int]]:
    """The values the filter compares syscall numbers and architectures with (JEQ), and its range checks."""
    rows = [struct.unpack("=HBBI", bpf[i : i + 8]) for i in range(0, len(bpf), 8)]
    return {k for code, _, _, k in rows if code == JEQ}, {k for code, _, _, k in rows if code in (JGE, JGT)}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_policy_builds_for_each_architecture_without_loading(arch):
    _needs(seccomp.supported(), "libseccomp (apt-get install libseccomp2)")
    bpf = seccomp.build_filter(arch)
    compared, ranges = _constants(bpf)
    col = 0 if arch == "x86_64" else 1
    other = {"x86_64": "aarch64", "aarch64": "x86_64"}[arch]
    assert AUDIT_ARCH[arch] in compared and AUDIT_ARCH[other] not in compared
    assert {n[col] for n in NUMBERS.values()} <= compared  # by name, resolved for this architecture
    assert not {n[col] for n in ALLOWED.values()} & compared  # e.g. aarch64's nanosleep is x86_64's ptrace
    if arch == "x86_64":
        assert 0x40000000 - 1 in ranges or 0x40000000 in ranges  # x32 calls: another ABI, killed
    # Built, not loaded: this process is still unfiltered.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    assert status["Seccomp"].strip() == "0"


def test_the_filter_refuses_what_it_names_inside_the_sandbox():
    _needs(not missing_layers() and "seccomp" in isolation().layers, "the full sandbox with seccomp")
    from postfit.sandbox import run_program

    program = ("import ctypes, os, socket\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
               "for name, nr in (('unshare', 272), ('ptrace', 101)):\n"
               "    out.append((name, libc.syscall(nr, 0, 0, 0, 0), ctypes.get_errno()))\n"
               "try:\n    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\nexcept PermissionError:\n"
               "    out.append(('inet6', -1, 1))\nsocket.socket(socket.AF_UNIX).close()\nprint(out)\n")  # fmt: skip
    if os.uname().machine != "x86_64":
        pytest.skip("the program names x86_64 numbers")
    v = run_program(program, expect="[('unshare', -1, 1), ('ptrace', -1, 1), ('inet6', -1, 1)]")
    assert v.status == "passed", v


def _weak_isolation(monkeypatch):
    """The sandbox as the fail-closed policy's opt-in weak mode builds it: no bubblewrap on this machine."""
    monkeypatch.setattr(probe.shutil, "which", lambda name: None)
    probe.isolation.cache_clear()
    try:
        return probe.isolation()
    finally:
        probe.isolation.cache_clear()


@pytest.fixture
def shared_dir():
    """A directory in /tmp that anyone may write, the sandbox user included (pytest's own are closed to it)."""
    d = Path(tempfile.mkdtemp(prefix="postfit-shared-"))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d)


def test_landlock_denies_writes_outside_the_programs_directory_in_weak_mode(monkeypatch, shared_dir):
    _needs(landlock_abi() > 0, "Landlock (Linux >= 5.13 with lsm=landlock)")
    iso = _weak_isolation(monkeypatch)
    assert iso.bwrap is None and "landlock" in iso.layers and "netns" not in iso.layers
    target = shared_dir / "written"  # only Landlock stops this write
    program = (
        f"import os\nopen('mine', 'w').write('ok')\nprint(open('mine').read())\n"
        f"try:\n    open({str(target)!r}, 'w').write('x')\n    print('wrote outside')\n"
        f"except PermissionError:\n    print('denied')\n"
        f"try:\n    os.listdir('/etc')\n    print('listed /etc')\n"
        f"except PermissionError:\n    print('denied')\n"
    )
    raw = execute(iso, "io", program, limits=Limits(timeout=10))
    assert raw.returncode == 0 and raw.stdout.decode().split() == ["ok", "denied", "denied"], raw.stderr
    assert not target.exists()
    # The same sandbox without its Landlock layer writes there: the denial above is Landlock's.
    raw = execute(dataclasses.replace(iso, landlock=False), "io", program, limits=Limits(timeout=10))
    assert raw.stdout.decode().split()[:2] == ["ok", "wrote"] and target.exists()


@pytest.mark.parametrize("reuse", [False, True], ids=["fresh", "fork"])
def test_a_cgroup_bounds_the_memory_of_all_children_together(reuse):
    _needs(_has_cgroup(), "a writable cgroup for the sandbox", ci_has_it=False)
    from postfit.sandbox.server import server_for

    iso = isolation()
    server = server_for(iso, Limits().tmp_mb) if reuse else None
    assert (server is not None) == reuse
    twelve = ("import os, time\nfor i in range(12):\n    if os.fork() == 0:\n        x = b'1' * (300 << 20)\n"
              "        time.sleep(3)\n        os._exit(0)\nwhile True:\n    try:\n        os.wait()\n"
              "    except ChildProcessError:\n        break\n")  # fmt: skip
    raw = execute(iso, "io", twelve, limits=Limits(timeout=30, memory_mb=512), server=server)
    from postfit.sandbox.verdict import classify

    assert classify(raw, "io")[0] == "memory" and raw.cgroup["oom_kills"] >= 1
    assert 0 < raw.cgroup["memory_peak"] <= 512 << 20
    # Four children of 100 MB each, all alive at once: under the limit, and counted together.
    four = twelve.replace("range(12)", "range(4)").replace("300 << 20", "100 << 20")
    server = server_for(iso, Limits().tmp_mb) if reuse else None
    raw = execute(iso, "io", four, limits=Limits(timeout=30, memory_mb=512), server=server)
    assert classify(raw, "io")[0] == "passed" and raw.cgroup["oom_kills"] == 0
    assert raw.cgroup["memory_peak"] >= 380 << 20  # no single process held more than 100 MB


def test_without_a_writable_cgroup_the_layer_is_missing_and_named(monkeypatch):
    monkeypatch.setattr(cgroup, "where", lambda: None)
    probe.isolation.cache_clear()
    try:
        iso = probe.isolation()
    finally:
        probe.isolation.cache_clear()
    assert not iso.cgroup and "cgroup" not in iso.layers
    assert any("no writable cgroup" in p for p in iso.problems)


def test_cli_memory_bounds_the_whole_program(tmp_path):
    _needs(_has_cgroup(), "a writable cgroup for the sandbox", ci_has_it=False)
    program = tmp_path / "twelve.py"
    program.write_text(
        "import os, time\nfor i in range(12):\n    if os.fork() == 0:\n"
        "        x = b'1' * (300 << 20)\n        time.sleep(3)\n        os._exit(0)\n"
        "while True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n"
    )
    proc = subprocess.run([sys.executable, "-m", "postfit", "sandbox", "run", str(program), "--memory", "512",
                           "--timeout", "30", "--json"], capture_output=True, text=True)  # fmt: skip
    verdict = json.loads(proc.stdout)
    assert proc.returncode == 0 and verdict["status"] == "memory" and "cgroup" in verdict["layers"], proc.stderr
