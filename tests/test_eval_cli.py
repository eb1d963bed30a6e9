"""`postfit eval`: a study's checkpoint on HumanEval and a procedural benchmark, offline, in the study's formats."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pytest

from conftest import full_sandbox, postfit, weak_flags
from postfit.io import read_jsonl
from test_lighteval_protocol import check_lm_eval_layout

BENCHES = ("humaneval", "rg:chain_sum")
LIMIT, SAMPLES = 3, 2


@pytest.fixture(scope="module")
def evaluated(smoke_dir, tmp_path_factory) -> tuple[Path, Path, str]:
    """(eval output dir, smoke study dir, the CLI's stdout) for one `postfit eval` of a smoke checkpoint."""
    out = tmp_path_factory.mktemp("eval") / "out"
    model = smoke_dir / "runs" / "pretrained-sft-s0" / "model"
    proc = postfit("eval", str(model), "--bench", ",".join(BENCHES), "--out", str(out), "--limit", str(LIMIT),
                   "--samples", str(SAMPLES), "--max-new-tokens", "24", "--batch-size", "8",
                   *weak_flags())  # fmt: skip
    return out, smoke_dir, proc.stdout


@pytest.mark.slow  # evaluates the smoke study's trained checkpoints
def test_files_have_the_study_formats(evaluated):
    out, smoke_dir, _ = evaluated
    samples, results = read_jsonl(out / "samples.jsonl"), read_jsonl(out / "results.jsonl")
    study_run = next((smoke_dir / "runs").glob("*/samples.jsonl"))
    assert {frozenset(r) for r in samples} == {frozenset(read_jsonl(study_run)[0])}
    assert {frozenset(r) for r in results} == {frozenset(read_jsonl(smoke_dir / "results.jsonl")[0])}
    for bench in BENCHES:
        rows = [r for r in samples if r["split"] == bench]
        items = {r["item"] for r in rows}
        assert len(items) == LIMIT
        assert sorted(r["sample"] for r in rows) == sorted([-1, *range(SAMPLES)] * LIMIT)
        metrics = [r["metric"] for r in results if r["split"] == bench]
        assert metrics == ["pass@1", f"pass@{SAMPLES}", f"avg@{SAMPLES}"]
    assert all(r["reference"] is None for r in samples if r["split"] == "humaneval")  # code: tests, no answer
    meta = json.loads((out / "eval.json").read_text())
    assert meta["benchmarks"] == {b: LIMIT for b in BENCHES}
    assert meta["sandbox"]["weak"] is (not full_sandbox())  # humaneval ran model-written code: its layers recorded
    assert meta["protocol"] == "postfit" and {r["protocol"] for r in samples + results} == {"postfit"}
    lm_eval = json.loads((out / "results_lm-eval.json").read_text())
    check_lm_eval_layout(lm_eval, {b: LIMIT for b in BENCHES}, "postfit")
    assert lm_eval["results"]["humaneval"][f"pass@{SAMPLES},none"] == next(
        r["value"] for r in results if r["split"] == "humaneval" and r["metric"] == f"pass@{SAMPLES}"
    )


@pytest.mark.slow  # evaluates the smoke study's trained checkpoints
def test_scores_agree_with_rescoring_the_stored_samples(evaluated, benign):
    """Every stored verdict is what the verifier says of the stored completion, and every result is what the
    stored verdicts give (pass@k by the literal formula of Chen et al.)."""
    from postfit.data.benchmarks import load_benchmark
    from postfit.verify import is_correct, score

    out, _, stdout = evaluated
    samples, results = read_jsonl(out / "samples.jsonl"), read_jsonl(out / "results.jsonl")
    items = {it.id: it for b in BENCHES for it in load_benchmark(b, limit=LIMIT)}
    for row in samples:
        answer, value = score(items[row["item"]], row["completion"])
        assert (row["answer"], row["score"], row["correct"]) == (answer, value, is_correct(value))
        assert row["prompt"] == items[row["item"]].prompt
    for bench in BENCHES:
        rows = [r for r in samples if r["split"] == bench]
        greedy = [r["correct"] for r in rows if r["sample"] == -1]
        per_item = {}
        for r in rows:
            if r["sample"] >= 0:
                per_item.setdefault(r["item"], []).append(r["correct"])
        expected = {
            "pass@1": np.mean(greedy),
            f"avg@{SAMPLES}": np.mean([np.mean(c) for c in per_item.values()]),
            f"pass@{SAMPLES}": np.mean(
                [1 - comb(SAMPLES - sum(c), SAMPLES) / comb(SAMPLES, SAMPLES) for c in per_item.values()]
            ),  # fmt: skip
        }
        got = {r["metric"]: r["value"] for r in results if r["split"] == bench}
        assert got == pytest.approx(expected)
        assert all(r["n"] == LIMIT and r["ci_low"] <= r["value"] <= r["ci_high"] for r in results)
        assert bench in stdout


def test_unreachable_benchmark_exits_2_naming_it(tmp_path, monkeypatch):
    """Offline with an empty cache: the dataset is named with the command that fetches it; nothing is written
    (benchmarks load before any model, so the model need not exist either)."""
    for var in ("HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / "empty-cache"))
    proc = postfit("eval", "no/model", "--bench", "aime24", "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "HuggingFaceH4/aime_2024" in proc.stderr and "hf download" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_benchmark_exits_2_listing_valid_names(tmp_path):
    proc = postfit("eval", "no/model", "--bench", "humaneval,gsm9k", "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "'gsm9k'" in err and all(name in err for name in ("gsm8k", "math500", "aime24", "livecodebench", "rg:"))


def test_missing_model_exits_2_naming_it(tmp_path):
    proc = postfit("eval", "no-such-org/no-such-model", "--bench", "rg:chain_sum", "--limit", "1",
                   "--out", str(tmp_path / "out"), check=False)  # fmt: skip
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "hf download no-such-org/no-such-model" in message
    assert "MODEL: 'no-such-org/no-such-model'" in message and "model.name_or_path" not in message


@pytest.mark.slow  # evaluates the smoke study's trained checkpoints
def test_model_without_chat_template_gets_the_raw_prompt(smoke_dir):
    """A base model continues the prompt text itself (with its BOS), as plain `model.generate` would."""
    import torch

    from postfit.config import EvalOptions
    from postfit.evaluation.generate import generate
    from postfit.models import load_tokenizer

    path = smoke_dir / "runs" / "pretrained-sft-s0" / "model"
    from transformers import AutoModelForCausalLM

    model, tok = AutoModelForCausalLM.from_pretrained(path), load_tokenizer(path)
    tok.chat_template = None
    prompt = "def add(a, b):\n    return"
    ours = generate(model, tok, [prompt], EvalOptions(max_new_tokens=8, samples=0, k=[]))[0][0]
    with torch.inference_mode():
        enc = tok(prompt, return_tensors="pt")
        ids = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert ours == tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_avg_and_pass_at_k_from_samples():
    """Two items, three samples each: literal values of every metric."""
    from postfit.evaluation.benchmarks import results

    def rows(item, greedy, sampled):
        return [{"split": "b", "item": item, "sample": -1, "correct": greedy}] + [
            {"split": "b", "item": item, "sample": s, "correct": c} for s, c in enumerate(sampled)
        ]

    samples = rows("x", True, [True, False, False]) + rows("y", False, [True, True, True])
    got = {r["metric"]: r["value"] for r in results({"run": "m", "seed": 0}, samples, [2, 3])}
    assert got == pytest.approx({"pass@1": 0.5, "pass@2": (2 / 3 + 1) / 2, "pass@3": 1.0, "avg@3": (1 / 3 + 1) / 2})


def test_help_lists_every_benchmark():
    from postfit.cli.eval import BENCH_HELP
    from postfit.data.benchmarks import BENCHMARKS

    assert all(name in BENCH_HELP for name in BENCHMARKS), "postfit eval --help is missing a benchmark"
