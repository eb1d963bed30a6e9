"""Start one sandboxed program, feed it, collect its output under caps, and kill everything it started.

The parent is safe to call from multi-threaded trainers: nothing runs between fork and exec but CPython's own C
code (uid/gid drop, new session); the limits are applied by the launcher after exec.
"""

from __future__ import annotations

import functools
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from postfit.sandbox.cgroup import Cgroup
from postfit.sandbox.layers import Isolation

LAUNCHER = Path(__file__).with_name("launcher.py")
SANDBOX_TASKS = 2  # bubblewrap and the launcher (the PID namespace's init), in the cgroup beside the program
START_TIMEOUT = 30.0  # seconds for the sandbox to start; longer is an infrastructure error, not the program's


@dataclass(frozen=True)
class Limits:
    """Per-run limits. `timeout` is wall-clock seconds from the moment the launcher starts."""

    timeout: float = 5.0
    memory_mb: int = 1024  # RLIMIT_AS of each process
    output_bytes: int = 1 << 20  # stdout + stderr; more kills the program
    fsize_mb: int = 16  # largest file the program may write
    tmp_mb: int = 64  # size of its private /tmp
    nofile: int = 64
    nproc: int = 32  # processes + threads, counted per sandbox (its own user namespace, and its cgroup)
    cpus: float = 1.0  # CPU time per wall-clock second for all its processes together (cgroup cpu.max)


@dataclass
class Raw:
    """What the parent observed; `verdict.classify` turns it into a status."""

    started: bool = False
    timed_out: bool = False
    output_exceeded: bool = False
    returncode: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    frames: list = field(default_factory=list)
    frame_error: str | None = None
    infra_error: str | None = None  # the sandbox failed after the program started (e.g. a fork server died)
    cgroup: dict = field(default_factory=dict)  # the sandbox cgroup's memory peak and OOM kills (cgroup.Cgroup.end)
    seconds: float = 0.0

    @property
    def signal(self) -> int | None:
        """The signal that ended the program (bubblewrap reports it as 128 + n)."""
        rc = self.returncode
        if rc is None:
            return None
        return -rc if rc < 0 else rc - 128 if rc > 128 else None


@functools.cache
def _launcher_source() -> str:
    return LAUNCHER.read_text()


@functools.cache
def _seccomp_filter() -> bytes:
    from postfit.sandbox.seccomp import build_filter

    return build_filter()


def _frame(obj) -> bytes:
    data = json.dumps(obj).encode()
    return len(data).to_bytes(4, "big") + data


def _parse_frames(buf: bytes, raw: Raw) -> None:
    pos = 0
    while pos + 4 <= len(buf):
        n = int.from_bytes(buf[pos : pos + 4], "big")
        if pos + 4 + n > len(buf):
            break
        try:
            raw.frames.append(json.loads(buf[pos + 4 : pos + 4 + n]))
        except ValueError as e:
            raw.frame_error = f"malformed report: {e}"
            return
        pos += 4 + n
    if pos != len(buf):
        raw.frame_error = "truncated report"


def kill_sandboxed(proc: subprocess.Popen, iso: Isolation) -> None:
    """SIGKILL the sandbox's PID-namespace init: the kernel then kills every process inside before it exits."""
    if iso.bwrap:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def spawn(iso: Isolation, args: list[str], *, tmp_mb: int, fds: list[int], stdin, stdout, stderr,
          cwd: str = "/") -> subprocess.Popen:  # fmt: skip
    """Start the launcher inside the sandbox `iso` with `args`; `fds` stay open in it. Raises OSError."""
    seccomp_r = None
    if iso.bwrap and iso.seccomp:
        seccomp_r, seccomp_w = os.pipe()
        os.write(seccomp_w, _seccomp_filter())  # well under a pipe buffer
        os.close(seccomp_w)
        fds = [*fds, seccomp_r]
    try:
        argv = iso.argv(["-c", _launcher_source(), *args], seccomp_fd=seccomp_r, tmp_mb=tmp_mb)
        drop = {"user": iso.uid, "group": iso.uid, "extra_groups": []} if iso.uid is not None else {}
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=fds,
                                start_new_session=True, env=iso.env(cwd), cwd=cwd, **drop)  # fmt: skip
    finally:
        if seccomp_r is not None:
            os.close(seccomp_r)


