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

from postfit.sandbox.layers import Isolation

LAUNCHER = Path(__file__).with_name("launcher.py")
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
    nproc: int = 32  # processes + threads, counted per sandbox (its own user namespace)


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


def _kill(proc: subprocess.Popen, iso: Isolation) -> None:
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


def execute(iso: Isolation, mode: str, program: str, *, tests: str | None = None, calls: list | None = None,
            stdin: bytes | None = None, limits: Limits = Limits(), on_start=None) -> Raw:  # fmt: skip
    """Run `program` once in the sandbox described by `iso`; never raises for anything the program does."""
    raw = Raw()
    report_r, report_w = os.pipe()
    code_r, code_w = os.pipe()
    stdin_r, stdin_w = os.pipe()
    seccomp_r = None
    workdir = None
    child_fds = [report_w, code_r, stdin_r]
    try:
        if iso.bwrap and iso.seccomp:
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, _seccomp_filter())  # well under a pipe buffer
            os.close(seccomp_w)
            child_fds.append(seccomp_r)
        cfg = {
            "mode": mode, "report_fd": report_w, "code_fd": code_r, "cpu_s": math.ceil(limits.timeout) + 1,
            "memory_mb": limits.memory_mb, "fsize_mb": limits.fsize_mb, "nofile": limits.nofile,
            "nproc": limits.nproc if "userns" in iso.layers or (iso.bwrap and not iso.layers) else 0,
        }  # fmt: skip
        argv = iso.argv(["-c", _launcher_source(), json.dumps(cfg)], seccomp_fd=seccomp_r, tmp_mb=limits.tmp_mb)
        if iso.bwrap:
            cwd = "/"
        else:  # no mount namespace: a fresh host directory, owned by the sandbox user, removed afterwards
            workdir = cwd = tempfile.mkdtemp(prefix="postfit-sandbox-")
            if iso.uid is not None:
                os.chown(workdir, iso.uid, iso.uid)
        drop = {"user": iso.uid, "group": iso.uid, "extra_groups": []} if iso.uid is not None else {}
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, stdin=stdin_r, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=child_fds,
                start_new_session=True, env=iso.env(cwd), cwd=cwd, **drop,
            )  # fmt: skip
        except OSError as e:
            raw.stderr = f"could not start the sandbox: {e}".encode()
            return raw
        for fd in child_fds:
            os.close(fd)
        child_fds = []
        if on_start:
            on_start(proc)
        payload = _frame({"program": program, "calls": calls or []})
        if tests is not None:
            payload += _frame({"tests": tests})
        _pump(proc, iso, raw, limits, t0, report_r, {code_w: payload, stdin_w: stdin or b""})
        code_w = stdin_w = None
        raw.returncode = proc.wait()
        raw.seconds = time.monotonic() - t0
        return raw
    finally:
        for fd in [report_r, code_w, stdin_w, *child_fds]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _pump(proc, iso, raw: Raw, limits: Limits, t0: float, report_r: int, writes: dict[int, bytes]) -> None:
    """Feed stdin and the code pipe, read stdout/stderr/report under caps and deadlines; close every fd."""
    sel = selectors.DefaultSelector()
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), report_r: bytearray()}
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
                _kill(proc, iso)
                break
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
                out = len(bufs[proc.stdout.fileno()]) + len(bufs[proc.stderr.fileno()])
                if out > limits.output_bytes or len(report) > report_cap:
                    raw.output_exceeded = True
                    _kill(proc, iso)
                    raise _Stop
    except _Stop:
        pass
    finally:
        sel.close()
        for fd in writes:
            os.close(fd)
        writes.clear()
        proc.stdout.close()
        proc.stderr.close()
    raw.started = raw.started or report[:1] == b"S"
    raw.stdout, raw.stderr = (bytes(b) for b in list(bufs.values())[:2])  # dict order: stdout, stderr, report
    if raw.started:
        _parse_frames(bytes(report[1:]), raw)


class _Stop(Exception):
    pass
