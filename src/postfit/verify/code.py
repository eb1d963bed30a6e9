"""Code answers: run the extracted program against the item's tests in postfit's sandbox (postfit.sandbox).

One sandbox run per test, each with its own time and memory limit; an item scores 1.0 only if every test
passes. Test styles (the `tests` field of postfit.item):

    assert      the test code runs after the program (HumanEval, MBPP); HumanEval's `def check(candidate)` is
                called with the entry point when the code does not call it itself
    stdio       the program runs as __main__ on each case's input; its stdout must equal the case's output
                (trailing whitespace ignored, the sandbox's rule)
    functional  LiveCodeBench's call-based form: each input line is one JSON argument, the output is JSON; the
                entry point is a function or a method of `class Solution`; tuples count as lists, as in
                LiveCodeBench's own checker

stdio and functional programs get LiveCodeBench's import header (its solutions use `List[int]`, `heapq`,
... without importing them). A batch runs the first test of every program, then the remaining tests of the
programs that passed it, so a wrong program rarely costs more than one test's time.
"""

from __future__ import annotations

import ast
import json
import logging

from postfit.item import Item
from postfit.verify.extract import program as extract_program

log = logging.getLogger(__name__)

TIMEOUT_S = 6.0  # per test, LiveCodeBench's default
MEMORY_MB = 1024  # address space per process
PREFIX_KEY = "code_prefix"  # item.meta[PREFIX_KEY]: the code the completion continues (HumanEval's prompt)

# The header LiveCodeBench prepends to every program (lcb_runner/evaluation/testing_util.py, `import_string`).
_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
            "itertools", "functools", "operator", "io", "sys", "json")  # fmt: skip
IMPORT_HEADER = (
    "".join(f"from {m} import *\n" for m in (*_MODULES, "builtins", "typing"))
    + "".join(f"import {m}\n" for m in _MODULES)
    + "sys.setrecursionlimit(50000)\n"
)
_CALL = "_postfit_call"


def _calls_check(code: str) -> bool:
    """True when the test code defines `check` but never calls it at top level (HumanEval ships it so)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    defines = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
    calls = any(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", None) == "check"
        for n in tree.body
    )
    return defines and not calls


def _functional(program: str, entry_point: str, case: dict) -> tuple[str, str]:
    """(program, test code) for one call-based case; the comparison runs in the sandbox's judge, not the program."""
    target = entry_point
    if "class Solution" in program:  # LeetCode-style, as LiveCodeBench detects it
        program += f"\n\ndef {_CALL}(*args):\n    return Solution().{entry_point}(*args)\n"
        target = _CALL
    args = [json.loads(line) for line in case["input"].split("\n") if line.strip()]
    tests = (
        "import json\n"
        f"_got = {target}(*json.loads({json.dumps(args)!r}))\n"
        "_got = list(_got) if isinstance(_got, tuple) else _got\n"
        f"_want = json.loads({case['output']!r})\n"
        "assert _got == _want, f'expected {_want!r:.200}, got {_got!r:.200}'\n"
    )
    return program, tests


def sandbox_items(item: Item, program: str, *, timeout: float = TIMEOUT_S, memory_mb: int = MEMORY_MB) -> list:
    """One sandbox Item per test of `item` for `program`, in the tests' order."""
    from postfit import sandbox

    tests = item.tests
    if not tests:
        raise ValueError(f"{item.id}: a code item without tests cannot be verified")
    style, limits = tests["style"], {"timeout": timeout, "memory_mb": memory_mb}
    if style == "assert":
        code = tests["code"]
        if _calls_check(code):
            code += f"\n\ncheck({tests['entry_point']})\n"
        return [sandbox.Item(id=item.id, program=program, tests=code, **limits)]
    if style == "stdio":
        return [sandbox.Item(id=f"{item.id}#{i}", program=IMPORT_HEADER + program, stdin=c["input"],
                             expect=c["output"], **limits) for i, c in enumerate(tests["cases"])]  # fmt: skip
    if style == "functional":
        out = []
        for i, case in enumerate(tests["cases"]):
            prog, code = _functional(IMPORT_HEADER + program, tests["entry_point"], case)
            out.append(sandbox.Item(id=f"{item.id}#{i}", program=prog, tests=code, **limits))
        return out
    raise ValueError(f"{item.id}: unknown test style {style!r}")


def program_for(item: Item, completion: str) -> str:
    return extract_program(completion, item.meta.get(PREFIX_KEY))


def _run_round(todo: list[tuple[int, object]], passed: list[bool], workers: int | None) -> None:
    """Run (index, sandbox Item) pairs in parallel; a failed test marks its program failed."""
    from postfit.sandbox import run_batch

    if not todo:
        return
    for (i, test), verdict in zip(todo, run_batch([t for _, t in todo], workers), strict=True):
        if verdict.status == "error":  # the sandbox's own failure, after its retries: never a wrong answer
            raise RuntimeError(f"sandbox failed on {test.id}: {verdict.detail}")
        if not verdict.passed:
            passed[i] = False
            log.debug("%s: %s (%s)", test.id, verdict.status, verdict.detail)


def score_batch(items: list[Item], completions: list[str], *, workers: int | None = None,
                timeout: float = TIMEOUT_S, memory_mb: int = MEMORY_MB) -> list[tuple[str, float]]:  # fmt: skip
    """(program, 1.0 if every test passed else 0.0) per (item, completion), programs run in parallel.

    Two rounds: every program's first test, then the other tests of the programs that passed it.
    """
    programs = [program_for(item, c) for item, c in zip(items, completions, strict=True)]
    tests = [sandbox_items(it, p, timeout=timeout, memory_mb=memory_mb) for it, p in zip(items, programs, strict=True)]
    passed = [bool(t) for t in tests]  # a test style with no cases cannot be passed
    _run_round([(i, t[0]) for i, t in enumerate(tests) if t], passed, workers)
    _run_round([(i, x) for i, t in enumerate(tests) if passed[i] for x in t[1:]], passed, workers)
    return [(p, 1.0 if ok else 0.0) for p, ok in zip(programs, passed, strict=True)]


def score(item: Item, completion: str) -> tuple[str, float]:
    """(program, value) for one completion; see `score_batch`."""
    return score_batch([item], [completion], workers=1)[0]
