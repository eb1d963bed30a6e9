"""A lock file per task, so any number of workers on one (shared) filesystem share a study's work, none twice.

`<dir>/.lock` holds {"host", "pid", "since", "heartbeat"}. It is created with O_CREAT | O_EXCL, so exactly one
worker gets it; the holder refreshes `heartbeat` every HEARTBEAT_S seconds from a thread. A lock whose holder is
dead is taken over: on the same host at once (its pid is gone), from another host once its heartbeat is older than
STALE_S. Taking over renames the stale file away first, so two workers that both see it stale cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from postfit.distributed import from_main, is_main
from postfit.errors import DiskFull, is_disk_full

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_S = 120.0
POLL_S = 1.0


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def holder(path: Path) -> dict | None:
    """Who holds the lock at `path` (None: nobody, or a file being written)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: dict | None, now: float | None = None) -> bool:
    """True when the holder described by `info` is dead (see the module docstring)."""
    if info is None:
        return False
    if info.get("host") == socket.gethostname():
        return not _alive(int(info.get("pid", -1)))
    return (now or time.time()) - float(info.get("heartbeat", 0)) > STALE_S


class TaskLock:
    """The lock of one task directory; `acquire()` never blocks, `acquire_or_wait(done)` does."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / ".lock"
        self._stop: threading.Event | None = None
        self._beater: threading.Thread | None = None

    def _create(self) -> None:
        """Create the lock file, or raise FileExistsError: O_EXCL lets exactly one worker create it."""
        info = {**_me(), "since": time.time(), "heartbeat": time.time()}
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
        except BaseException as e:
            self.path.unlink(missing_ok=True)
            if is_disk_full(e):
                raise DiskFull(self.path, e) from e
            raise

    def _unwritten(self) -> bool:
        """An empty or broken lock file that nobody has touched for a heartbeat: its creator was killed between
        creating and writing it (a live one writes it within microseconds)."""
        try:
            return time.time() - self.path.stat().st_mtime > HEARTBEAT_S
        except FileNotFoundError:
            return False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                self._create()
            except FileExistsError:
                info = holder(self.path)
                if not (is_stale(info) or (info is None and self._unwritten())):
                    return False
                stale = self.path.with_name(f".lock.stale.{os.getpid()}.tmp")
                try:
                    os.rename(self.path, stale)  # only one of the workers that saw it stale gets to move it
                except FileNotFoundError:
                    continue
                if holder(stale) != info:  # another worker took it over in between: that was its fresh lock
                    with contextlib.suppress(FileExistsError):
                        os.link(stale, self.path)
                    stale.unlink(missing_ok=True)
                    return False
                who = f"{info.get('host')}:{info.get('pid')}" if info else "an unwritten lock file"
                log.warning("%s: took over the lock of %s (dead)", self.path.parent, who)
                stale.unlink(missing_ok=True)
                continue
            self._stop = threading.Event()
            self._beater = threading.Thread(target=self._beat, args=(self._stop,), daemon=True)
            self._beater.start()
            return True
        return False

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            info = holder(self.path)
            if info is None or (info.get("host"), info.get("pid")) != tuple(_me().values()):
                return  # taken over: not ours to refresh
            info["heartbeat"] = time.time()
            tmp = self.path.with_name(f".lock.beat.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(info))
                os.replace(tmp, self.path)
            except OSError:  # a full disk, or the holder's own sweep (io.remove_temporaries): beat again later
                log.warning("%s: heartbeat not written", self.path, exc_info=True)

    def release(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._beater.join()  # a beat in flight must not write the file back after it is removed
            self._stop = self._beater = None
        info = holder(self.path)
        if info is not None and (info.get("host"), info.get("pid")) == tuple(_me().values()):
            self.path.unlink(missing_ok=True)

    def acquire_or_wait(self, done: Callable[[], bool]) -> bool:
        """Wait until the task is `done()` (False: someone else did it) or its lock is ours (True: do it)."""
        while True:
            if done():
                return False
            if self.acquire():
                if done():  # finished between the check and the lock
                    self.release()
                    return False
                return True
            time.sleep(POLL_S)


@contextlib.contextmanager
def claim(directory: Path, done: Callable[[], bool] | None = None) -> Iterator[bool]:
    """Hold DIRECTORY's lock for the block. Yields True when this worker holds it, False when another live worker
    does (without `done`), or when `done()` became true while waiting for it (with `done`). The main process of a
    launch takes the lock and every process gets its answer, so call it on all of them. Released when the block
    ends, however it ends."""
    lock = TaskLock(directory)
    mine = from_main(lambda: lock.acquire_or_wait(done) if done is not None else lock.acquire())
    try:
        yield mine
    finally:
        if mine and is_main():
            lock.release()
