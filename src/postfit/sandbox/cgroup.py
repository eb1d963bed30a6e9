"""A cgroup per sandbox (a fresh per-program sandbox, or a fork server and every program it forks): the memory, the
number of processes and the CPU of a whole program with all its children, where rlimits bound each process alone.

cgroup v2 first: a child of POSTFIT_CGROUP (a delegated directory, e.g. from `systemd-run --user --scope -p
Delegate=yes`) or of this process's own cgroup when that accepts the memory, pids and cpu controllers for its
children. Else cgroup v1, one directory per controller under this process's own. Else none: the verdict's layers
then lack "cgroup" (where /sys/fs/cgroup is read-only, as in most containers without a delegated subtree).

The host places the sandbox's processes in it before the program arrives on its code pipe (`adopt`), so every
process the program starts is inside; a memory limit hit there is an OOM kill counted by the cgroup, and the
verdict says `memory`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
_count = itertools.count()


def _own_paths() -> dict[str, str]:
    """controller ("" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            out[name] = path
    return out


def _v2_root() -> Path | None:
    for p in (ROOT, ROOT / "unified"):
        if (p / "cgroup.controllers").exists():
            return p
    return None


def _v2_base() -> Path | None:
    """A v2 directory whose children get memory, pids and cpu: POSTFIT_CGROUP, or this process's own cgroup."""
    root = _v2_root()
    if root is None:
        return None
    base = Path(os.environ["POSTFIT_CGROUP"]) if os.environ.get("POSTFIT_CGROUP") else root / _own_paths()[""][1:]
    try:
        if not set(CONTROLLERS) <= set((base / "cgroup.controllers").read_text().split()):
            return None
        (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
        return base
    except OSError:  # not ours to write, or it holds processes (cgroup v2's no-internal-process rule)
        return None


@functools.cache
def where() -> tuple[int, dict[str, Path]] | None:
    """(version, controller -> parent directory) that sandbox cgroups are created under, or None."""
    base = _v2_base()
    if base is not None:
        return 2, {c: base for c in CONTROLLERS}
    own = _own_paths()
    parents = {c: ROOT / c / own.get(c, "/")[1:] for c in CONTROLLERS}
    if all(os.access(p, os.W_OK) and (p / "tasks").exists() for p in parents.values()):
        return 1, parents
    return None


def problem() -> str:
    return ("no writable cgroup for the sandbox (cgroup v2 with memory, pids and cpu delegated, e.g. "
            "POSTFIT_CGROUP=<dir from systemd-run --user --scope -p Delegate=yes>, or cgroup v1 writable): "
            "memory and processes are bounded per process only.")  # fmt: skip


class Cgroup:
    """One sandbox's cgroup: created with its limits, processes adopted into it, read after each program."""

    def __init__(self, memory_mb: int, pids: int, cpus: float):
        found = where()
        if found is None:
            raise OSError(problem())
        self.version, parents = found
        name = f"postfit-{os.getpid()}-{next(_count)}"
        self.dirs = {c: parents[c] / name for c in CONTROLLERS}
        for d in dict.fromkeys(self.dirs.values()):
            d.mkdir()
        self._has_peak = self.version == 2 and self._path("memory", "memory.peak").exists()  # Linux >= 5.19
        self._fds: dict[Path, int] = {}  # files read or written for every program, opened once
        self._oom_last: int | None = None
        self._set: dict[str, str] = {}  # what each limit file holds: a fork server's next program often repeats it
        try:
            self.limit_pids(pids)
            quota = max(1000, int(cpus * CPU_PERIOD_US))
            if self.version == 2:
                self._write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                self._write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(quota))
            self.limit_memory(memory_mb)
        except OSError:
            self.remove()
            raise

    def _path(self, controller: str, name: str) -> Path:
        return self.dirs[controller] / name

    def _fd(self, controller: str, name: str) -> int:
        path = self._path(controller, name)
        if path not in self._fds:
            try:
                self._fds[path] = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except PermissionError:  # read-only files (memory.events)
                self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fds[path]

    def _write(self, controller: str, name: str, value: str) -> None:
        os.pwrite(self._fd(controller, name), value.encode(), 0)
        self._set[name] = value

    def _limit(self, controller: str, name: str, value: str) -> None:
        if self._set.get(name) != value:
            self._write(controller, name, value)

    def _read(self, controller: str, name: str) -> str:
        return os.pread(self._fd(controller, name), 4096, 0).decode()

    def limit_pids(self, pids: int) -> None:
        self._limit("pids", "pids.max", str(pids))

    def limit_memory(self, memory_mb: int) -> None:
        """All processes together: memory_mb of RAM and no swap."""
        limit = str(memory_mb << 20)
        if self._set.get("memory") == limit:
            return
        if self.version == 2:
            self._write("memory", "memory.max", limit)
            if self._path("memory", "memory.swap.max").exists():
                self._write("memory", "memory.swap.max", "0")
        else:
            try:  # memsw must stay >= the limit: raise it first, lower it last
                self._write("memory", "memory.memsw.limit_in_bytes", "-1")
            except OSError:
                pass  # no swap accounting
            self._write("memory", "memory.limit_in_bytes", limit)
            try:
                self._write("memory", "memory.memsw.limit_in_bytes", limit)
            except OSError:
                pass
        self._set["memory"] = limit

    def adopt(self, pid: int) -> None:
        """Move `pid` and every descendant into this cgroup: a parent before its children are listed, so a child
        forked meanwhile is either listed or born inside."""
        procs = "cgroup.procs"
        for d in dict.fromkeys(self.dirs.values()):
            (d / procs).write_text(str(pid))
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return
        for child in children:
            self.adopt(int(child))

    def begin(self) -> None:
        """Before a program: the peak and the OOM count read by `end` start from here."""
        self._oom0 = self._oom_last if self._oom_last is not None else self._oom_kills()
        if self.version == 1:
            self._write("memory", "memory.max_usage_in_bytes", "0")
        elif self._has_peak:
            try:  # Linux >= 6.12: a peak of its own for this (kept) descriptor
                os.pwrite(self._fd("memory", "memory.peak"), b"reset", 0)
            except OSError:
                pass

    def end(self) -> dict:
        """{"memory_peak": bytes since `begin`, "oom_kills": OOM kills since `begin`}; {} if it is gone."""
        try:
            return self._stats()
        except (OSError, ValueError):
            return {}

    def _stats(self) -> dict:
        if self.version == 1:
            peak = int(self._read("memory", "memory.max_usage_in_bytes"))
        elif self._has_peak:
            peak = int(self._read("memory", "memory.peak"))
        else:
            peak = int(self._read("memory", "memory.current"))
        self._oom_last = self._oom_kills()  # the next program's baseline, without reading it again
        return {"memory_peak": peak, "oom_kills": self._oom_last - self._oom0}

    def _oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        fields = dict(line.split() for line in self._read("memory", name).splitlines() if line.strip())
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        """Kill whatever is left inside and remove the directories."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(100):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    threading.Event().wait(0.01)  # its last processes are still exiting
            else:
                log.warning("could not remove the sandbox cgroup %s", d)
