"""`postfit plan` makes every check `postfit run` makes before it writes anything, with run's message and exit code;
a run that fails before training leaves nothing behind, or a directory its corrected rerun takes over."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from conftest import ROOT, TINY_STUDY, postfit
from postfit.cli.app import app

FIXTURE = ROOT / "tests" / "fixtures" / "sft_sums.jsonl"


def _study(tmp_path: Path, file: str = "study.yaml", **changes) -> Path:
    data = {**TINY_STUDY, "name": "checked", "grid": {"inits": ["random"], "recipes": ["none"], "seeds": [0]}}
    path = tmp_path / file
    path.write_text(yaml.safe_dump({**data, **changes}))
    return path


def _refusal(*args: str) -> tuple[int, str]:
    """Exit code and stderr of `postfit ARGS`, in this process (CliRunner)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.stderr.split())


def _same_refusal(study: Path, out: Path, expected: str, *flags: str) -> None:
    plan_code, plan_err = _refusal("plan", str(study), *flags)
    run_code, run_err = _refusal("run", str(study), "--out", str(out), *flags)
    assert (plan_code, run_code) == (2, 2) and plan_err == run_err, (plan_err, run_err)
    assert plan_err.startswith("error: ") and expected in plan_err, plan_err
    assert not out.exists(), "run wrote files before its checks passed"


def test_missing_local_data_file(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    _same_refusal(_study(tmp_path, data={"sft": {"source": str(missing)}}), tmp_path / "out", f"{missing}: no such")


def test_rl_prompts_that_repeat_sft_questions(tmp_path):
    """Two files with the same questions as data.sft and data.rl: run's contamination refusal, in plan too."""
    copy = tmp_path / "rl.jsonl"
    shutil.copy(FIXTURE, copy)
    data = {"sft": {"source": str(FIXTURE)}, "rl": {"source": str(copy)}}
    study = _study(tmp_path, data=data, tasks=None, eval={**TINY_STUDY["eval"], "benchmarks": ["rg:chain_sum"],
                                                          "benchmark_limit": 4})  # fmt: skip
    _same_refusal(study, tmp_path / "out", "RL prompts are not disjoint from the other data")


def test_code_benchmark_without_the_sandbox_layers(tmp_path, weak):
    """A machine without bubblewrap (conftest's `weak`): a study evaluated on HumanEval is refused by both."""
    study = _study(tmp_path, eval={**TINY_STUDY["eval"], "benchmarks": ["humaneval"], "benchmark_limit": 2})
    _same_refusal(study, tmp_path / "out", "study 'checked' (its code items) runs model-written code")
    code, err = _refusal("plan", str(study), "--unsafe-weak-sandbox")  # run's opt-in, which plan takes too
    assert code == 0, err


def test_unknown_model_offline(tmp_path):
    """A hub id neither cached nor reachable (HF_HUB_OFFLINE=1, an empty cache): both name `hf download`."""
    study = _study(tmp_path, model={"name_or_path": "some-org/never-heard-of-it"}, pretrain=None)
    out, env = tmp_path / "out", {"HF_HOME": str(tmp_path / "hf_home")}
    plan = postfit("plan", str(study), check=False, env=env)
    run = postfit("run", str(study), "--out", str(out), check=False, env=env)
    assert (plan.returncode, run.returncode) == (2, 2)
    assert plan.stderr == run.stderr and "`hf download some-org/never-heard-of-it`" in run.stderr, run.stderr
    assert "unknown N" in plan.stdout and "`postfit run` refuses it here" in plan.stdout  # the cost, then why not
    assert not out.exists()


def test_a_valid_study_plans_with_exit_0(tmp_path):
    code, err = _refusal("plan", str(_study(tmp_path)))
    assert code == 0, err


def test_a_failed_start_is_taken_over_by_the_corrected_study(tmp_path, monkeypatch):
    """A first run that fails after writing its data (here: building the model raises) leaves a directory that a
    rerun with another study takes over, as no run started; one whose run has started stays refused."""
    from postfit import models
    from postfit.errors import UserError

    out = tmp_path / "out"
    first = _study(tmp_path)

    def broken(*args, **kwargs):
        raise UserError("model.chat_template: broken (simulated)")

    monkeypatch.setattr(models, "build_variant", broken)
    code, err = _refusal("run", str(first), "--out", str(out))
    assert code == 2 and "broken (simulated)" in err
    assert (out / "data" / "manifest.json").exists() and (out / "runs" / "random-none-s0" / "failed.json").exists()
    monkeypatch.undo()

    corrected = _study(tmp_path, "corrected.yaml", name="corrected")
    code, err = _refusal("run", str(corrected), "--out", str(out))
    assert code == 0, err
    assert yaml.safe_load((out / "study.yaml").read_text())["name"] == "corrected"
    assert (out / "report.md").exists() and not (out / "runs" / "random-none-s0" / "failed.json").exists()

    code, err = _refusal("run", str(first), "--out", str(out))  # now a run has results: refused as before
    assert code == 2 and "holds results of a different study" in err


def test_started_means_more_than_logs(tmp_path):
    from postfit.layout import StudyDir
    from postfit.study.prepare import _started

    layout = StudyDir(tmp_path)
    run = layout.run("random-none-s0")
    run.path.mkdir(parents=True)
    run.log.write_text("failed\n")
    run.failed.write_text(json.dumps({"error": "x"}))
    assert not _started(layout)
    run.lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "heartbeat": 9e12}))  # a live worker's lock
    assert _started(layout)
    run.lock.unlink()
    layout.base.meta.parent.mkdir()
    layout.base.meta.write_text("{}")  # pre-training finished
    assert _started(layout)
    layout.base.meta.unlink()
    run.train_log.write_text("{}\n")
    assert _started(layout)
