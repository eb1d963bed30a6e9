"""A study on real-data paths, offline: SFT from a local file of schema items, benchmarks as evaluation splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, full_sandbox, postfit
from postfit.io import read_jsonl

pytestmark = pytest.mark.slow
FIXTURE = ROOT / "tests" / "fixtures" / "sft_sums.jsonl"
BENCHMARKS = ["rg:chain_sum", "humaneval"]


def _study(tmp_path: Path) -> Path:
    study = {
        "name": "realdata",
        "model": {"preset": "nano"},
        "pretrain": {
            "corpus": "stdlib",
            "tokens": 20000,
            "seq_len": 128,
            "batch_size": 16,
            "tokenizer_chars": 200000,
        },  # fmt: skip
        "data": {
            "sft": {"source": str(FIXTURE), "limit": 32, "overlong": "drop", "verified_only": True},
            # math items: the reward is math-verify's verdict; rows SFT does not read
            "rl": {"source": str(FIXTURE), "skip": 32, "limit": 16},
        },
        "grid": {"inits": ["random"], "recipes": ["none", "sft", "sft+rl"], "seeds": [0]},  # no pre-training
        "rl": {
            "steps": 4,
            "batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 16,
            "eval_steps": 2,
            "heldout_items": 4,
            "logging_steps": 1,
        },  # fmt: skip
        "sft": {"steps": 60, "batch_size": 16, "learning_rate": 0.005, "max_length": 128, "logging_steps": 10},
        "eval": {
            "benchmarks": BENCHMARKS,
            "benchmark_limit": 4,
            "batch_size": 8,
            "max_new_tokens": 16,
            "samples": 2,
            "k": [2],
        },  # fmt: skip
        "report": {"bootstrap": 100},
    }
    if not full_sandbox():  # humaneval runs the model's code: opt in where bubblewrap is missing (not in CI)
        study["sandbox"] = {"allow_weak": True}
    path = tmp_path / "realdata.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_sft_on_a_local_source_evaluated_on_benchmarks(tmp_path: Path):
    out = tmp_path / "out"
    postfit("run", str(_study(tmp_path)), "--out", str(out))

    train = read_jsonl(out / "data" / "train.jsonl")
    assert len(train) == 32 and train[0]["source"] == "local-sums"
    for run in ["random-sft-s0"]:
        losses = [r["loss"] for r in read_jsonl(out / "runs" / run / "train_log.jsonl") if "loss" in r]
        assert losses[-1] < 0.5 * losses[0], (run, losses)  # it trained on the chat-templated traces
        counts = yaml.safe_load((out / "runs" / run / "train.json").read_text())["sft_data"]
        assert counts["kept"] == 32 and counts["dropped"] == 0
    rl = yaml.safe_load((out / "runs" / "random-sft+rl-s0" / "train.json").read_text())
    assert rl["sft_from"].endswith("random-sft-s0/model") and rl["generated_tokens"] > 0
    log = [r for r in read_jsonl(out / "runs" / "random-sft+rl-s0" / "train_log.jsonl") if "reward" in r]
    assert len(log) == 4 and all(0.0 <= r["rewards/correctness_reward/mean"] <= 1.0 for r in log)
    assert len(read_jsonl(out / "data" / "rl.jsonl")) == 16
    for run in ["random-none-s0", "random-sft-s0", "random-sft+rl-s0"]:
        samples = read_jsonl(out / "runs" / run / "samples.jsonl")
        assert {s["split"] for s in samples} == set(BENCHMARKS)  # no tasks: benchmarks only
        assert sum(s["split"] == "humaneval" and s["sample"] == -1 for s in samples) == 4
        results = read_jsonl(out / "runs" / run / "results.jsonl")
        assert {(r["split"], r["metric"]) for r in results} == {
            (b, m) for b in BENCHMARKS for m in ("pass@1", "pass@2")
        }
    rows = read_jsonl(out / "results.jsonl")
    assert {r["split"] for r in rows} == set(BENCHMARKS)

    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("model", "pretrained", "architecture"))
    (copy / "report.md").unlink()
    postfit("report", str(copy))
    report = (copy / "report.md").read_text()
    assert report == (out / "report.md").read_text() and "rg:chain_sum" in report and "humaneval" in report
    assert "## What RL changed" in report
    assert ("Weak sandbox" in report) is (not full_sandbox())  # the report says when code ran without its layers
