"""The program that runs inside the sandbox: applies the limits after exec, then runs untrusted code.

The parent passes this file's source to `python -I -S -c` (so nothing needs to be readable inside the sandbox
but the interpreter) with one JSON argument: the mode, the limits and the numbers of the inherited pipes. It uses
only the standard library and must run on any Python >= 3.8 the sandbox finds. The parent imports it too, for the
value codec (`encode` / `decode`), so both sides share one definition of "plain data".

Modes:
  io     run the program as __main__ with the given stdin; the parent compares stdout itself.
  calls  run the program, then call its functions with data arguments; each result goes back encoded, and the
         parent compares it with expected values that never enter the sandbox.
  serve  become a fork server (forkserver.py, passed as a second argument): each program then runs in a fork.
  tests  assert-style tests (HumanEval). The launcher becomes a *judge*: it forks the program into a child that
         cannot reach the judge's report pipe, then reads the tests (only after the fork, so they are never in the
         child's memory), runs them in its own interpreter and calls the program's functions over a pipe that
         carries plain data only. Only the judge can write the verdict; nothing the program does in its own
         process (exit codes, atexit, excepthook, stack walking, always-true __eq__) reaches it.
"""

import json
import os
import sys

MAX_MESSAGE = 8 << 20  # bytes; a larger message from the program is a failure, not an allocation

# ---------------------------------------------------------------- plain-data codec (shared with the parent)
_SCALARS = (type(None), bool, int, float, str)


def encode(x, depth=0):
    """Plain data -> JSON-able tree; anything else (subclasses included) raises TypeError."""
    t = type(x)
    if depth > 100:
        raise TypeError("value nested too deeply")
    if t in _SCALARS:
        return x
    if t is list or t is tuple or t is set or t is frozenset:
        return {t.__name__: [encode(v, depth + 1) for v in x]}
    if t is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if t is bytes:
        return {"bytes": x.hex()}
    if t is complex:
        return {"complex": [x.real, x.imag]}
    raise TypeError(f"not plain data: {t.__name__}")


def decode(tree):
    """Inverse of encode. Builds fresh built-in objects, so a decoded value has no behaviour of the sender's."""
    t = type(tree)
    if t in _SCALARS:
        return tree
    if t is not dict or len(tree) != 1:
        raise ValueError("bad encoded value")
    ((tag, v),) = tree.items()
    if tag == "list":
        return [decode(e) for e in v]
    if tag == "tuple":
        return tuple(decode(e) for e in v)
    if tag == "set":
        return set(decode(e) for e in v)
    if tag == "frozenset":
        return frozenset(decode(e) for e in v)
    if tag == "dict":
        return {decode(k): decode(val) for k, val in v}
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "complex":
        return complex(float(v[0]), float(v[1]))
    raise ValueError(f"bad encoded tag {tag!r}")


# ---------------------------------------------------------------- framing over pipes
def send(fd, obj):
    data = json.dumps(obj).encode()
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            raise EOFError("pipe closed")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv(fd):
    n = int.from_bytes(_read_exact(fd, 4), "big")
    if n > MAX_MESSAGE:
        raise ValueError(f"message too large ({n} bytes)")
    return json.loads(_read_exact(fd, n))


# ---------------------------------------------------------------- limits
def apply_limits(cfg):
    import resource

    cpu = int(cfg["cpu_s"])
    mem = int(cfg["memory_mb"]) << 20
    for name, soft, hard in (
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_AS", mem, mem),
        ("RLIMIT_FSIZE", int(cfg["fsize_mb"]) << 20, int(cfg["fsize_mb"]) << 20),
        ("RLIMIT_NOFILE", cfg["nofile"], cfg["nofile"]),
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NPROC", cfg["nproc"], cfg["nproc"]),
    ):
        if name == "RLIMIT_NPROC" and not cfg["nproc"]:
            continue  # counted per user namespace only inside one; the parent decides
        resource.setrlimit(getattr(resource, name), (soft, hard))


# Landlock (kernel >= 5.13), by direct system calls: the same numbers on x86_64 and aarch64.
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446


_libc = None


