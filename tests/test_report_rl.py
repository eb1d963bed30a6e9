"""The report's RL sections, from a synthetic study directory whose numbers are known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from postfit.report.build import write_report
from test_report import _table_row, _write_jsonl

N_ITEMS, N_SAMPLES = 10, 4


def _samples(correct_counts: list[int]) -> list[dict]:
    """id_test rows: item i has correct_counts[i] of N_SAMPLES sampled completions right, greedy right iff any."""
    rows = []
    for i, c in enumerate(correct_counts):
        base = {"split": "id_test", "item": f"id_test-{i}", "prompt": "q", "reference": "1", "score": 0.0}
        rows.append({**base, "sample": -1, "completion": "1", "answer": "1", "correct": c > 0})
        rows += [{**base, "sample": j, "completion": "x", "answer": None, "correct": j < c} for j in range(N_SAMPLES)]
    return rows


def _study(tmp_path: Path) -> Path:
    d = tmp_path / "study"
    config = {"name": "rl", "grid": {"inits": ["random"], "recipes": ["sft", "sft+rl"], "seeds": [0]},
              "eval": {"k": [4], "samples": N_SAMPLES}, "report": {"bootstrap": 50}}  # fmt: skip
    d.mkdir()
    (d / "study.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    # Before RL every item is right 1 time in 4; after, half the items always, half never: pass@1 up, pass@4 down.
    runs = {"sft": [1] * N_ITEMS, "sft+rl": [4] * 5 + [0] * 5}
    for recipe, counts in runs.items():
        run_dir = d / "runs" / f"random-{recipe}-s0"
        run_dir.mkdir(parents=True)
        meta = {"run": run_dir.name, "init": "random", "recipe": recipe, "seed": 0, "params": 1000}
        if recipe == "sft+rl":
            meta["train"] = {"steps": 40, "generate_s": 12.5, "update_s": 7.5, "heldout_eval_s": 1.0,
                             "generated_tokens": 48000, "generated_tokens_per_s": 3840.0}  # fmt: skip
            log = [{"step": s, "reward": 0.2 + s / 100, "completions/mean_length": 30 - s / 4,
                    "frac_reward_zero_std": 0.5} for s in range(5, 45, 5)]  # fmt: skip
            _write_jsonl(run_dir / "train_log.jsonl", log)
            held = [{"step": s, "split": "id_test", "item": f"h{i}", "sample": -1, "correct": i < s // 10}
                    for s in (0, 20, 40) for i in range(8)]  # fmt: skip
            _write_jsonl(run_dir / "heldout.jsonl", held)
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
        _write_jsonl(run_dir / "samples.jsonl", _samples(counts))
    return d


def test_rl_sections_from_stored_logs_and_samples(tmp_path):
    md_path, html_path = write_report(_study(tmp_path))
    md = md_path.read_text(encoding="utf-8")
    row = _table_row(md, "What RL changed", ["random sft+rl s0"])
    # steps, reward first -> last, held-out 0/8 -> 4/8, length 28.75 -> 20, mean zero-variance, then the timings.
    assert row[1:] == ["40", "0.250 → 0.600", "0.0 → 50.0 (n=8)", "28.8 → 20.0", "0.50", "12.5", "7.5", "1.0",
                       "48,000", "3840.0"]  # fmt: skip
    row = _table_row(md, "What RL changed", ["id_test", "random", "0", "sft+rl"])
    assert row[4:6] == ["10", "25.0 → 50.0"] and row[7] == "100.0 → 50.0 (k=4)"
    assert row[6].startswith("+25.0 [")
    for plot in ("rl_reward", "rl_length_signal", "rl_pass_at_k"):
        assert f"plots/{plot}.png" in md and (md_path.parent / "plots" / f"{plot}.png").stat().st_size > 1000
    assert html_path.read_text(encoding="utf-8").count('<figure class="pf-plot"') >= 3


def test_no_rl_section_without_rl_runs(tmp_path):
    d = _study(tmp_path)
    for p in sorted((d / "runs" / "random-sft+rl-s0").iterdir()):
        p.unlink()
    (d / "runs" / "random-sft+rl-s0").rmdir()
    md = write_report(d)[0].read_text(encoding="utf-8")
    assert "What RL changed" not in md and "pass@k before and after RL" not in md
