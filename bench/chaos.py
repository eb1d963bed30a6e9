"""SIGKILL a small study at random moments, in every stage, then let it finish: nothing lost, nothing doubled.

    .venv/bin/python bench/chaos.py [--kills 20] [--seed 0] [--keep DIR]

First the study runs once uninterrupted (the reference, and each stage's length, read from its
"stage NAME: ..." log lines). Then `postfit run` is started again and again on one directory and killed
(SIGKILL to its process group). Each kill picks a stage (the first not hit yet; once all are, a random one of those
the directory still has ahead: data, tokenizer and pre-training come once per directory), waits for its line and
lands at a random moment within the stage's length in the reference. When the directory finishes (or has passed
the stage) first, the next kills go to a fresh directory. Every directory is then run to the end and must hold the
reference's results, per-item samples and probe rows, with no temporary file, lock or checkpoint left behind.
Prints one table of kills per stage and a JSON line; exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STAGES = ("data", "tokenizer", "pretrain", "sft", "grpo", "eval", "probes", "report")
STAGE_LINE = re.compile(r"stage (\w+):")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import TINY_STUDY  # noqa: E402  (the tests' nano study, as bench/shared_dir.py uses it)

# The tests' tiny study with an `sft` run beside `sft+rl`, frequent checkpoints in every trainer, and both probes.
STUDY = {
    **TINY_STUDY,
    "name": "chaos",
    "pretrain": {**TINY_STUDY["pretrain"], "checkpoint_steps": 3},
    "grid": {**TINY_STUDY["grid"], "recipes": ["none", "sft", "sft+rl"]},
    "sft": {**TINY_STUDY["sft"], "steps": 40, "logging_steps": 10, "checkpoint_steps": 10},
    "rl": {**TINY_STUDY["rl"], "steps": 4, "checkpoint_steps": 2},
    "probes": {"icl": {"tasks": [{"name": "gcd", "config": {"min_numbers": 2, "max_numbers": 2, "min_value": 1,
                                                            "max_value": 30}}], "k": [0, 2], "items": 4, "pool": 16},
               "adapt": {"task": {"name": "count_bits", "config": {"min_n": 1, "max_n": 255}}, "steps": [0, 3],
                         "train_size": 16, "test_size": 4, "batch_size": 4}},
}  # fmt: skip


class Attempt:
    """One `postfit run` on `out`, its stage lines timed as they arrive."""

    def __init__(self, study: Path, out: Path):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
        cmd = [sys.executable, "-m", "postfit", "run", str(study), "--out", str(out)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)  # fmt: skip
        self.start = time.monotonic()
        self.stages: list[tuple[float, str]] = []  # (seconds since start, stage)
        self.tail: list[str] = []
        self.seen = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.tail = [*self.tail[-40:], line]
            if (m := STAGE_LINE.search(line)) and m.group(1) in STAGES:
                with self.seen:
                    self.stages.append((time.monotonic() - self.start, m.group(1)))
                    self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_for(self, stage: str) -> bool:
        """Block until `stage` starts (True) or the process ends (False)."""
        with self.seen:
            while not any(s == stage for _, s in self.stages):
                if self.proc.poll() is not None:
                    return False
                self.seen.wait(0.1)
        return True

    def current(self) -> str:
        return self.stages[-1][1] if self.stages else "startup"

    def kill(self) -> str:
        """SIGKILL the process group; the stage it was in."""
        stage = self.current()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return stage

    def finish(self) -> float:
        self.proc.wait()
        self.reader.join()
        if self.proc.returncode != 0:
            raise SystemExit(f"postfit run exited {self.proc.returncode}:\n{''.join(self.tail)}")
        return time.monotonic() - self.start


def stage_lengths(stages: list[tuple[float, str]], end: float) -> dict[str, float]:
    """stage -> its shortest occurrence in the reference (a kill within it lands inside every occurrence)."""
    lengths: dict[str, float] = {}
    for (t, s), nxt in zip(stages, [*(t for t, _ in stages[1:]), end], strict=True):
        lengths[s] = min(lengths.get(s, float("inf")), nxt - t)
    return lengths


def leftovers(out: Path) -> list[str]:
    """What an interrupted run must not leave behind once the study is done."""
    bad = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".lock")
           or p.name in ("checkpoints", "pretrain_checkpoints") or p.name.startswith("checkpoint-")]  # fmt: skip
    return sorted(str(p.relative_to(out)) for p in bad)


def differences(out: Path, ref: Path) -> list[str]:
    problems = []
    files = ["results.jsonl"] + [str(p.relative_to(ref)) for p in sorted(ref.glob("runs/*/*.jsonl"))
                                 if p.name in ("samples.jsonl", "results.jsonl", "probes.jsonl")]  # fmt: skip
    for name in files:
        if not (out / name).exists():
            problems.append(f"{name}: missing")
        elif (out / name).read_text() != (ref / name).read_text():
            problems.append(f"{name}: differs from the uninterrupted run")
    if sorted(p.name for p in (out / "runs").iterdir()) != sorted(p.name for p in (ref / "runs").iterdir()):
        problems.append("runs/: not the same runs")
    return problems + [f"left behind: {p}" for p in leftovers(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="at least this many kills (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="postfit-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    import yaml

    study = work / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    t0 = time.monotonic()
    ref = Attempt(study, work / "reference")
    ref_wall = ref.finish()
    lengths = stage_lengths(ref.stages, ref_wall)
    missing = [s for s in STAGES if s not in lengths]
    if missing:
        raise SystemExit(f"the reference run logged no line for stage(s) {missing}")
    print(f"reference: {ref_wall:.1f} s; stage lengths (s): " + ", ".join(f"{s} {lengths[s]:.2f}" for s in STAGES))

    dirs = [work / "chaos-0"]
    kills: list[dict] = []
    hit: set[str] = set()
    while len(kills) < args.kills or len(hit) < len(STAGES):
        unhit = [s for s in STAGES if s not in hit]
        ahead = STAGES if not dirs[-1].exists() else [s for s in STAGES if s not in ("data", "tokenizer", "pretrain")]
        target = unhit[0] if unhit else rng.choice(ahead)
        attempt = Attempt(study, dirs[-1])
        if not attempt.wait_for(target):  # this directory is past it (or done): a fresh one
            attempt.finish()
            dirs.append(work / f"chaos-{len(dirs)}")
            continue
        time.sleep(rng.uniform(0, 0.8 * lengths[target]))
        if attempt.proc.poll() is not None:  # finished before the kill
            attempt.finish()
            dirs.append(work / f"chaos-{len(dirs)}")
            continue
        at = time.monotonic() - attempt.start
        stage = attempt.kill()
        hit.add(stage)
        kills.append({"dir": dirs[-1].name, "stage": stage, "at_s": round(at, 2)})
        print(f"kill {len(kills):2d}: {dirs[-1].name} at {at:5.1f} s, in {stage}", flush=True)

    problems = {}
    for d in dirs:
        Attempt(study, d).finish()
        problems[d.name] = differences(d, work / "reference")
    wall = time.monotonic() - t0
    per_stage = {s: sum(k["stage"] == s for k in kills) for s in ("startup", *STAGES)}
    print("\nkills per stage: " + ", ".join(f"{s} {n}" for s, n in per_stage.items()))
    ok = not any(problems.values())
    for name, found in problems.items():
        print(f"{name}: " + ("identical to the uninterrupted run, nothing left behind" if not found else
                             "; ".join(found)))  # fmt: skip
    print(json.dumps({"kills": len(kills), "per_stage": per_stage, "directories": len(dirs), "wall_s": round(wall, 1),
                      "reference_s": round(ref_wall, 1), "identical": ok}))  # fmt: skip
    if args.keep is None:
        shutil.rmtree(work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