def _syscalls():
    """libc through ctypes, loaded once (a fork server's children inherit it)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def landlock_abi():
    """The kernel's Landlock ABI version; 0 where it has none (or Landlock is disabled)."""
    import ctypes

    return max(0, _syscalls().syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))


def landlock_ruleset(rules):
    """A Landlock ruleset fd: read (and execute) beneath `rules["read"]`, write beneath `rules["write"]` and write
    the single files `rules["files"]`; with ABI >= 4 no TCP bind or connect, with ABI >= 6 no signal or abstract
    UNIX socket to a process outside. Raises OSError where it cannot."""
    import ctypes

    libc, abi = _syscalls(), landlock_abi()
    if abi < 1:
        raise OSError(38, "Landlock is not available in this kernel")
    # EXECUTE .. MAKE_SYM are ABI 1; REFER 2; TRUNCATE 3 (IOCTL_DEV, ABI 5, is left unhandled: devices behave)
    fs = (1 << 13) - 1 | (abi >= 2) << 13 | (abi >= 3) << 14
    read = 1 << 0 | 1 << 2 | 1 << 3  # EXECUTE, READ_FILE, READ_DIR
    file_write = 1 << 1 | 1 << 2 | (abi >= 3) << 14  # WRITE_FILE, READ_FILE, TRUNCATE
    attr = [fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0]  # net: BIND_TCP | CONNECT_TCP; scoped: UNIX | SIGNAL
    size = 8 * (1 + (abi >= 4) + (abi >= 6))
    ruleset = (ctypes.c_uint64 * 3)(*attr)
    fd = libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(ruleset), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    try:
        for paths, access in ((rules["read"], read), (rules["write"], fs), (rules["files"], file_write)):
            for path in paths:
                try:
                    target = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # e.g. no /lib32 on this machine
                try:
                    rule = PathBeneath(access if os.path.isdir(path) else access & (file_write | 1), target)
                    if libc.syscall(LANDLOCK_ADD_RULE, fd, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                        raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
                finally:
                    os.close(target)
    except BaseException:
        os.close(fd)
        raise
    return fd


def landlock_restrict(fd):
    """Put this process (and its future children) under the ruleset `fd`."""
    import ctypes

    libc = _syscalls()
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, required to restrict oneself without CAP_SYS_ADMIN
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(LANDLOCK_RESTRICT_SELF, fd, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def _install_exit():
    # -S skips site.py, which is what defines exit() and quit(); programs use them
    import builtins

    def _exit(code=None):
        raise SystemExit(code)

    builtins.exit = builtins.quit = _exit


def _set_not_dumpable():
    # A non-dumpable process's /proc/PID/{mem,fd,environ} are closed to other processes of the same uid.
    import ctypes

    libc = _syscalls()
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")


def _quick_exit():
    # The verdict is sent; tearing the interpreter down would only cost time (in a fork server's child, mostly
    # copy-on-write faults as every inherited object is released).
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:  # noqa: B036
            pass
    os._exit(0)


def _run_source(src, name):
    ns = {"__name__": name, "__builtins__": __builtins__}
    exec(compile(src, "program.py", "exec"), ns)
    return ns


def _describe_error(e):
    return f"{type(e).__name__}: {str(e)[:500]}"


# ---------------------------------------------------------------- modes
def mode_io(cfg, msg):
    os.close(cfg["code_fd"])
    sys.argv = ["program.py"]
    try:
        _run_source(msg["program"], "__main__")
    except MemoryError:
        send(cfg["report_fd"], {"memory": True})
        raise


def mode_calls(cfg, msg):
    report = cfg["report_fd"]
    os.close(cfg["code_fd"])
    try:
        ns = _run_source(msg["program"], "__program__")
    except BaseException as e:  # noqa: B036 - SystemExit from the program is a failed load too
        send(report, {"load_error": _describe_error(e), "memory": isinstance(e, MemoryError)})
        return
    for i, (fn, args) in enumerate(msg["calls"]):
        try:
            out = {"i": i, "value": encode(ns[fn](*decode(args)))}
        except BaseException as e:  # noqa: B036
            out = {"i": i, "error": _describe_error(e), "memory": isinstance(e, MemoryError)}
        send(report, out)
    _quick_exit()


def _child_serve(msg, req, resp):
    """The program's side of the tests mode: load, then answer calls with plain data only."""
    try:
        ns = _run_source(msg["program"], "__program__")
    except BaseException as e:  # noqa: B036
        send(resp, {"error": _describe_error(e), "type": type(e).__name__})
        return
    names = {}
    for k, v in list(ns.items()):
        if k.startswith("__"):
            continue
        if callable(v) and not isinstance(v, type):
            names[k] = None
        else:
            try:
                names[k] = encode(v)
            except TypeError:
                pass  # modules, classes, instances: not visible to the tests
    send(resp, {"names": names})
    while True:
        name, args, kwargs = recv(req)
        try:
            r = {"value": encode(ns[name](*decode(args), **decode(kwargs)))}
        except BaseException as e:  # noqa: B036
            r = {"error": _describe_error(e), "type": type(e).__name__}
        send(resp, r)


class ProgramError(Exception):
    """The program failed to load, died, or sent something that is not plain data."""


def _remote_exception(r):
    import builtins

    cls = getattr(builtins, r.get("type", ""), None)
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
        return cls(r["error"])  # tests that expect e.g. ValueError from the program still work
    return ProgramError(r["error"])


def mode_tests(cfg, msg):
    import builtins
    import signal

    report, code = cfg["report_fd"], cfg["code_fd"]
    _set_not_dumpable()
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (report, code, req_w, resp_r):
                os.close(fd)
            _child_serve(msg, req_r, resp_w)
        finally:
            _quick_exit()
    os.close(req_r)
    os.close(resp_w)
    tests = recv(code)["tests"]  # read only now: the forked program never had the tests in memory
    os.close(code)

    def died():
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return ProgramError(f"program killed by {signal.Signals(sig).name}")
        return ProgramError(f"program exited (status {os.WEXITSTATUS(status)}) before the tests finished")

    def call(name, args, kwargs):
        try:
            send(req_w, [name, encode(args), encode(kwargs)])
            r = recv(resp_r)
        except (EOFError, BrokenPipeError):
            raise died() from None
        if "value" not in r:
            raise _remote_exception(r)
        return decode(r["value"])

    class Remote:
        def __init__(self, name):
            self.__name__ = name

        def __call__(self, *args, **kwargs):
            return call(self.__name__, args, kwargs)

        def __repr__(self):
            return f"<program function {self.__name__}>"

    ns = {"__name__": "__tests__", "__builtins__": builtins}
    try:
        try:
            first = recv(resp_r)
        except (EOFError, BrokenPipeError):
            raise died() from None
        if "names" not in first:
            raise _remote_exception(first)
        for k, v in first["names"].items():
            if hasattr(builtins, k):
                continue  # a program's `abs` or `len` must not change what the tests compute
            ns[k] = Remote(k) if v is None else decode(v)
        exec(compile(tests, "tests.py", "exec"), ns)
        result = {"passed": True}
    except BaseException as e:  # noqa: B036
        result = {"passed": False, "error": _describe_error(e), "memory": isinstance(e, MemoryError)}
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    send(report, result)
    _quick_exit()


def main():
    cfg = json.loads(sys.argv[1])
    if cfg["mode"] == "serve":  # the fork server (forkserver.py); serve() returns only in a program's fresh child
        exec(compile(sys.argv.pop(2), "forkserver.py", "exec"), globals())
        cfg = serve(cfg)  # noqa: F821 - defined by the exec above
    if cfg.get("landlock"):  # a fresh sandbox (a fork server's children are restricted already)
        ruleset = landlock_ruleset(cfg["landlock"])
        landlock_restrict(ruleset)
        os.close(ruleset)
    apply_limits(cfg)
    _install_exit()
    os.write(cfg["report_fd"], b"S")  # started: from here on, a failure is the program's
    msg = recv(cfg["code_fd"])
    {"io": mode_io, "calls": mode_calls, "tests": mode_tests}[cfg["mode"]](cfg, msg)


if __name__ == "__main__":
    main()
