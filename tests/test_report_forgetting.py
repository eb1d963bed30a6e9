"""Forgetting in the report: test_report's synthetic study with forgetting rows of known loss and KL per block, a
study measured before forgetting rows existed, and a study of a model postfit did not pre-train."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from postfit.report.build import write_report
from postfit.report.forgetting import HEADING
from postfit.report.results import load_study
from test_report import SEEDS, _table_row, _write_jsonl, make_study

BLOCKS, TOKENS = 32, 255
# (init, recipe) -> (loss above the block's own level, KL): pre-trained forgets 0.5 nats after SFT; random init starts
# near ln(vocabulary) and SFT moves it by -1.0, a reference and not forgetting.
TRUTH = {("pretrained", "none"): (3.9, 0.0), ("pretrained", "sft"): (4.4, 0.4),
         ("random", "none"): (7.7, 0.0), ("random", "sft"): (6.7, 2.0)}  # fmt: skip


def _rows(init: str, recipe: str, seed: int) -> list[dict]:
    """Blocks differ by 0.3 nats (the same in every run: pairing by block removes it); runs add 0.02 of noise."""
    level = np.random.default_rng(3).normal(0.0, 0.3, BLOCKS)
    rng = np.random.default_rng([seed, list(TRUTH).index((init, recipe))])
    loss, kl = TRUTH[init, recipe]
    noise = 0.0 if recipe == "none" else 0.02
    return [{"block": b, "tokens": TOKENS, "loss": float(loss + level[b] + rng.normal(0, noise)),
             "kl": kl and float(kl + rng.normal(0, 0.02))} for b in range(BLOCKS)]  # fmt: skip


def make_forgetting_study(d: Path) -> Path:
    make_study(d)
    for (init, recipe), seed in ((key, seed) for key in TRUTH for seed in SEEDS):
        _write_jsonl(d / "runs" / f"{init}-{recipe}-s{seed}" / "forgetting.jsonl", _rows(init, recipe, seed))
    return d


@pytest.fixture
def forgetting_dir(tmp_path: Path) -> Path:
    return make_forgetting_study(tmp_path / "study")


NUM = r"([+-]?\d+\.\d{3})"


def _interval(cell: str) -> tuple[float, ...]:
    """(estimate, lo, hi) of a cell '3.905 [3.801, 4.010]'."""
    return tuple(map(float, re.fullmatch(rf"{NUM} \[{NUM}, {NUM}\]", cell).groups()))


def test_the_table_holds_each_arm_with_intervals_paired_by_seed_and_block(forgetting_dir: Path) -> None:
    md = write_report(forgetting_dir)[0].read_text()
    level = np.random.default_rng(3).normal(0.0, 0.3, BLOCKS).mean()
    pre_sft = _table_row(md, HEADING, ["pretrained", "sft"])
    loss, change, kl = (_interval(c) for c in pre_sft[2:5])
    assert loss[1] <= 4.4 + level <= loss[2] and pre_sft[5:] == [str(BLOCKS), str(len(SEEDS))]
    # Blocks vary by 0.3 nats, runs by 0.02: paired by block, the change's interval is narrow and holds +0.5.
    assert change[1] <= 0.5 <= change[2] and change[2] - change[1] < 0.05 and change[1] > 0
    assert kl[1] <= 0.4 <= kl[2] and abs(kl[0] - 0.4) < 0.01
    # The blocks' spread makes the loss's own interval wide: the pairing is what narrows the change.
    assert loss[2] - loss[1] > 5 * (change[2] - change[1])
    none = _table_row(md, HEADING, ["pretrained", "none"])
    assert none[3] == "—" and none[4] == "0 (its own start)"
    assert _interval(none[2])[0] == pytest.approx(3.9 + level, abs=5e-4)
    rand = _table_row(md, HEADING, ["random (reference)", "sft"])
    change, kl = _interval(rand[3]), _interval(rand[4])
    assert change[1] <= -1.0 <= change[2] and kl[0] == pytest.approx(2.0, abs=0.01)


def test_comparison_rows_and_findings_are_for_pretrained_only(forgetting_dir: Path) -> None:
    """One comparison row, the pre-trained loss increase after sft; random init is named a reference."""
    md = write_report(forgetting_dir)[0].read_text()
    comparisons = md.split("## Comparisons\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in comparisons.splitlines() if line.startswith("| loss increase")]
    assert len(rows) == 1 and rows[0].startswith("| loss increase, pretrained | sft | pre-training corpus | +0.5")
    assert rows[0].rstrip(" |").endswith("| 32 | 2 | forgets: the loss rises")
    section = md.split(f"## {HEADING}\n", 1)[1].split("\n## ", 1)[0]
    assert "After sft, the pretrained model's loss on the held-out pre-training corpus is " in section
    assert "nats from pretrained + none (forgets: the loss rises)" in section
    assert "(base/meta.json: 3.9000)" in section and "its rows are a reference" in section
    assert "That is still below the untrained random init's 7.7" in section  # 4.4 + the blocks' level
    assert md.index("## Distance to the post-training data") < md.index(f"## {HEADING}")
    assert study_comparisons(forgetting_dir) == ["pretrained"]


def study_comparisons(d: Path) -> list[str]:
    from postfit.report.forgetting import forgetting_comparisons

    return [c.subject for c in forgetting_comparisons(load_study(d))]


def test_unmeasured_runs_and_studies_say_so(forgetting_dir: Path, tmp_path: Path) -> None:
    (forgetting_dir / "runs" / "random-sft-s1" / "forgetting.jsonl").unlink()
    md = write_report(forgetting_dir)[0].read_text()
    assert "Not measured for random-sft-s1 (evaluated before postfit stored its rows)." in md
    assert _table_row(md, HEADING, ["random (reference)", "sft"])[6] == "1"  # the seed that has rows
    old = write_report(make_study(tmp_path / "old"))[0].read_text()  # no run has rows: one line, no comparison
    section = old.split(f"## {HEADING}\n\n", 1)[1].split("\n\n## ", 1)[0]
    assert section.startswith("Not measured: no run stored forgetting rows") and "loss increase" not in old
    hub = make_forgetting_study(tmp_path / "hub")
    config = yaml.safe_load((hub / "study.yaml").read_text())
    (hub / "study.yaml").write_text(yaml.safe_dump({**config, "model": {"name_or_path": "Qwen/Qwen3-0.6B-Base"}}))
    section = write_report(hub)[0].read_text().split(f"## {HEADING}\n\n", 1)[1].split("\n\n## ", 1)[0]
    assert section == ("Not measured: the model was not pre-trained by postfit (`model.name_or_path`), so its "
                       "pre-training corpus is not known here.")  # fmt: skip
