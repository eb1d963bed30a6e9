"""The options the GPU recipe (studies/paper.yaml) uses, each run once on the CPU, a few steps on `nano`."""

from __future__ import annotations

import json

import pytest
import yaml

from postfit.io import read_jsonl


def _first_loss(run_dir) -> float:
    return next(r["loss"] for r in read_jsonl(run_dir / "train_log.jsonl") if "loss" in r)


def test_micro_batches_give_the_full_batch_loss(stand_ins, tmp_path):
    """Gradient accumulation over micro-batches sees the same examples and the same token-mean loss."""
    from postfit.config import SFTOptions, load_study
    from postfit.models import build_variant
    from postfit.tasks import make_splits
    from postfit.train.sft import train_sft

    items = make_splits(load_study("smoke")[0].tasks)["train"][:16]
    losses = {}
    for micro in (None, 2):
        v = build_variant(stand_ins["qwen3"], "pretrained", 0)
        opts = SFTOptions(steps=1, batch_size=8, micro_batch_size=micro, logging_steps=1, checkpoint_steps=10)
        train_sft(v.model, v.tokenizer, items, opts, tmp_path / f"micro{micro}", seed=0)
        losses[micro] = _first_loss(tmp_path / f"micro{micro}")
    assert abs(losses[None] - losses[2]) < 1e-5, losses


@pytest.mark.parametrize("shape", ["qwen3", "llama3"])
def test_padding_free_batches_give_the_padded_loss(stand_ins, tmp_path, shape):
    """One row of the batch's sequences end to end (position ids restarting, attention kept inside each sequence)
    trains on the same loss as padded rows: the first logged loss agrees within 1e-4 in float32, and so does the
    loss after a few optimiser steps (the gradients agree too)."""
    from postfit.config import SFTOptions, load_study
    from postfit.models import build_variant
    from postfit.tasks import make_splits
    from postfit.train.sft import train_sft

    items = make_splits(load_study("smoke")[0].tasks)["train"][:32]
    assert len({len(it.target) for it in items}) > 1, "the test needs sequences of different lengths"
    logs = {}
    for free in (False, True):
        v = build_variant(stand_ins[shape], "pretrained", 0)
        opts = SFTOptions(steps=3, batch_size=8, padding_free=free, logging_steps=1, checkpoint_steps=10)
        train_sft(v.model, v.tokenizer, items, opts, tmp_path / f"free{free}", seed=0)
        logs[free] = [r["loss"] for r in read_jsonl(tmp_path / f"free{free}" / "train_log.jsonl") if "loss" in r]
    assert len(logs[True]) == 3
    assert all(abs(a - b) < 1e-4 for a, b in zip(logs[False], logs[True], strict=True)), logs


@pytest.mark.slow
def test_gpu_recipe_options_run_on_the_cpu(stand_ins, tmp_path):
    """bfloat16 weights, micro-batches, gradient checkpointing, a KL reference model, the format reward and the
    recipe `rl` without SFT, in one small study."""
    memory = {"micro_batch_size": 4, "gradient_checkpointing": True}
    study = {
        "name": "gpu-options",
        "model": {"name_or_path": str(stand_ins["qwen3"]), "dtype": "bfloat16"},
        "tasks": {"train": [{"name": "chain_sum", "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                             "max_digits": 1}}],  # fmt: skip
                  "train_size": 32, "rl_size": 16, "test_size": 8, "target": "trace"},  # fmt: skip
        "grid": {"inits": ["random"], "recipes": ["sft", "rl"], "seeds": [0]},
        "sft": {"steps": 3, "batch_size": 8, "logging_steps": 1, **memory},
        "rl": {"steps": 2, "batch_size": 8, "num_generations": 4, "beta": 0.04, "format_weight": 0.5,
               "max_completion_length": 16, "eval_steps": 2, "heldout_items": 4, "logging_steps": 1, **memory},
        "eval": {"batch_size": 8, "max_new_tokens": 16, "samples": 0, "k": []},
        "report": {"bootstrap": 100},
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    from postfit.config import load_study
    from postfit.study.runner import run_study

    run_study(load_study(path)[0], out)  # in this process: torch is imported already
    for run in ("random-sft-s0", "random-rl-s0"):
        config = json.loads((out / "runs" / run / "model" / "config.json").read_text())
        assert config["dtype"] == "bfloat16", run
    rl = out / "runs" / "random-rl-s0"
    log = [r for r in read_jsonl(rl / "train_log.jsonl") if "reward" in r]
    assert len(log) == 2
    assert all("kl" in r and "rewards/format_reward/mean" in r for r in log)  # reference model, format reward
    assert "sft_from" not in json.loads((rl / "train.json").read_text())  # RL alone, from the init itself


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(tmp_path):
    """`bench/gpu_check.py --allow-cpu --preset nano` runs every stage (pre-training, SFT, decoding, GRPO, a study)
    and ends with its figures as JSON: no stage failed, and both decoding loops gave `model.generate`'s outputs."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script), "--allow-cpu", "--preset", "nano", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["failed stages"] == []
    equal = figures["decode: outputs equal to model.generate's (of 16)"]
    assert equal == {"static cache + CUDA graphs": 16, "growing cache": 16}
    assert figures["sft padded (sdpa): s/step (later half)"] > 0 and "study: stage wall s" in figures


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal where there is no GPU")
def test_gpu_check_without_a_gpu_exits_2():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no CUDA device visible" in proc.stderr
