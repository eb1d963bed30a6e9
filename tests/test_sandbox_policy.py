"""Fail closed: without the layers that contain model-written code, nothing runs unless the user opts in.

Each test builds the sandbox a machine without bubblewrap gets (the plain-subprocess candidate, probed for real:
conftest's `weak`), so these run on every machine, CI's included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from postfit.errors import UserError
from postfit.sandbox import allow_weak, layers, policy, run_program

DAEMON = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n"
SOCKET = "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\nprint('opened')\n"


def test_weak_layers_are_missing_required_ones(weak):
    assert set(policy.missing_layers(weak)) == {"netns", "pidns", "mountns"}


@pytest.mark.parametrize("program", [SOCKET, DAEMON], ids=["socket", "daemon"])
def test_refused_without_opt_in(weak, program, tmp_path):
    marker = tmp_path / "ran"
    v = run_program(program + f"open({str(marker)!r}, 'w').write('x')\n", expect="")
    assert v.status == "error" and not v.passed and not v.weak
    named = ("netns", "pidns", "mountns", "apt-get install bubblewrap", "kernel.unprivileged_userns_clone",
             "kernel.apparmor_restrict_unprivileged_userns", "--unsafe-weak-sandbox", "not installed")  # fmt: skip
    for name in named:
        assert name in v.detail, (name, v.detail)
    assert not marker.exists(), "the program ran"


def test_opt_in_runs_and_marks_every_verdict_weak(weak):
    allow_weak(True)
    v = run_program("print(6)", expect="6")
    assert v.status == "passed" and v.weak and "netns" not in v.layers
    assert run_program("print(5)", expect="6").status == "failed"


def test_full_layers_are_not_weak(monkeypatch):
    full = layers.Isolation("/usr/bin/python3", "/usr/bin/bwrap", True, None, layers.STRONGEST)
    monkeypatch.setattr(policy, "isolation", lambda: full)
    assert policy.check("x") == {"weak": False, "missing": [], "layers": list(layers.STRONGEST)}


@pytest.mark.parametrize("program", [SOCKET, DAEMON], ids=["socket", "daemon"])
def test_cli_sandbox_run_exits_2_with_an_error_verdict(weak, program, tmp_path):
    from postfit.cli.sandbox import app

    path = tmp_path / "p.py"
    path.write_text(program)
    r = CliRunner().invoke(app, ["run", str(path), "--json"])
    assert r.exit_code == 2
    verdict = json.loads(r.stdout.splitlines()[0])
    assert verdict["status"] == "error" and "netns" in verdict["detail"] and verdict["weak"] is False
    assert "apt-get install bubblewrap" in r.stderr
    path.write_text("print(1)\n")  # opted in: ours only, since a weak sandbox lets a daemon outlive its verdict
    r = CliRunner().invoke(app, ["run", str(path), "--json", "--unsafe-weak-sandbox"])
    assert r.exit_code == 0 and json.loads(r.stdout)["weak"] is True


def test_postfit_eval_refuses_before_loading_the_model(weak, tmp_path):
    from postfit.evaluation.benchmarks import eval_options, evaluate_checkpoint

    missing_model = str(tmp_path / "no-such-model")  # loading it would fail with another message
    with pytest.raises(UserError, match="postfit eval --bench humaneval runs model-written code.*netns"):
        evaluate_checkpoint(missing_model, ["humaneval"], tmp_path / "out", eval_options(samples=0), limit=2)
    assert not (tmp_path / "out").exists()


def _code_study(allow: bool):
    from postfit.config import load_study

    spec, _ = load_study("smoke")
    data = spec.model_dump(mode="json")
    data["eval"].update(benchmarks=["humaneval"], benchmark_limit=2)
    data["sandbox"] = {"allow_weak": allow}
    from postfit.config import parse_study

    return parse_study(data, "test")


def test_study_with_code_items_exits_before_training(weak, tmp_path):
    from postfit.study.runner import run_study

    with pytest.raises(UserError, match="study 'smoke' .*code items.*netns.*sandbox.allow_weak"):
        run_study(_code_study(False), tmp_path)
    assert list(tmp_path.iterdir()) == [], "nothing is written before the sandbox's check"


def test_study_opt_in_is_recorded_for_the_report(weak, tmp_path):
    from postfit.layout import StudyDir
    from postfit.study.prepare import check_sandbox, ensure_data

    study = _code_study(True)
    assert study.fingerprint() == _code_study(False).fingerprint()  # the opt-in changes no result
    check_sandbox(study, StudyDir(tmp_path), ensure_data(study, StudyDir(tmp_path)))
    stored = json.loads((tmp_path / "sandbox.json").read_text())
    assert stored["weak"] is True and set(stored["missing"]) == {"netns", "pidns", "mountns"}
    assert yaml.safe_load(Path(tmp_path / "study.yaml").read_text())["sandbox"] == {"allow_weak": True}


def test_report_names_the_missing_layers(tmp_path):
    from postfit.report.blocks import Para
    from postfit.report.build import build_blocks
    from postfit.report.results import RunResults, StudyResults

    run_dir = tmp_path / "runs" / "random-none-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run": run_dir.name, "init": "random", "recipe": "none", "seed": 0}))
    sample = {"split": "humaneval", "item": "h0", "sample": -1, "correct": True, "score": 1.0}
    run = RunResults("random", "none", 0, params=10, samples=[sample])
    study = StudyResults(
        tmp_path, {"name": "s"}, [run], [], [], None, None, {"weak": True, "missing": ["netns", "pidns"]}
    )
    text = [b.text for b in build_blocks(study) if isinstance(b, Para)]
    assert any("Weak sandbox" in t and "netns, pidns" in t for t in text)
    study.sandbox = {"weak": False, "missing": [], "layers": []}
    assert not any("Weak sandbox" in b.text for b in build_blocks(study) if isinstance(b, Para))
