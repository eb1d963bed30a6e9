"""Shared fixtures: one smoke study per test session, reused by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Offline by default: the Hugging Face libraries read this once, when first imported (after this file), so no test
# waits on a hub it cannot reach, whatever order the tests run in; a test may still unset it for a subprocess.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHAPES = ("qwen3", "llama3", "base")  # tokenizers shaped like a Qwen3 base, a Llama-3 base, a template-less base


def full_sandbox() -> bool:
    """True where the code sandbox has every required layer (bubblewrap works); code then runs without opt-in."""
    from postfit.sandbox import missing_layers

    return not missing_layers()


def weak_flags() -> tuple[str, ...]:
    """The opt-in a CLI test of model-written code needs on a machine without the full sandbox (none in CI)."""
    return () if full_sandbox() else ("--unsafe-weak-sandbox",)


def postfit(*args: str, check: bool = True, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the `postfit` CLI as a user would, in a subprocess (`env`: variables added to this process's)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "postfit", *args], capture_output=True, text=True, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"postfit {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


TINY_STUDY = {
    "name": "two-processes",
    "model": {"preset": "nano"},
    "pretrain": {"corpus": "stdlib", "tokens": 20000, "seq_len": 128, "batch_size": 16, "tokenizer_chars": 200000},
    "tasks": {
        "train": [
            {"name": "chain_sum", "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}
        ],  # fmt: skip
        "train_size": 120,
        "rl_size": 16,
        "test_size": 16,
        "target": "trace",
    },  # fmt: skip
    "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft+rl"], "seeds": [0]},
    "sft": {"steps": 60, "batch_size": 16, "learning_rate": 0.005, "logging_steps": 20},
    "rl": {
        "steps": 2,
        "batch_size": 16,
        "num_generations": 4,
        "max_completion_length": 16,
        "eval_steps": 2,
        "heldout_items": 8,
        "logging_steps": 1,
    },  # fmt: skip
    "eval": {"batch_size": 16, "max_new_tokens": 20, "samples": 2, "k": [2]},
    "report": {"bootstrap": 200},
}
TINY_RUNS = ("pretrained-none-s0", "pretrained-sft+rl-s0", "random-none-s0", "random-sft+rl-s0")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> tuple[Path, Path]:
    """(study file, its one-process output): a nano study with pre-training, SFT and GRPO in about 20 s, the
    reference that runs on several processes or workers are compared with."""
    import yaml

    d = tmp_path_factory.mktemp("tiny")
    path = d / "study.yaml"
    path.write_text(yaml.safe_dump(TINY_STUDY))
    proc = postfit("run", str(path), "--out", str(d / "one"))
    (d / "log.txt").write_text(proc.stdout, encoding="utf-8")  # stdout was a pipe, as `> log.txt` makes it
    return path, d / "one"


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory) -> Path:
    """The built-in smoke study, run once, uninterrupted."""
    out = tmp_path_factory.mktemp("smoke") / "study"
    postfit("run", "smoke", "--out", str(out))
    return out


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    """shape -> a checkpoint directory built by postfit's own pre-training (nano, 20k tokens)."""
    from postfit.config import PretrainConfig
    from postfit.train.pretrain import stand_in_checkpoint

    cfg = PretrainConfig(corpus="stdlib", tokens=20000, seq_len=128, batch_size=16, tokenizer_chars=200000)
    root = tmp_path_factory.mktemp("checkpoints")
    return {s: stand_in_checkpoint(root / s, s, cfg, arch="llama" if s == "llama3" else "qwen3") for s in SHAPES}


@pytest.fixture
def benign():
    """Our own harmless programs (reference solutions, verdict cases) may run under weaker sandbox layers, as with
    --unsafe-weak-sandbox, so the code verifier is tested on machines without bubblewrap too; with it (CI) nothing
    changes. Hostile programs never get this (tests/test_sandbox.py checks they are refused there)."""
    from postfit.sandbox import allow_weak

    allow_weak(True)
    yield
    allow_weak(False)


@pytest.fixture
def weak(monkeypatch):
    """This process's sandbox as a machine without bubblewrap has it (the plain-subprocess candidate, probed)."""
    from postfit.sandbox import allow_weak, api, layers, policy, probe

    root = layers.os.geteuid() == 0
    cand = layers.Isolation(layers.sandbox_python(root), None, False, layers.SANDBOX_UID if root else None)
    iso = layers.Isolation(cand.python, None, False, cand.uid, probe._verify(cand),
                           problems=("bubblewrap (`bwrap`) is not installed.",))  # fmt: skip
    monkeypatch.setattr(api, "isolation", lambda: iso)
    monkeypatch.setattr(policy, "isolation", lambda: iso)
    yield iso
    allow_weak(False)


def pytest_report_header(config) -> str:
    """CI's log says which sandbox layers the attack suite ran against."""
    from postfit.sandbox import isolation

    return f"postfit sandbox layers: {', '.join(isolation().layers)}"
