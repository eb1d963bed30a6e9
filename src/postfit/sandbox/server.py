"""The fork server's host half: one long-lived sandbox per worker thread; every program runs in a fresh fork of it.

Starting bubblewrap and an interpreter costs ~20 ms per program; forking an already-restricted template costs
about 1 ms. forkserver.py says what runs inside and why one program cannot reach the next. The host keeps the
protocol strict: a server that dies, answers late or unexpectedly, or fails its cleanup is discarded (its whole
PID namespace killed), and `api.run_program` retries the program in a fresh per-program sandbox, so an
infrastructure failure is never scored as the program's answer. Timeouts and output floods discard the server
too: killing the namespace is the one way that is sure to stop everything the program started.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from postfit.sandbox.cgroup import Cgroup
from postfit.sandbox.layers import Isolation
from postfit.sandbox.run import START_TIMEOUT, kill_sandboxed, spawn

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("forkserver.py")


class ServerError(OSError):
    """The fork server failed (infrastructure, not the program)."""


@functools.cache
def _source() -> str:
    return SOURCE.read_text()


class ForkServer:
    """A started sandbox that forks one child per program. Not thread-safe: one per worker thread."""

    def __init__(self, iso: Isolation, tmp_mb: int):
        self.iso, self.tmp_mb, self.thread = iso, tmp_mb, threading.current_thread()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        err_r, err_w = os.pipe()
        self.proc: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None  # the server's and all its programs'; each program's limits set in run.py
        try:
            self.cgroup = Cgroup(1024, 64, 1.0) if iso.cgroup else None
            landlock = iso.landlock_rules(None) if iso.landlock else None
            self.proc = spawn(
                iso, [json.dumps({"mode": "serve", "ctl_fd": theirs.fileno(), "landlock": landlock}), _source()],
                tmp_mb=tmp_mb,
                fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_w,
            )  # fmt: skip
            if self.cgroup is not None:
                self.cgroup.adopt(self.proc.pid)
        except OSError as e:
            if self.proc is not None:
                kill_sandboxed(self.proc, iso)
                self.proc.wait()
            if self.cgroup is not None:
                self.cgroup.remove()
            ours.close()
            os.close(err_r)
            raise ServerError(f"could not start the fork server: {e}") from None
        finally:
            theirs.close()
            os.close(err_w)
        self.ctl, self.err, self.pidfd = ours, err_r, None
        os.set_blocking(err_r, False)
        if self._recv(time.monotonic() + START_TIMEOUT) != b"ready":
            detail = self._stderr()
            self.discard()
            raise ServerError(f"fork server did not start: {detail}")
        try:  # a handle on the server itself (its namespace's init): it exits only after every process inside
            self.pidfd = os.pidfd_open(self.host_pids()[1])
        except (OSError, IndexError, AttributeError):
            pass  # then bubblewrap's exit is what discard() waits for

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def host_pids(self) -> list[int]:
        """bubblewrap's pid and the server's (its PID-namespace init), as the host sees them; for tests."""
        if self.proc is None:
            return []
        try:
            inner = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            inner = []
        return [self.proc.pid, *map(int, inner)]

    def start(self, cfg: dict, fds: list[int]) -> None:
        """Hand the server one program's config and its five pipe ends (stdin, stdout, stderr, report, code)."""
        if not self.alive:
            raise ServerError("fork server is gone")
        try:
            socket.send_fds(self.ctl, [json.dumps(cfg).encode()], fds)
        except OSError as e:
            self.discard()
            raise ServerError(f"fork server unreachable: {e}") from None

    def finish(self, deadline: float) -> int | None:
        """The program's exit status once everything it started is dead and its files are gone; None on timeout."""
        try:
            reply = self._recv(deadline)
            if reply is None:
                self.discard()
                return None
            msg = json.loads(reply)
            if not (isinstance(msg, dict) and type(msg.get("returncode")) is int):
                raise ServerError(f"unexpected reply from the fork server: {reply[:200]!r}")
        except (ServerError, ValueError) as e:
            self.discard()
            raise ServerError(str(e)) from None
        if msg.get("clean") is not True:
            log.info("fork server could not clean up after a program; starting a fresh one")
            self.discard()
        return msg["returncode"]

    def _recv(self, deadline: float) -> bytes | None:
        ready, _, _ = select.select([self.ctl], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        data = self.ctl.recv(4096)
        if not data:
            raise ServerError(f"fork server exited: {self._stderr()}")
        return data

    def _stderr(self) -> str:
        try:
            return os.read(self.err, 4000).decode(errors="replace").strip()
        except OSError:
            return ""

    def discard(self) -> None:
        """Kill the server's whole PID namespace (every program process with it)."""
        if self.proc is None:
            return
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass  # already gone
            if not select.select([self.pidfd], [], [], 5)[0]:
                log.warning("fork server of bubblewrap %d did not exit", self.proc.pid)
            os.close(self.pidfd)
        else:
            kill_sandboxed(self.proc, self.iso)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("fork server %d did not exit", self.proc.pid)
        self.proc = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self.ctl.close()
        os.close(self.err)


_local = threading.local()
_lock = threading.Lock()
_servers: list[ForkServer] = []


def server_for(iso: Isolation, tmp_mb: int) -> ForkServer | None:
    """This thread's fork server, started on first use and replaced when discarded; None where there is none."""
    if not iso.fork_server:
        return None
    s = getattr(_local, "server", None)
    if s is not None and s.alive and s.tmp_mb == tmp_mb and s.iso is iso:
        return s
    if s is not None:
        s.discard()
    close_orphans()
    try:
        s = ForkServer(iso, tmp_mb)
    except ServerError as e:
        log.warning("%s; running this program in its own sandbox", e)
        return None
    _local.server = s
    with _lock:
        _servers.append(s)
    return s


def live_servers() -> list[ForkServer]:
    with _lock:
        return [s for s in _servers if s.alive]


def close_orphans() -> None:
    """Discard the servers of threads that have ended (e.g. a finished batch's workers)."""
    with _lock:
        gone = [s for s in _servers if not s.thread.is_alive() or s.proc is None]
        _servers[:] = [s for s in _servers if s not in gone]
    for s in gone:
        s.discard()


@atexit.register
def close_all() -> None:
    with _lock:
        gone, _servers[:] = list(_servers), []
    for s in gone:
        s.discard()
