"""Hostile programs for tests/test_sandbox.py, each with the outcome that is safe.

`{secret_file}`, `{host_file}`, `{port}`, `{secret_env}` and `{marker}` are filled in by the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WRONG = "def f(x):\n    return x + 1\n"  # the right answer is x * 2
TESTS = "def check(candidate):\n    assert candidate(3) == 6\n    assert candidate(5) == 10\ncheck(f)\n"


@dataclass
class Attack:
    id: str
    category: str
    program: str
    statuses: tuple[str, ...]  # any of these is a safe outcome
    kwargs: dict = field(default_factory=dict)  # tests= / stdin= / expect= / calls= / timeout=
    not_in_output: tuple[str, ...] = ()  # strings (after formatting) that must not appear in stdout/stderr
    needs: tuple[str, ...] = ()  # sandbox layers the safe outcome depends on beyond the required ones


FAILS = ("failed",)
ATTACKS = [
    # runaway CPU
    Attack("busy-loop", "cpu", "while True:\n    pass\n", ("timeout",), {"timeout": 1}),
    Attack("busy-child", "cpu", "import os\nos.fork()\nwhile True:\n    pass\n", ("timeout",), {"timeout": 1}),
    Attack("close-pipes-and-sleep", "cpu", "import os, time\nfor fd in range(1, 64):\n    try:\n"
           "        os.close(fd)\n    except OSError:\n        pass\ntime.sleep(60)\n", ("timeout",), {"timeout": 1}),
    Attack("ignore-sigterm", "cpu", "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
           "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n", ("timeout",), {"timeout": 1}),
    # fork and thread bombs
    Attack("fork-bomb", "bomb", "import os\nwhile True:\n    try:\n        os.fork()\n"
           "    except OSError:\n        pass\n", ("timeout", "failed"), {"timeout": 2}),
    Attack("thread-bomb", "bomb", "import threading, time\nwhile True:\n"
           "    threading.Thread(target=time.sleep, args=(60,)).start()\n", ("failed", "timeout"), {"timeout": 2}),
    # memory bombs
    Attack("alloc-8g", "memory", "x = bytearray(8 << 30)\n", ("memory",)),
    Attack("grow-list", "memory", "l = []\nwhile True:\n    l.append('x' * 10**6)\n", ("memory",), {"timeout": 10}),
    Attack("alloc-in-call", "memory", "def f(x):\n    return len('x' * (8 << 30))\n", ("memory",),
           {"tests": TESTS}),
    # bounds on the whole program, all its processes together (the sandbox's cgroup)
    Attack("fork-and-allocate", "memory-total", "import os, time\nfor i in range(12):\n    if os.fork() == 0:\n"
           "        x = b'1' * (300 << 20)\n        time.sleep(5)\n        os._exit(0)\n"
           "while True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n",
           ("memory",), {"memory_mb": 512, "timeout": 20}, needs=("cgroup",)),
    Attack("pids-across-children", "pids-total", "import os, time\nr, w = os.pipe()\nkids = 0\n"
           "for i in range(8):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
           "    kids += 1\n    if pid == 0:\n        n = 0\n        for j in range(40):\n            try:\n"
           "                if os.fork() == 0:\n                    time.sleep(4)\n                    os._exit(0)\n"
           "                n += 1\n            except OSError:\n                break\n"
           "        os.write(w, bytes([n]))\n        time.sleep(4)\n        os._exit(0)\n"
           "total = 1 + kids + sum(os.read(r, 1)[0] for _ in range(kids))\n"
           "print('bounded' if total <= 32 else f'unbounded {{total}}')\n", ("passed",), {"expect": "bounded",
           "timeout": 20}),
    Attack("fds-across-children", "fds", "import os, time\nr, w = os.pipe()\nfor i in range(8):\n"
           "    if os.fork() == 0:\n        held = []\n        try:\n            while True:\n"
           "                held.append(os.open('/dev/null', os.O_RDONLY))\n"
           "        except OSError:\n            pass\n"
           "        os.write(w, bytes([min(len(held), 255)]))\n        time.sleep(2)\n        os._exit(0)\n"
           "counts = [os.read(r, 1)[0] for _ in range(8)]\n"
           "print('bounded' if max(counts) <= 64 else f'unbounded {{counts}}')\n", ("passed",), {"expect": "bounded",
           "timeout": 20}),
    # output floods
    Attack("stdout-flood", "output", "while True:\n    print('x' * 1000)\n", FAILS, {"timeout": 10}),
    Attack("stderr-flood", "output", "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n", FAILS,
           {"timeout": 10}),
    # disk filling
    Attack("one-big-file", "disk", "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))\n", FAILS),
    Attack("many-files", "disk", "i = 0\nwhile True:\n    open(f'/tmp/f{{i}}', 'wb').write(b'0' * (8 << 20))\n"
           "    i += 1\n", FAILS),
    # files outside the working directory
    Attack("write-host-file", "files", "open({host_file!r}, 'w').write('pwned')\n", FAILS),
    Attack("delete-host-file", "files", "import os\nos.remove({host_file!r})\n", FAILS),
    Attack("read-host-file", "files", "print(open({secret_file!r}).read())\n", FAILS, {},
           ("{secret_env}",)),
    Attack("read-via-proc-root", "files", "print(open('/proc/1/root' + {secret_file!r}).read())\n", FAILS, {},
           ("{secret_env}",)),
    Attack("walk-filesystem", "files", "import os\nfor root, _, files in os.walk('/'):\n"
           "    if root.startswith(('/proc', '/dev', '/usr')):\n        continue\n    for f in files:\n"
           "        try:\n            if {secret_env!r} in open(os.path.join(root, f), errors='ignore').read(99999):\n"
           "                print('found', root, f)\n        except Exception:\n            pass\n"
           "raise SystemExit(1)\n", FAILS, {"timeout": 20}, ("found",)),
    Attack("write-everywhere", "files", "import os, sys\nok = []\n"
           "for d in ['/', '/usr', '/usr/lib', '/usr/local', '/bin', '/lib', '/etc', '/var', '/var/tmp', '/run', "
           "'/home', '/root', '/srv', '/opt', '/mnt', '/proc', '/proc/self', '/sys', '/dev', '/dev/pts', "
           "'/dev/mqueue', '/tmp', '/dev/shm', os.getcwd(), sys.prefix, os.path.dirname(sys.executable), "
           "os.path.dirname(os.__file__)]:\n    try:\n        with open(os.path.join(d, 'pf-w'), 'w') as f:\n"
           "            f.write('x')\n        os.remove(os.path.join(d, 'pf-w'))\n        ok.append(d)\n"
           "    except OSError:\n        pass\nprint(*sorted(set(ok)))\n", ("passed",), {"expect": "/dev/shm /tmp"}),
    # environment
    Attack("read-own-env", "env", "import os\nprint(dict(os.environ))\nraise SystemExit(1)\n", FAILS, {},
           ("{secret_env}",)),
    Attack("read-proc-environ", "env", "import os\nfor p in os.listdir('/proc'):\n    try:\n"
           "        print(open(f'/proc/{{p}}/environ', 'rb').read())\n    except Exception as e:\n        pass\n"
           "raise SystemExit(1)\n", FAILS, {}, ("{secret_env}",)),
    # network
    Attack("connect-loopback", "network", "import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)\n"
           "print('connected')\n", FAILS, {}, ("connected",)),
    Attack("udp-loopback", "network", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           "s.sendto(b'x', ('127.0.0.1', {port}))\nprint('sent')\n", FAILS, {}, ("sent",)),
    # No traffic off the machine, ever (tests/test_no_external_traffic.py): instead of connecting out, the program
    # looks for any way out, an interface other than lo or a route, which a network namespace leaves none of.
    Attack("find-a-way-out", "network", "import socket\n"
           "ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
           "routes = open('/proc/net/route').read().splitlines()[1:]\n"
           "if [i for i in ifaces if i != 'lo'] or routes:\n    print('way out', ifaces, len(routes))\n"
           "raise SystemExit(1)\n", FAILS, {}, ("way out",)),
    Attack("ipv6-loopback", "network", "import socket\nsocket.create_connection(('::1', {port}), 2)\n"
           "print('connected')\n", FAILS, {}, ("connected",)),
    # processes that detach and outlive the run
    Attack("double-fork-daemon", "detach", "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
           "    if os.fork() == 0:\n        time.sleep(30)\n        open({host_file!r}, 'w').write('late')\n"
           "    os._exit(0)\n", ("passed",), {"expect": ""}),
    Attack("background-sleep", "detach", "import subprocess\nsubprocess.Popen(['sleep', '30'], "
           "start_new_session=True)\n", ("passed",), {"expect": ""}),
    # signalling or killing the parent
    Attack("kill-parent", "signal", "import os\nos.kill(os.getppid(), 9)\nos.kill(1, 9)\n", ("failed", "passed"),
           {"expect": "never printed"}),
    Attack("kill-everything", "signal", "import posix\nposix.kill(-1, 9)\nprint('survived')\n", FAILS,
           {"tests": TESTS}),
    # faking a pass
    Attack("exit-0-wrong-output", "fake", "print(41)\nimport sys\nsys.exit(0)\n", FAILS, {"expect": "42"}),
    Attack("sys-exit-0", "fake", WRONG + "import sys\nsys.exit(0)\n", FAILS, {"tests": TESTS}),
    Attack("os-exit-0", "fake", WRONG + "import os\nos._exit(0)\n", FAILS, {"tests": TESTS}),
    Attack("atexit", "fake", WRONG + "import atexit, os\natexit.register(lambda: os._exit(0))\n", FAILS,
           {"tests": TESTS}),
    Attack("excepthook", "fake", WRONG + "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\n", FAILS,
           {"tests": TESTS}),
    Attack("print-markers", "fake", WRONG + "print('passed')\nprint('all tests passed')\nprint('S')\n", FAILS,
           {"tests": TESTS}),
    Attack("forge-report-fds", "fake", WRONG + "import os, json\nmsg = json.dumps({{'passed': True}}).encode()\n"
           "for fd in range(3, 256):\n    try:\n        os.write(fd, b'S' + len(msg).to_bytes(4, 'big') + msg)\n"
           "    except OSError:\n        pass\n", FAILS, {"tests": TESTS}),
    Attack("eq-always-true", "fake", "class Yes(int):\n    def __eq__(self, o):\n        return True\n"
           "    __hash__ = int.__hash__\ndef f(x):\n    return Yes(0)\n", FAILS, {"tests": TESTS}),
    Attack("eq-always-true-calls", "fake", "class Yes(int):\n    def __eq__(self, o):\n        return True\n"
           "    __hash__ = int.__hash__\ndef f(x):\n    return Yes(0)\n", FAILS, {"calls": [("f", [3], 6)]}),
    Attack("walk-stack", "fake", "import sys\ndef f(x):\n    fr = sys._getframe()\n    while fr:\n"
           "        for v in list(fr.f_locals.values()):\n            if isinstance(v, list):\n"
           "                v.append('passed')\n        fr = fr.f_back\n    return 0\n", FAILS, {"tests": TESTS}),
    Attack("shadow-builtins", "fake", "import builtins\nclass T:\n    def __eq__(self, o):\n        return True\n"
           "def abs(x):\n    return 0\nbuiltins.AssertionError = None\ndef f(x):\n    return 0\n", FAILS,
           {"tests": "def check(candidate):\n    assert abs(candidate(3) - 6) < 1e-6\ncheck(f)\n"}),
    Attack("kill-judge", "fake", WRONG + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", FAILS,
           {"tests": TESTS}),
    # locating and reading the expected outputs / tests
    Attack("find-expected", "expected", "import os\nhits = []\nfor root, _, files in os.walk('/'):\n"
           "    if root.startswith(('/proc', '/dev', '/usr')):\n        continue\n    for f in files:\n        try:\n"
           "            if b{marker!r} in open(os.path.join(root, f), 'rb').read(1 << 20):\n"
           "                hits.append(os.path.join(root, f))\n        except Exception:\n            pass\n"
           "print({marker!r} if hits else 'nothing')\n", FAILS, {"expect": "{marker}", "timeout": 20}),
    Attack("read-judge-memory", "expected", "import os\ndef f(x):\n    return 0\nppid = os.getppid()\n"
           "for path in (f'/proc/{{ppid}}/mem', f'/proc/{{ppid}}/fd/3', f'/proc/{{ppid}}/environ'):\n"
           "    try:\n        open(path, 'rb').read(10)\n        print('opened', path)\n    except OSError:\n"
           "        pass\n", FAILS, {"tests": TESTS}, ("opened",)),
    # exhausting file descriptors
    Attack("fd-exhaustion", "fds", "l = []\nwhile True:\n    l.append(open('/dev/null'))\n", FAILS),
    # crashing the interpreter
    Attack("ctypes-segfault", "crash", "import ctypes\nctypes.string_at(0)\n", FAILS),
    Attack("deep-recursion", "crash", "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1)\n"
           "f(0)\n", ("failed", "memory"), {"memory_mb": 256, "timeout": 20}),
    Attack("recursion-in-call", "crash", "def f(x):\n    return f(x)\n", FAILS, {"tests": TESTS}),
]  # fmt: skip
