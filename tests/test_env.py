"""Provenance: each study directory records the environment of its first start (env.json) and of every invocation
(env_history.jsonl), and the report shows it."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from conftest import TINY_STUDY
from postfit.cli.app import app
from postfit.env import PACKAGES, environment, git_state, same_setup


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_git_state_of_a_checkout_and_of_an_installed_copy(tmp_path):
    root = tmp_path / "checkout"
    package = root / "src" / "postfit"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'postfit'\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "first")
    commit = _git(root, "rev-parse", "HEAD")
    assert git_state(package) == {"commit": commit, "dirty": False}
    (root / "runs").mkdir()
    (root / "runs" / "out.json").write_text("{}")  # study outputs are untracked: still clean
    assert git_state(package)["dirty"] is False
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package) == {"commit": commit, "dirty": True}
    installed = tmp_path / "site-packages" / "postfit"  # a wheel's copy: no checkout around it
    shutil.copytree(package, installed)
    assert git_state(installed) is None


def test_environment_names_versions_hardware_and_command():
    env = environment(["postfit", "run", "default"])
    assert env["postfit"] == importlib.metadata.version("postfit") and env["command"] == ["postfit", "run", "default"]
    assert set(env["packages"]) == set(PACKAGES)
    assert env["packages"]["torch"] == importlib.metadata.version("torch")
    hw = env["hardware"]
    assert hw["cpu"] and hw["cpu_threads"] >= 1 and hw["torch_threads"] >= 1 and isinstance(hw["gpus"], list)
    assert same_setup(env, {**env, "time": "later", "command": ["other"]})
    assert not same_setup(env, {**env, "packages": {**env["packages"], "torch": "2.11.0"}})


def test_study_directory_keeps_its_first_start_and_every_invocation(tmp_path, monkeypatch):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**TINY_STUDY, "name": "env", "grid": {"inits": ["random"], "recipes": ["none"],
                                                                           "seeds": [0]}}))  # fmt: skip
    out = tmp_path / "out"
    args = ["run", str(study), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/postfit", *args])  # as the installed script has it
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    first = json.loads((out / "env.json").read_text())
    history = [json.loads(line) for line in (out / "env_history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and first["time"] <= history[0]["time"] <= history[1]["time"]
    assert first["command"] == ["/somewhere/bin/postfit", *args] and first == {**history[0], "time": first["time"]}
    report = (out / "report.md").read_text()
    section = report.split("## Provenance", 1)[1]
    assert f"torch {first['packages']['torch']}" in section
    assert f"`postfit run {study} --out {out}`" in section
    assert "2 invocations prepared this directory" in section and "all with these versions and hardware" in section

    # a resume under another torch (its line appended as another machine would): the report says so
    other = {**history[1], "packages": {**history[1]["packages"], "torch": "2.11.0+cu130"}, "time": "2099-01-01"}
    with open(out / "env_history.jsonl", "a") as f:
        f.write(json.dumps(other) + "\n" + '{"cut sh')  # and a line a kill cut short, skipped
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    section = (out / "report.md").read_text().split("## Provenance", 1)[1]
    assert "1 with other versions or hardware" in section and "2099-01-01: libraries torch 2.11.0+cu130" in section
