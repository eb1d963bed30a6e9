"""The pass@k crossover section of the report: a synthetic study whose sampled completions are built so that the
starting model's pass@k curve overtakes the post-trained one at a known k, and pairs that never cross."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from postfit.report.build import write_report
from postfit.report.headline import CROSSOVER
from postfit.report.results import load_study
from test_report import _table_row, _write_jsonl

SEEDS, N_ITEMS, N = [0, 1], 200, 8  # seeds, items per split, sampled completions per item on id_test
# Correct samples out of N for item i of seed s: a function of (i + s) % 2, the item's "half".
COUNTS = {
    # Start: 2 of 8 on every item. sft: 6 of 8 on half the items, 0 on the rest. pass@k at k = 1, 2, 3: none 0.25,
    # 0.464, 0.643; sft 0.375, 0.482, 0.5: none catches up with sft at k = 3.
    ("pretrained", "none"): (2, 2),
    ("pretrained", "sft"): (6, 0),
    # sft+rl sharpens sft: 8 of 8 where sft had 6. pass@k is 0.5 at every k, which sft reaches at k = 3 (a tie).
    ("pretrained", "sft+rl"): (8, 0),
    # Random init: its start never answers, so nothing post-trained is ever caught: "no crossover up to k = 8".
    ("random", "none"): (0, 0),
    ("random", "sft"): (3, 1),
    ("random", "sft+rl"): (4, 1),
}


def _samples(init: str, recipe: str, seed: int, n_by_split: dict[str, int]) -> list[dict]:
    rows = []
    for split, n in n_by_split.items():
        for i in range(N_ITEMS):
            c = min(COUNTS[init, recipe][(i + seed) % 2], n)
            base = {"split": split, "item": f"{split}-{i}", "prompt": f"q{i}", "reference": "1", "score": 0.0}
            rows.append({**base, "sample": -1, "completion": "1", "answer": "1", "correct": c > 0})
            rows += [{**base, "sample": j, "completion": "x", "answer": None, "correct": j < c} for j in range(n)]
    return rows


def make_passk_study(d: Path, n_by_split: dict[str, int]) -> Path:
    (d / "runs").mkdir(parents=True)
    config = {"name": "passk", "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft", "sft+rl"],
                                        "seeds": SEEDS},
              "eval": {"samples": 2, "samples_by_split": {"id_test": N}, "k": [2]},
              "report": {"bootstrap": 300, "ci": 0.95}}  # fmt: skip
    (d / "study.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for (init, recipe), seed in ((key, seed) for key in COUNTS for seed in SEEDS):
        run_dir = d / "runs" / f"{init}-{recipe}-s{seed}"
        run_dir.mkdir()
        meta = {"run": run_dir.name, "init": init, "recipe": recipe, "seed": seed, "params": 1000}
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
        _write_jsonl(run_dir / "samples.jsonl", _samples(init, recipe, seed, n_by_split))
    return d


@pytest.fixture(scope="module")
def passk_dir(tmp_path_factory) -> Path:
    """id_test with 8 samples per item (curves and crossovers), ood_harder with 2 (too few: no panel)."""
    return make_passk_study(tmp_path_factory.mktemp("passk") / "study", {"id_test": N, "ood_harder": 2})


def test_crossovers_at_the_known_k_and_none_where_the_start_never_answers(passk_dir: Path) -> None:
    from postfit.report.passk import crossover_comparisons

    comps = {(c.subject, c.start, c.recipe, c.split): c for c in crossover_comparisons(load_study(passk_dir))}
    pairs = [("none", "sft"), ("sft", "sft+rl"), ("none", "sft+rl")]
    assert set(comps) == {(init, *pair, "id_test") for init in ("pretrained", "random") for pair in pairs}
    for key in [("pretrained", "none", "sft", "id_test"), ("pretrained", "sft", "sft+rl", "id_test")]:
        c = comps[key]
        (k, lo, hi), share = c.est, c.crossed
        assert k == 3 and lo <= 3 <= hi and hi <= N and share > 0.9, (key, c.est, share)
        assert c.kind == CROSSOVER and c.upto == N and (c.n, c.seeds) == (N_ITEMS, 2) and c.supported
        assert c.value() == "k = 3" and c.verdict().startswith(f"{key[1]} catches up at k = 3")
    never = comps[("random", "none", "sft", "id_test")]
    assert never.est == (math.inf, math.inf, math.inf) and never.crossed == 0.0 and not never.supported
    assert never.value() == "no crossover up to k = 8" and never.interval() == "[> 8, > 8]"
    assert never.verdict() == "sft stays ahead (0% of resamples cross by k = 8)"
    # pass@1 and pass@8 of start and post-trained model beside the crossover: none 2/8 and sft (6/8 + 0) / 2.
    assert comps[("pretrained", "none", "sft", "id_test")].ends[0] == pytest.approx((0.25, 0.375))


def test_the_section_figure_table_and_comparison_rows(passk_dir: Path) -> None:
    md = write_report(passk_dir)[0].read_text()
    heading = "pass@k: does post-training widen or narrow what the model can reach?"
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    assert "![Unbiased pass@k against k](plots/pass_at_k.png)" in section
    assert (passk_dir / "plots" / "pass_at_k.png").stat().st_size > 0
    row = _table_row(md, heading, ["id_test", "pretrained", "none → sft"])
    assert row[3:5] == ["25.0 → 37.5", "100.0 → 50.0"] and row[5].startswith("k = 3 [")
    row = _table_row(md, heading, ["id_test", "random", "none → sft"])
    assert row[3:] == ["0.0 → 25.0", "0.0 → 100.0", "no crossover up to k = 8 [> 8, > 8]", "0%"]
    assert "ood_harder" not in section  # 2 samples per item: no curve, no crossover
    assert "The starting model catches up in 4 of the 6 pairs (id_test pretrained none → sft at k = 3 [" in section
    assert (
        "In 2 of the 6 pairs the post-trained model stays ahead at every k measured (id_test random none → sft; "
        in section
    )
    comparison = _table_row(md, "Comparisons", ["pass@k crossover, none vs sft, random"])
    assert comparison[1:5] == ["sft", "id_test", "no crossover up to k = 8", "[> 8, > 8]"]


def test_too_few_samples_says_so(tmp_path: Path) -> None:
    md = write_report(make_passk_study(tmp_path / "study", {"id_test": 2}))[0].read_text()
    section = md.split("## pass@k: does post-training widen or narrow what the model can reach?\n", 1)[1]
    assert section.split("\n## ", 1)[0].strip().startswith("No split has 4 or more sampled completions per item")
    assert "pass@k crossover" not in md.split("## Comparisons", 1)[1].split("\n## ", 1)[0]


def test_a_start_level_at_one_try_and_behind_at_k_is_worded_as_such() -> None:
    """RL that lowers pass@1 but not pass@8: the crossover is k = 1, and the findings say the post-trained model is
    above at k = K (a point estimate), not that it stays ahead."""
    from postfit.report.passk import Crossover, _findings

    def pair(recipe: str, start: str, ends) -> Crossover:
        return Crossover(CROSSOVER, "q", "pretrained", recipe, "id_test", (1.0, 1.0, math.inf), 200, 2, unit="k",
                         start=start, upto=8, crossed=0.8, ends=ends)  # fmt: skip

    text = _findings(
        [pair("sft+rl", "sft", ((0.55, 0.53), (0.645, 0.655))), pair("sft", "none", ((0.3, 0.2), (0.6, 0.5)))]
    )
    assert "In 2 of the 2 the starting model is level or ahead already at k = 1" in text
    assert "above its start's in 1 (id_test pretrained sft → sft+rl: 64.5 vs 65.5% at k = K)" in text
    assert "stays ahead" not in text and "catches up" not in text
    c = pair("sft+rl", "sft", ((0.55, 0.53), (0.645, 0.655)))
    assert (c.value(), c.interval(), c.verdict()) == (
        "k = 1",
        "[1, > 8]",
        "sft level or ahead from k = 1 (80% of resamples cross by k = 8)",
    )
