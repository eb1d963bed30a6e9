"""`report.to`: training curves reach TensorBoard (trackio, W&B through the same `report_to`), named by run."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_STUDY, postfit
from postfit.config import parse_study
from postfit.io import read_jsonl


def _study(tmp_path: Path, **report) -> Path:
    study = copy.deepcopy(TINY_STUDY)
    study.update(name="tracked", report={"bootstrap": 200, **report})
    study["grid"] = {"inits": ["random"], "recipes": ["sft"], "seeds": [0]}
    study["sft"] = {"steps": 20, "batch_size": 8, "learning_rate": 0.005, "logging_steps": 5}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_tensorboard_gets_the_training_loss_under_the_run_name(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    postfit("run", str(_study(tmp_path, to=["tensorboard"])), "--out", str(out))
    logged = [row["loss"] for row in read_jsonl(out / "runs" / "random-sft-s0" / "train_log.jsonl") if "loss" in row]
    events = EventAccumulator(str(out / "tensorboard" / "random-sft-s0"))
    events.Reload()
    curve = events.Scalars("train/loss")
    assert [e.step for e in curve] == [5, 10, 15, 20]
    assert [e.value for e in curve] == pytest.approx(logged, rel=1e-6)
    assert len(logged) == 4


def test_trackers_are_not_part_of_the_fingerprint(tmp_path):
    plain = parse_study(yaml.safe_load(_study(tmp_path).read_text()), "a.yaml")
    tracked = parse_study(yaml.safe_load(_study(tmp_path, to=["tensorboard", "wandb"]).read_text()), "b.yaml")
    assert tracked.report.to == ["tensorboard", "wandb"]
    assert plain.fingerprint() == tracked.fingerprint()


def test_a_tracker_that_is_not_installed_exits_2_naming_its_install(tmp_path):
    # wandb hidden from this process whether or not it is installed (transformers looks modules up the same way)
    hide = ("import importlib.util as u, sys; real = u.find_spec; "
            "u.find_spec = lambda name, *a: None if name == 'wandb' else real(name, *a); "
            "from postfit.cli import main; sys.argv[0] = 'postfit'; main()")  # fmt: skip
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", hide, "run", str(_study(tmp_path, to=["wandb"])), "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "report.to: wandb is not installed" in proc.stderr and "pip install wandb" in proc.stderr
    assert not out.exists()


def test_an_unknown_tracker_is_refused_naming_the_key(tmp_path):
    proc = postfit("run", str(_study(tmp_path, to=["mlflow"])), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2
    assert "report.to[0]" in proc.stderr and "tensorboard" in proc.stderr
