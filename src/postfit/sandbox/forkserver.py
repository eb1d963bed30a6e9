"""The fork server's inside half: one long-lived, already-restricted sandbox that forks a fresh child per program.

This source runs inside the sandbox, exec'd into launcher.py's globals (`launcher.py '{"mode": "serve"}'`), so like
the launcher it uses only the standard library and runs on any Python >= 3.8. It is PID 1 of the sandbox's PID
namespace, already inside every layer bubblewrap sets up (namespaces, seccomp, uid drop, no-new-privs, no
capabilities). For each program the host sends, over a socket only this process holds, a small config (mode and
limits, never code, tests or expected output) and the program's five pipes. The server forks; the child closes the
socket, takes the pipes as fds 0-4, starts its own session and returns to the launcher, which applies this
program's rlimits (only the child lowers them) and reads the program itself from its code pipe.

Why a later program cannot see or be affected by an earlier one:
- when the child exits, the server SIGKILLs every other process in the namespace (`kill(-1)` from init spares
  only init) and reaps them all before it reports, so nothing survives into the next program;
- it empties /tmp and /dev/shm and restores their modes; / and /dev are mounted read-only, and their listings
  are checked anyway; SysV IPC and POSIX message queues are refused by seccomp, so no IPC object outlives a run;
- the server's memory, which every child starts as a copy of, holds no program's code, tests or output: those
  travel on pipes that only the child reads; environment, rlimits, signal dispositions and cwd are the server's,
  which no program can change;
- programs cannot stop or inspect the server: as PID 1 it ignores every signal it has no handler for (SIGKILL
  and SIGSTOP included) when sent from inside the namespace, and it is not dumpable, so /proc/1/{mem,fd,environ}
  stay closed (ptrace is refused by seccomp).
Anything unexpected (a bad message, a failed cleanup) ends the server; the host then starts a fresh one.
"""

import fcntl
import gc
import json
import os
import resource  # noqa: F401 - imported once here, not in every child (launcher.apply_limits uses it)
import signal
import socket
import sys

N_FDS = 5  # stdin, stdout, stderr, report, code: the fds the child gets as 0-4
WIPED = ("/tmp", "/dev/shm")  # private tmpfs mounts, emptied after every program
FIXED = ("/", "/dev")  # read-only; their listings must never change
# Imported once here, as multiprocessing's forkserver preloads: each program then finds them in sys.modules instead
# of importing them again (typing alone costs milliseconds). Modules without state a program could observe across
# runs only: never `random`, whose seed would then repeat in every child.
PRELOAD = ("typing", "math", "collections", "itertools", "functools", "re", "string", "copy", "heapq", "bisect")


def serve(cfg):
    """Serve programs until the host hangs up; returns only in a forked child, with that program's config."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a handler would let programs signal PID 1
    _set_not_dumpable()  # noqa: F821 - from launcher.py
    ctl = socket.socket(fileno=cfg["ctl_fd"])
    layout = {d: sorted(os.listdir(d)) for d in FIXED}
    modes = {d: os.stat(d).st_mode & 0o7777 for d in WIPED}
    # Landlock's ruleset is built once here; each child restricts itself with it before anything else runs.
    ruleset = landlock_ruleset(cfg["landlock"]) if cfg.get("landlock") else None  # noqa: F821 - launcher.py
    for name in PRELOAD:
        __import__(name)
    gc.freeze()  # what the children inherit stays shared, not copied when their collector touches it
    ctl.sendall(b"ready")
    while True:
        job, fds = _receive(ctl)
        if job is None:
            sys.exit(0)  # the host hung up
        pid = os.fork()
        if pid == 0:
            ctl.close()
            if ruleset is not None:
                landlock_restrict(ruleset)  # noqa: F821 - from launcher.py
            return _child_config(job, fds)
        for fd in fds:
            os.close(fd)
        status = _reap(pid)
        clean = _wipe(modes) and all(sorted(os.listdir(d)) == names for d, names in layout.items())
        ctl.sendall(json.dumps({"returncode": status, "clean": clean}).encode())
        if not clean:
            sys.exit(3)  # a fresh server for the next program


def _receive(ctl):
    msg, anc, flags, _ = ctl.recvmsg(1 << 16, socket.CMSG_SPACE(4 * N_FDS))
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, len(data) - 3, 4)]
    if not msg and not fds:
        return None, []
    if len(fds) != N_FDS or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise RuntimeError("malformed request from the host")
    return json.loads(msg), fds


def _child_config(job, fds):
    os.setsid()  # its own session and process group
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in fds]  # out of the way of 0-4 first
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(N_FDS, 1 << 16)  # the host socket, the originals, anything else the server had
    job["report_fd"], job["code_fd"] = 3, 4
    sys.argv = ["-c", json.dumps(job)]  # what a fresh launcher would see
    return job


def _reap(pid):
    """Wait for the program's first process, then kill and reap everything left in the namespace."""
    while True:
        p, status = os.waitpid(-1, 0)  # orphans reparented to us are reaped on the way
        if p == pid:
            break
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # from PID 1: every process in the namespace but us
        except ProcessLookupError:
            pass
        try:  # blocks until one dies; an orphan is our child by the time its parent is reaped
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)  # a program may have made it unreadable
        for entry in os.listdir(path):
            _remove(path + "/" + entry)
        os.rmdir(path)
    else:
        os.unlink(path)


def _wipe(modes):
    try:
        for top, mode in modes.items():
            os.chmod(top, mode)
            for entry in os.listdir(top):
                _remove(top + "/" + entry)
        return True
    except Exception:  # noqa: BLE001 - e.g. a tree too deep to recurse: this server is discarded
        return False
