"""Turn what the parent observed into a status. Every fact used here was produced outside the program's reach.

- io: the parent compares the stdout it captured with an expected output the sandbox never saw.
- calls: the parent decodes each returned value into fresh built-in objects and compares them with the
  expected values, which never enter the sandbox.
- tests: only the judge process (see launcher.py) can write the pass/fail frame.
Exit codes, stderr and anything the program prints are used for the detail, never for a pass.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field

from postfit.sandbox.launcher import decode, encode
from postfit.sandbox.run import Raw

STATUSES = ("passed", "failed", "timeout", "memory", "error")
SHOWN = 2000  # characters of stdout/stderr kept in a verdict


@dataclass
class Verdict:
    """One program's result. `error` means the sandbox itself failed or refused to run it (never a wrong answer);
    `weak`: it ran without a required layer, because the user opted in (policy.py)."""

    status: str
    detail: str
    layers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    weak: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


def normalise_output(text: str) -> list[str]:
    """Lines with trailing whitespace removed and trailing blank lines dropped (the usual judge rule)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def plain(value):
    """A value as the sandbox would send it back (raises TypeError for non-plain data)."""
    return decode(encode(value))


def _signal_name(raw: Raw) -> str | None:
    sig = raw.signal
    if sig is None:
        return None
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _death(raw: Raw) -> tuple[str, str]:
    """Status for a program that ended without a verdict frame."""
    name = _signal_name(raw)
    if name == "SIGXCPU":
        return "timeout", "CPU time limit exceeded"
    if name:
        return "failed", f"killed by {name}"
    return "failed", f"exited with status {raw.returncode}"


def _from_error(text: str, memory: bool) -> tuple[str, str]:
    if memory or text.startswith("MemoryError"):
        return "memory", text
    if "SIGXCPU" in text:
        return "timeout", text
    return "failed", text


def classify(
    raw: Raw, mode: str, *, expect: str | None = None, expected_values: list | None = None
) -> tuple[str, str]:
    if not raw.started:
        return "error", "sandbox did not start: " + raw.stderr[-1000:].decode(errors="replace")
    if raw.infra_error:
        return "error", raw.infra_error
    if raw.timed_out:
        return "timeout", "wall-clock time limit exceeded"
    if raw.cgroup.get("oom_kills"):
        n = raw.cgroup["oom_kills"]
        return "memory", f"the memory limit of the whole program (all its processes) was hit: {n} OOM-killed"
    if raw.output_exceeded:
        return "failed", "output limit exceeded"
    if mode == "io":
        if any(f.get("memory") for f in raw.frames if isinstance(f, dict)):
            return "memory", "MemoryError"
        if raw.returncode != 0:
            status, detail = _death(raw)
            tail = raw.stderr[-300:].decode(errors="replace").strip().splitlines()
            return status, detail + (f": {tail[-1]}" if tail and status == "failed" else "")
        if expect is None:
            return "passed", "exited with status 0"
        if normalise_output(raw.stdout.decode(errors="replace")) == normalise_output(expect):
            return "passed", "output matches"
        return "failed", "wrong output"
    if mode == "calls":
        return _classify_calls(raw, expected_values or [])
    if raw.frame_error:
        return "failed", raw.frame_error
    if len(raw.frames) != 1 or not isinstance(raw.frames[0], dict):
        return _death(raw) if not raw.frames else ("failed", "malformed verdict")
    f = raw.frames[0]
    if f.get("passed") is True:
        return "passed", "all tests passed"
    return _from_error(str(f.get("error", "tests failed")), bool(f.get("memory")))


def _classify_calls(raw: Raw, expected: list) -> tuple[str, str]:
    frames = raw.frames
    if frames and isinstance(frames[0], dict) and "load_error" in frames[0]:
        return _from_error("program failed to load: " + str(frames[0]["load_error"]), bool(frames[0].get("memory")))
    for i, want in enumerate(expected):
        if i >= len(frames):
            status, detail = _death(raw) if not raw.frame_error else ("failed", raw.frame_error)
            return status, f"call {i}: {detail}"
        f = frames[i]
        if not isinstance(f, dict) or f.get("i") != i:
            return "failed", f"call {i}: malformed result"
        if "error" in f:
            status, detail = _from_error(str(f["error"]), bool(f.get("memory")))
            return status, f"call {i}: {detail}"
        try:
            got = decode(f.get("value"))
        except (ValueError, TypeError, KeyError) as e:
            return "failed", f"call {i}: undecodable result ({e})"
        if type(got) is not type(want) or got != want:
            return "failed", f"call {i}: expected {want!r:.200}, got {got!r:.200}"
    return "passed", f"all {len(expected)} calls returned the expected values"
