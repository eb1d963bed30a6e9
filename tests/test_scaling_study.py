"""A tiny scaling study end to end: N axis, pretrained@TOKENS checkpoints, probes, and a report built from files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import postfit
from postfit.io import sha256

TINY = {
    "name": "tiny-scaling",
    "model": {"preset": "nano"},
    "pretrain": {"tokens": 40000, "seq_len": 128, "batch_size": 16, "tokenizer_chars": 200000,
                 "checkpoint_steps": 10},
    "tasks": {"train": [{"name": "chain_sum", "harder": {"min_terms": 3, "max_terms": 3},
                         "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}],
              "train_size": 40, "test_size": 8},
    "grid": {"inits": ["random", "pretrained@10000", "pretrained"], "recipes": ["none", "sft"],
             "posttrain_examples": [10, 40]},
    "sft": {"steps": 12, "batch_size": 8, "learning_rate": 0.005, "logging_steps": 4},
    "eval": {"batch_size": 16, "max_new_tokens": 12, "samples": 0, "k": []},
    "probes": {"icl": {"tasks": [{"name": "gcd", "config": {"min_numbers": 2, "max_numbers": 2, "min_value": 1,
                                                            "max_value": 30}}], "k": [0, 2], "items": 4, "pool": 16},
               "adapt": {"task": {"name": "count_bits", "config": {"min_n": 1, "max_n": 255}}, "steps": [0, 3],
                         "train_size": 16, "test_size": 4, "batch_size": 4}},
    "contamination": {"drop": True},
    "report": {"bootstrap": 100},
}  # fmt: skip

# The report's order: recovery and data worth, learning to learn, pre-training, contamination.
SECTIONS = ["## Accuracy vs post-training examples", "## Effective data transferred (sft)", "## Learning to learn",
            "## Accuracy vs pre-training tokens", "## Contamination"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scaling")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    postfit("run", str(root / "tiny.yaml"), "--out", str(root / "out"))
    return root / "out"


@pytest.mark.slow
def test_grid_checkpoints_and_probes_are_stored(tiny: Path):
    runs = sorted(p.name for p in (tiny / "runs").iterdir())
    assert runs == sorted(f"{i}-{r}-s0" for i in TINY["grid"]["inits"] for r in ["none", "sft-n10", "sft-n40"])
    snap = json.loads((tiny / "base" / "pretrained@10000" / "snapshot.json").read_text())
    full = json.loads((tiny / "base" / "meta.json").read_text())
    assert 0 < snap["tokens"] < full["tokens"] and abs(snap["tokens"] - 10000) <= 16 * 128
    meta = {r: json.loads((tiny / "runs" / r / "run.json").read_text()) for r in runs}
    assert meta["random-none-s0"]["pretrain_tokens"] == 0
    assert meta["pretrained@10000-sft-n10-s0"]["pretrain_tokens"] == snap["tokens"]
    assert meta["pretrained-sft-n40-s0"] | {"examples": 40} == meta["pretrained-sft-n40-s0"]
    # Different starting weights: the checkpoint is not the final model.
    from safetensors.numpy import load_file

    a, b = (load_file(tiny / "base" / d / "model.safetensors") for d in ("pretrained@10000", "pretrained"))
    assert any((a[k] != b[k]).any() for k in a)
    for r in runs:
        rows = [json.loads(line) for line in (tiny / "runs" / r / "probes.jsonl").read_text().splitlines()]
        assert {(x["probe"], x.get("k", x.get("m"))) for x in rows} == {("icl", 0), ("icl", 2), ("adapt", 0),
                                                                          ("adapt", 3)}  # fmt: skip
        assert all(len(x["shots"]) == x["k"] for x in rows if x["probe"] == "icl")
    c = json.loads((tiny / "data" / "contamination.json").read_text())
    assert c["drop"] is True and c["dropped"] == {}
    assert {p["source"] for p in c["pairs"]} == {"train", "pretrain corpus"}


@pytest.mark.slow
def test_report_sections_come_from_the_stored_files(tiny: Path):
    md = (tiny / "report.md").read_text()
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    for plot in ["scaling_sft", "transfer_sft", "budget", "probes"]:
        assert f"plots/{plot}.png" in md and (tiny / "plots" / f"{plot}.png").stat().st_size > 1000
    assert "pp (n=8 items, 1 seed, paired)" in md  # stated differences carry CI and n
    assert "no evaluation item overlapped, none dropped" in md
    # Flip every ICL verdict of one model to correct: the regenerated report must show 100% there. A hand edit is
    # refused (the sha256 recorded in run.json differs) until the run records the new file as its own.
    path, meta = tiny / "runs" / "random-none-s0" / "probes.jsonl", tiny / "runs" / "random-none-s0" / "run.json"
    original, original_meta = path.read_text(), meta.read_text()
    rows = [json.loads(line) for line in original.splitlines()]
    path.write_text("".join(json.dumps({**x, "correct": True} if x["probe"] == "icl" else x) + "\n" for x in rows))
    try:
        assert postfit("report", str(tiny), check=False).returncode == 2
        recorded = json.loads(original_meta)
        recorded["files"]["probes.jsonl"] = sha256(path.read_bytes())
        meta.write_text(json.dumps(recorded))
        postfit("report", str(tiny))
        probes = (tiny / "report.md").read_text().split("## Learning to learn")[1]
        row = next(line for line in probes.splitlines() if line.startswith("| random | none"))
        assert row.count("100.0 [100.0, 100.0]") == 2  # icl k=0 and k=2
    finally:
        path.write_text(original)
        meta.write_text(original_meta)
        postfit("report", str(tiny))
    assert (tiny / "report.md").read_text() == md
