"""The smoke study end to end: contracts, learning, report regeneration, resume after a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import postfit
from postfit.analysis.stats import run_results
from postfit.io import read_jsonl

pytestmark = pytest.mark.slow
RUNS = [f"{init}-{recipe}-s0" for init in ("pretrained", "random") for recipe in ("none", "sft", "sft+rl")]
RESULT_KEYS = {"run", "init", "recipe", "seed", "split", "metric", "value", "n", "ci_low", "ci_high"}


def _value(rows: list[dict], run: str, split: str, metric: str = "pass@1") -> float:
    (row,) = [r for r in rows if r["run"] == run and r["split"] == split and r["metric"] == metric]
    return row["value"]


def test_contracts(smoke_dir: Path):
    rows = read_jsonl(smoke_dir / "results.jsonl")
    assert rows and all(RESULT_KEYS <= set(r) for r in rows)
    assert {r["run"] for r in rows} == set(RUNS)
    assert {r["split"] for r in rows} == {"id_test", "ood_harder", "ood_family", "ood_format"}
    assert {r["metric"] for r in rows} == {"pass@1", "pass@2"}
    assert all(r["ci_low"] <= r["value"] <= r["ci_high"] for r in rows)
    for run in RUNS:
        meta = json.loads((smoke_dir / "runs" / run / "run.json").read_text())
        assert meta["params"] > 0 and len(meta["config_hash"]) == 16
        samples = read_jsonl(smoke_dir / "runs" / run / "samples.jsonl")
        assert all({"prompt", "completion", "answer", "correct"} <= set(s) for s in samples)
        # Every stored number is recomputable from the stored samples.
        study = yaml.safe_load((smoke_dir / "study.yaml").read_text())
        opts = study["eval"]["k"], study["report"]["bootstrap"], study["report"]["ci"]
        recomputed = run_results(meta, samples, *opts)
        assert recomputed == read_jsonl(smoke_dir / "runs" / run / "results.jsonl")
    hashes = {json.loads((smoke_dir / "runs" / r / "run.json").read_text())["config_hash"] for r in RUNS}
    assert len(hashes) == 1, "pretrained and random variants must share one architecture"
    for name in ["report.md", "report.html"]:
        assert (smoke_dir / name).stat().st_size > 1000


def test_training_beats_no_training(smoke_dir: Path):
    rows = read_jsonl(smoke_dir / "results.jsonl")
    for init in ["pretrained", "random"]:
        trained, untrained = _value(rows, f"{init}-sft-s0", "id_test"), _value(rows, f"{init}-none-s0", "id_test")
        assert trained >= untrained + 0.2, (init, trained, untrained)


def test_report_regenerates_from_stored_files(smoke_dir: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_dir, copy, ignore=shutil.ignore_patterns("model", "pretrained", "architecture"))
    for name in ["report.md", "report.html"]:
        (copy / name).unlink()
    postfit("report", str(copy))  # no model weights are there: the report reads samples only
    assert (copy / "report.md").read_text() == (smoke_dir / "report.md").read_text()
    assert '<figure class="pf-plot"' in (copy / "report.html").read_text()


def test_report_of_a_non_study_dir_exits_2(tmp_path: Path):
    proc = postfit("report", str(tmp_path), check=False)
    assert proc.returncode == 2 and "not a study output directory" in proc.stderr


def test_other_study_in_same_dir_exits_2(smoke_dir: Path, tmp_path: Path):
    data = yaml.safe_load((smoke_dir / "study.yaml").read_text())
    data["sft"]["steps"] += 1
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    proc = postfit("run", str(other), "--out", str(smoke_dir), check=False)
    assert proc.returncode == 2 and "holds results of a different study" in proc.stderr


def test_data_without_its_study_file_exits_2_before_training(smoke_dir: Path, tmp_path: Path):
    """data/ copied without study.yaml: which study made it is unknown, so nothing is trained on it."""
    import shutil

    out = tmp_path / "copied"
    shutil.copytree(smoke_dir / "data", out / "data")
    proc = postfit("run", "smoke", "--out", str(out), check=False)
    assert proc.returncode == 2 and "holds data/ but no study.yaml" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["data"]


def _kill_when(out: Path, ready) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "postfit", "run", "smoke", "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, "the study finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_study_resumes_to_the_same_results(smoke_dir: Path, tmp_path: Path):
    out = tmp_path / "killed"
    ckpts = out / "runs" / "random-sft-s0" / "checkpoints"
    # Kill during SFT of the third run (trained runs go first, untrained ones last), once a complete checkpoint
    # exists.
    _kill_when(out, lambda: any(ckpts.glob("checkpoint-*/trainer_state.json")))
    first = out / "runs" / "pretrained-sft-s0" / "results.jsonl"
    assert first.exists() and not (out / "runs" / "random-sft-s0" / "results.jsonl").exists()
    finished_at = first.stat().st_mtime_ns
    # The kill left the run's lock behind, held by a dead pid: status says so, and the next worker takes it over.
    from postfit.study.status import run_states

    states = {r["run"]: r["state"] for r in run_states(out)}
    assert states["pretrained-sft-s0"] == "done" and states["random-sft-s0"] == "interrupted", states
    # The runs after the killed one: taken from the uninterrupted study as finished runs (skipped on resume), so
    # the resume redoes only what the kill interrupted.
    for run in ("random-sft+rl-s0", "pretrained-none-s0", "random-none-s0"):
        shutil.copytree(smoke_dir / "runs" / run, out / "runs" / run)
    postfit("run", "smoke", "--out", str(out))
    assert first.stat().st_mtime_ns == finished_at, "a finished run was redone"
    train = json.loads((out / "runs" / "random-sft-s0" / "run.json").read_text())["train"]
    assert train["resumed_from"] and "checkpoint-" in train["resumed_from"]
    assert read_jsonl(out / "results.jsonl") == read_jsonl(smoke_dir / "results.jsonl")
    assert not list(out.rglob(".lock*")), "a lock was left behind"
    for run in RUNS:
        samples = f"runs/{run}/samples.jsonl"
        assert read_jsonl(out / samples) == read_jsonl(smoke_dir / samples), run
        resumed, whole = (read_jsonl(d / f"runs/{run}/forgetting.jsonl") for d in (out, smoke_dir))
        assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in whole], abs=1e-4), run
