"""CPU time of one `postfit run` worker vs two workers sharing one output directory, on the same tiny study.

    .venv/bin/python bench/shared_dir.py [--study PATH]

Each configuration runs from an empty directory, one thread per process; the CPU time is user + system of all
child processes (resource.getrusage), so waiting for a lock costs nothing but its polls. The target (issue: grid
engines) is at most 1.2x: two workers redo no run, they only pay a second interpreter and the polling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_of(commands: list[list[str]], env: dict) -> tuple[float, float]:
    """(CPU seconds of the children, wall seconds) to run `commands` at the same time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    for p in procs:
        if p.wait():
            raise SystemExit(f"{p.args} exited {p.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", type=Path, default=None, help="study file [default: the tests' tiny study]")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    work = Path(tempfile.mkdtemp(prefix="postfit-shared-"))
    study = args.study
    if study is None:
        import yaml

        from conftest import TINY_STUDY

        study = work / "study.yaml"
        study.write_text(yaml.safe_dump(TINY_STUDY))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def cmd(out: str) -> list[str]:
        return [sys.executable, "-m", "postfit", "run", str(study), "--out", str(work / out)]

    one = cpu_of([cmd("one")], env)
    two = cpu_of([cmd("two"), cmd("two")], env)
    same = (work / "one" / "results.jsonl").read_text() == (work / "two" / "results.jsonl").read_text()
    result = {"one_cpu_s": round(one[0], 1), "one_wall_s": round(one[1], 1), "two_cpu_s": round(two[0], 1),
              "two_wall_s": round(two[1], 1), "cpu_ratio": round(two[0] / one[0], 3),
              "same_results": same}  # fmt: skip
    print(
        f"one worker: {one[0]:.1f} s CPU ({one[1]:.1f} s wall); two workers on one directory: {two[0]:.1f} s CPU "
        f"({two[1]:.1f} s wall); ratio {two[0] / one[0]:.2f}x (target <= 1.2x); same results: {same}"
    )
    print(json.dumps(result))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
