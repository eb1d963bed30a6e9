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
from postfit.layout import StudyDir
from postfit.study.locks import holder, is_stale
from postfit.ui import STAGE_LINE, STEP_LINE

LOG_LINES = 5


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


def _activity(log_path: Path) -> dict:
    """The stage a run is in and its last training step, from the run's own log.txt (postfit.ui's stage and
    progress lines); empty when the log shows none."""
    out: dict = {}
    for line in _tail(log_path, 400):
        if m := STAGE_LINE.search(line):
            out = {"stage": m[2]} if m[1] == "start" else {}
        elif out and (m := STEP_LINE.search(line)):
            out["progress"] = f"{m[1]}/{m[2]}"
    return out


def _age(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None


def run_states(out_dir: Path) -> list[dict]:
    """One row per run of the grid, in grid order: name, state, its current stage and training progress (running
    runs), the age in seconds of its last write (results for done runs, else its log), and where / since / error /
    log tail."""
    from postfit.config import parse_study
    from postfit.config.grid import grid_runs

    layout = StudyDir(out_dir)
    path = layout.study_yaml
    if not path.is_file():
        raise UserError(f"{out_dir}: not a study output directory (no {path.name})")
    study = parse_study(yaml.safe_load(path.read_text()), str(path))
    rows = []
    for run in grid_runs(study):
        d = layout.run(run)
        row: dict = {"run": run.name}
        lock = holder(d.lock)
        if d.done():
            row.update(state="done", age=_age(d.results))
        elif lock is not None:
            row.update(state="interrupted" if is_stale(lock) else "running", where=f"{lock['host']}:{lock['pid']}",
                       since=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lock["since"])))  # fmt: skip
            row.update(_activity(d.log), age=_age(d.log))
        elif d.failed.exists():
            row.update(state="failed", error=read_json(d.failed)["error"], log=_tail(d.log, LOG_LINES))
        else:
            row["state"] = "waiting"
        rows.append(row)
    return rows
