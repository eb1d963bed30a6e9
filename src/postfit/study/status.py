"""`postfit status DIR`: where every run of a study stands, across all the workers sharing its directory.

Read from the directory alone: results.jsonl (done), failed.json and log.txt (failed), the run's lock (running:
where and since when; `interrupted` when its holder is dead, so the next worker takes it over), else waiting.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from postfit.errors import UserError
from postfit.io import read_json
from postfit.study.locks import holder, is_stale

LOG_LINES = 5


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


def run_states(out_dir: Path) -> list[dict]:
    """One row per run of the grid, in grid order: name, state, and where / since / error / log tail."""
    from postfit.config import parse_study
    from postfit.study.grid import grid_runs

    path = Path(out_dir) / "study.yaml"
    if not path.is_file():
        raise UserError(f"{out_dir}: not a study output directory (no study.yaml)")
    study = parse_study(yaml.safe_load(path.read_text()), str(path))
    rows = []
    for run in grid_runs(study):
        d = Path(out_dir) / "runs" / run.name
        row: dict = {"run": run.name}
        lock = holder(d / ".lock")
        if (d / "results.jsonl").exists():
            row["state"] = "done"
        elif lock is not None:
            row.update(state="interrupted" if is_stale(lock) else "running", where=f"{lock['host']}:{lock['pid']}",
                       since=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lock["since"])))  # fmt: skip
        elif (d / "failed.json").exists():
            row.update(
                state="failed", error=read_json(d / "failed.json")["error"], log=_tail(d / "log.txt", LOG_LINES)
            )
        else:
            row["state"] = "waiting"
        rows.append(row)
    return rows
