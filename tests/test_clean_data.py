"""Clean data in real-data studies: SFT and RL rows of one source are disjoint by construction (`skip`), repeated
questions are dropped, overlaps are refused before anything is written, and contamination checks real SFT text."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, postfit
from postfit.config import load_study, parse_study
from postfit.errors import UserError
from postfit.item import Item

FIXTURE = ROOT / "tests" / "fixtures" / "sft_sums.jsonl"


def _study(sft: dict, rl: dict, **extra) -> dict:
    return {
        "name": "clean", "model": {"preset": "nano"}, "pretrain": {"tokens": 20000, "seq_len": 128},
        "data": {"sft": {"source": str(FIXTURE), **sft}, "rl": {"source": str(FIXTURE), **rl}},
        "grid": {"inits": ["random"], "recipes": ["sft+rl"], "seeds": [0]},
        "eval": {"benchmarks": ["rg:chain_sum"], "benchmark_limit": 4}, **extra,
    }  # fmt: skip


def test_overlapping_rows_of_one_source_are_refused_naming_the_fix():
    with pytest.raises(UserError, match=r"data.rl reads rows \[0, 8\).*overlap data.sft's rows \[0, 32\).*"
                                         r"set data.rl.skip to 32 or more"):  # fmt: skip
        parse_study(_study({"limit": 32}, {"limit": 8}), "s.yaml")
    with pytest.raises(UserError, match=r"rows \[40, end\).*overlap data.sft's rows \[0, end\)"):
        parse_study(_study({}, {"skip": 40}), "s.yaml")
    assert parse_study(_study({"limit": 32}, {"skip": 32, "limit": 8}), "s.yaml").data.row_overlap() is None
    parse_study(_study({"limit": 32}, {"limit": 8}, contamination={"drop": True}), "s.yaml")  # drop: allowed


def test_skip_reads_the_rows_after_it_with_their_own_ids():
    from postfit.data.sources import load_source

    assert [it.id for it in load_source(str(FIXTURE), skip=2, limit=3)] == ["sums/2", "sums/3", "sums/4"]
    assert len(load_source(str(FIXTURE), skip=40)) == 8


def test_paper_rows_are_disjoint():
    """`postfit plan paper` prints these ranges (tests/test_plan.py::test_paper_plan)."""
    spec = load_study("paper")[0]
    assert spec.data.row_overlap() is None and spec.data.rl.rows() == (32000, 40000)


def test_repeated_questions_are_dropped(tmp_path):
    from postfit.study.data import real_splits

    rows = FIXTURE.read_text().splitlines()
    dup = json.loads(rows[0]) | {"id": "sums/dup"}
    path = tmp_path / "dups.jsonl"
    path.write_text("\n".join([*rows[:10], json.dumps(dup)]) + "\n")
    only_sft = {"data": {"sft": {"source": str(path)}}, "grid": {"inits": ["random"], "recipes": ["sft"]}}
    spec = parse_study(_study({}, {}) | only_sft, "s.yaml")
    train = real_splits(spec)["train"]
    assert len(train) == 10 and "sums/dup" not in {it.id for it in train}


def test_rl_prompts_repeating_sft_questions_stop_the_study_before_anything_is_written(tmp_path):
    copy = tmp_path / "copy.jsonl"  # another file with the same questions: only the content check can see it
    shutil.copy(FIXTURE, copy)
    study = _study({"limit": 16}, {"limit": 8}) | {"data": {"sft": {"source": str(FIXTURE), "limit": 16},
                                                            "rl": {"source": str(copy), "limit": 8}}}  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(study))
    out = tmp_path / "out"
    proc = postfit("run", str(path), "--out", str(out), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "8 of the 8 rl items repeat a question of train" in proc.stderr and "contamination.drop" in proc.stderr
    assert not (out / "study.yaml").exists() and not (out / "data").exists()


def test_drop_leaves_repeated_rl_prompts_out_and_checks_sft_text_against_benchmarks(tmp_path):
    from postfit.analysis.contamination import drop_items, study_contamination
    from postfit.study.data import real_splits

    copy = tmp_path / "copy.jsonl"
    shutil.copy(FIXTURE, copy)
    study = _study({"limit": 16}, {}, contamination={"drop": True, "n": 5})
    study["data"]["rl"] = {"source": str(copy), "skip": 12, "limit": 8}  # rows 12-19: 12-15 repeat SFT's
    spec = parse_study(study, "s.yaml")
    splits = real_splits(spec)
    # A benchmark item whose text appears in an SFT trace (word 5-grams): found by the n-gram check only.
    splits["rg:chain_sum"] = [Item(id="b/1", source="rg:chain_sum", domain="procedural", prompt="", split="test",
                                   question=f"so {splits['train'][0].traces[0]} it is")]  # fmt: skip
    report = study_contamination(spec, splits)
    pairs = {(p["source"], p["check"], p["split"]): p["items"] for p in report["pairs"]}
    assert pairs[("train", "exact question", "rl")] == [f"sums/{i}" for i in range(12, 16)]
    assert pairs[("train", "word 5-gram", "rg:chain_sum")] == ["b/1"]
    kept = drop_items(splits, report)
    assert [it.id for it in kept["rl"]] == [f"sums/{i}" for i in range(16, 20)]
    assert kept["rg:chain_sum"] == []