def execute(iso: Isolation, mode: str, program: str, *, tests: str | None = None, calls: list | None = None,
            stdin: bytes | None = None, limits: Limits = Limits(), on_start=None, server=None) -> Raw:  # fmt: skip
    """Run `program` once, in a fresh sandbox or in a fresh child of `server` (a ForkServer); never raises for
    anything the program does. Infrastructure failures come back as `raw.infra_error` or `raw.started` False."""
    raw = Raw()
    report_r, report_w = os.pipe()
    code_r, code_w = os.pipe()
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    child_fds = [report_w, code_r, stdin_r, out_w, err_w]
    workdir = proc = cg = None
    cfg = {
        "mode": mode, "report_fd": report_w, "code_fd": code_r, "cpu_s": math.ceil(limits.timeout) + 1,
        "memory_mb": limits.memory_mb, "fsize_mb": limits.fsize_mb, "nofile": limits.nofile,
        "nproc": limits.nproc if "userns" in iso.layers or (iso.bwrap and not iso.layers) else 0,
    }  # fmt: skip
    try:
        t0 = time.monotonic()
        if iso.landlock and iso.bwrap and server is None:  # a fork server's children use its ruleset
            cfg["landlock"] = iso.landlock_rules(None)
        if server is not None:
            cfg["nproc"] += bool(cfg["nproc"])  # the server itself counts
            cg = server.cgroup
            try:
                if cg is not None:
                    cg.limit_memory(limits.memory_mb)
                    cg.limit_pids(limits.nproc + SANDBOX_TASKS + 1)
                    cg.begin()
                server.start(cfg, [stdin_r, out_w, err_w, report_w, code_r])
            except OSError as e:  # ServerError included
                raw.stderr = f"fork server failed: {e}".encode()
                return raw
            kill = server.discard
        else:
            if iso.bwrap:
                cwd = "/"
            else:  # no mount namespace: a fresh host directory, owned by the sandbox user, removed afterwards
                workdir = cwd = tempfile.mkdtemp(prefix="postfit-sandbox-")
                if iso.uid is not None:
                    os.chown(workdir, iso.uid, iso.uid)
                if iso.landlock:
                    cfg["landlock"] = iso.landlock_rules(workdir)
            try:
                cg = Cgroup(limits.memory_mb, limits.nproc + SANDBOX_TASKS, limits.cpus) if iso.cgroup else None
                proc = spawn(iso, [json.dumps(cfg)], tmp_mb=limits.tmp_mb, fds=[report_w, code_r], stdin=stdin_r,
                             stdout=out_w, stderr=err_w, cwd=cwd)  # fmt: skip
                if cg is not None:  # before the program arrives on its code pipe: all it starts is inside
                    cg.adopt(proc.pid)
                    cg.begin()
            except OSError as e:
                raw.stderr = f"could not start the sandbox: {e}".encode()
                if proc is not None:
                    kill_sandboxed(proc, iso)
                    proc.wait()
                return raw
            kill = functools.partial(kill_sandboxed, proc, iso)
        for fd in child_fds:
            os.close(fd)
        child_fds = []
        if on_start:
            on_start(proc or server.proc)
        payload = _frame({"program": program, "calls": calls or []})
        if tests is not None:
            payload += _frame({"tests": tests})
        writes = {code_w: payload, stdin_w: stdin or b""}
        code_w = stdin_w = None
        deadline = _pump(out_r, err_r, kill, raw, limits, t0, report_r, writes)
        if server is not None:
            _finish_server(server, raw, deadline)
        else:
            try:  # the pipes are closed, but the program may still run: the deadline still holds
                raw.returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) if deadline else None)
            except subprocess.TimeoutExpired:
                raw.timed_out = raw.started
                kill()
                raw.returncode = proc.wait()
        raw.seconds = time.monotonic() - t0
        if cg is not None and (server is None or server.cgroup is cg):  # a discarded server removed its own
            raw.cgroup = cg.end()
        return raw
    finally:
        for fd in [report_r, code_w, stdin_w, out_r, err_r, *child_fds]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if cg is not None and server is None:
            cg.remove()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _finish_server(server, raw: Raw, deadline: float | None) -> None:
    if deadline is None:
        return  # killed (timeout, output cap): the server is gone already
    try:
        raw.returncode = server.finish(deadline)
    except OSError as e:
        raw.infra_error = f"fork server failed: {e}"
        return
    if raw.returncode is None:
        raw.timed_out = raw.started


def _pump(out_r: int, err_r: int, kill, raw: Raw, limits: Limits, t0: float, report_r: int,
          writes: dict[int, bytes]) -> float | None:  # fmt: skip
    """Feed stdin and the code pipe, read stdout/stderr/report under caps and deadlines until every pipe is closed.

    Returns the deadline still running, or None if it killed the sandbox. Closes the write ends."""
    sel = selectors.DefaultSelector()
    bufs = {out_r: bytearray(), err_r: bytearray(), report_r: bytearray()}
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    for fd, data in list(writes.items()):
        os.set_blocking(fd, False)
        if data:
            sel.register(fd, selectors.EVENT_WRITE)
        else:
            os.close(fd)
            del writes[fd]
    report = bufs[report_r]
    report_cap = 16 << 20
    deadline = t0 + START_TIMEOUT
    try:
        while len(sel.get_map()) > len(writes):
            if not raw.started and report:
                raw.started = report[:1] == b"S"
                deadline = time.monotonic() + limits.timeout
            left = deadline - time.monotonic()
            if left <= 0:
                raw.timed_out = raw.started
                kill()
                raise _Stop
            for key, _ in sel.select(timeout=min(left, 1.0)):
                fd = key.fd
                if fd in writes:
                    try:
                        n = os.write(fd, writes[fd][:65536])
                    except (BrokenPipeError, BlockingIOError) as e:
                        n = 0 if isinstance(e, BlockingIOError) else len(writes[fd])
                    writes[fd] = writes[fd][n:]
                    if not writes[fd]:
                        sel.unregister(fd)
                        os.close(fd)
                        del writes[fd]
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                bufs[fd] += chunk
                if len(bufs[out_r]) + len(bufs[err_r]) > limits.output_bytes or len(report) > report_cap:
                    raw.output_exceeded = True
                    kill()
                    raise _Stop
    except _Stop:
        deadline = None
    finally:
        sel.close()
        for fd in writes:
            os.close(fd)
        writes.clear()
    raw.started = raw.started or report[:1] == b"S"
    raw.stdout, raw.stderr = bytes(bufs[out_r]), bytes(bufs[err_r])
    if raw.started:
        _parse_frames(bytes(report[1:]), raw)
    return deadline


class _Stop(Exception):
    pass
