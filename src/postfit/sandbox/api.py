"""The sandbox's public functions: one program (`run_program`) or many in parallel (`run_batch`)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from postfit.sandbox.launcher import encode
from postfit.sandbox.policy import missing_layers, refusal, weak_allowed
from postfit.sandbox.probe import isolation
from postfit.sandbox.run import Limits, execute
from postfit.sandbox.server import close_orphans, server_for
from postfit.sandbox.verdict import Verdict, classify, plain

log = logging.getLogger(__name__)
RETRIES = 2  # extra attempts after an infrastructure error


def run_program(
    program: str,
    *,
    tests: str | None = None,
    stdin: str | None = None,
    expect: str | None = None,
    calls: list[tuple[str, list, object]] | None = None,
    timeout: float = 5.0,
    memory_mb: int = 1024,
    limits: Limits | None = None,
    reuse: bool = True,
) -> Verdict:
    """Run untrusted `program` in the sandbox and decide pass/fail outside it.

    Exactly one style of test (or none):
      tests   assert-style test code, run after the program with its functions and plain-data globals in scope
              (HumanEval: test + "check(entry_point)"); passes when it completes without an exception.
      stdin / expect
              the program runs as __main__ reading `stdin`; passes when it exits 0 and its stdout equals
              `expect` (trailing whitespace ignored). Without `expect`, exiting 0 is a pass.
      calls   [(function name, [args...], expected value)], plain data only; passes when every call returns a
              value of the expected type equal to the expected value.
    `timeout` is wall-clock seconds for the whole run; `memory_mb` the address-space limit of each process.
    Fails closed: where the sandbox lacks a required layer (policy.py) the program is not run and the verdict is
    `error` naming the missing layers, unless this process opted in with `policy.allow_weak()`; verdicts run under
    the weaker layers carry `weak=True`.
    `reuse`: run it as a fresh fork of this thread's long-lived, already-restricted sandbox (server.py) where the
    machine allows one, instead of starting a new sandbox (~20 ms more). After an infrastructure error the retry
    always gets a new sandbox of its own.
    """
    if sum(x is not None for x in (tests, calls, expect)) > 1:
        raise ValueError("give at most one of tests=, calls=, expect=")
    limits = limits or Limits(timeout=timeout, memory_mb=memory_mb)
    iso = isolation()
    missing = missing_layers(iso)
    if missing and not weak_allowed():
        return Verdict("error", "not run: " + refusal(missing, iso), list(iso.layers))
    if calls is not None:
        mode, wire = "calls", [[name, encode(list(args))] for name, args, _ in calls]
        expected = [plain(want) for _, _, want in calls]
    else:
        mode, wire, expected = ("tests" if tests is not None else "io"), None, None
    verdict = None
    for attempt in range(1 + RETRIES):
        server = server_for(iso, limits.tmp_mb) if reuse and attempt == 0 else None
        raw = execute(iso, mode, program, tests=tests, calls=wire, limits=limits, stdin=(stdin or "").encode(),
                      server=server)  # fmt: skip
        status, detail = classify(raw, mode, expect=expect, expected_values=expected)
        verdict = Verdict(
            status, detail, list(iso.layers), round(raw.seconds, 4),
            raw.stdout[:2000].decode(errors="replace"), raw.stderr[-2000:].decode(errors="replace"), bool(missing),
        )  # fmt: skip
        if status != "error":
            break
        log.warning("sandbox infrastructure error (attempt %d): %s", attempt + 1, detail)
    return verdict


@dataclass
class Item:
    """One program of a batch; the same fields as `run_program`'s arguments."""

    id: str
    program: str
    tests: str | None = None
    stdin: str | None = None
    expect: str | None = None
    calls: list | None = None
    timeout: float = 5.0
    memory_mb: int = 1024
    extra: dict = field(default_factory=dict)


def run_batch(items: list[Item], workers: int | None = None, *, reuse: bool = True) -> list[Verdict]:
    """Run many programs, one worker thread per CPU core by default, each with its own fork server (`reuse`, see
    `run_program`); results in input order."""
    workers = workers or os.cpu_count() or 1
    isolation()  # verify (and warn) once, before the threads start

    def one(it: Item) -> Verdict:
        return run_program(it.program, tests=it.tests, stdin=it.stdin, expect=it.expect, calls=it.calls,
                           timeout=it.timeout, memory_mb=it.memory_mb, reuse=reuse)  # fmt: skip

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, items))
    finally:
        close_orphans()  # the workers have ended: their servers go with them
