"""Accuracy against distance to the post-training data, in the report: a synthetic study whose greedy correctness is
a known function of distance, P(correct) = sigmoid(a + b d) with b per init, and an old study that stores no
distance at all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from postfit.report.build import write_report
from postfit.report.headline import INITS, SLOPE, STRUCTURE, TEXT_DISTANCE
from postfit.report.results import load_study
from test_report import _drawn_at, _table_row, _write_jsonl, assert_self_contained, make_study

TRUTH = {"pretrained": (1.0, -1.0), "random": (2.0, -4.0)}  # (a, b): random init falls off faster, by 3 log-odds
SPLITS = {"id_test": (0.0, 0.6), "ood_harder": (0.4, 1.0)}  # the range of each split's distances
N_ITEMS, SEEDS, COPIES = 300, [0, 1], 3  # items per split; the first COPIES id_test items are copies (distance 0)


def _distances() -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    out = {split: list(rng.uniform(lo, hi, N_ITEMS)) for split, (lo, hi) in SPLITS.items()}
    out["id_test"][:COPIES] = [0.0] * COPIES
    return out


def make_distance_study(d: Path) -> Path:
    """Inits pretrained and random, recipes none (every answer wrong) and sft, two seeds, greedy rows only."""
    (d / "runs").mkdir(parents=True)
    config = {"name": "distance", "grid": {"inits": list(TRUTH), "recipes": ["none", "sft"], "seeds": SEEDS},
              "eval": {"k": [1]}, "report": {"bootstrap": 200, "ci": 0.95}}  # fmt: skip
    (d / "study.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    distances = _distances()
    for init, recipe, seed in ((i, r, s) for i in TRUTH for r in ["none", "sft"] for s in SEEDS):
        run_dir = d / "runs" / f"{init}-{recipe}-s{seed}"
        run_dir.mkdir()
        meta = {"run": run_dir.name, "init": init, "recipe": recipe, "seed": seed, "params": 1000}
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
        rng = np.random.default_rng([seed, list(TRUTH).index(init), recipe == "sft"])
        a, b = TRUTH[init]
        rows = []
        for split, ds in distances.items():
            for i, dist in enumerate(ds):
                ok = recipe == "sft" and bool(rng.random() < 1 / (1 + np.exp(-(a + b * dist))))
                rows.append({"split": split, "item": f"{split}-{i}", "prompt": f"q{i}", "reference": "1", "score": 0.0,
                             "sample": -1, "completion": "1" if ok else "2", "answer": "1" if ok else "2",
                             "correct": ok, "distance": dist, "structure": int(round(4 * dist)),
                             "token_distance": 0.9 * dist})  # fmt: skip
        _write_jsonl(run_dir / "samples.jsonl", rows)
    return d


@pytest.fixture
def distance_dir(tmp_path: Path) -> Path:
    return make_distance_study(tmp_path / "study")


def test_slopes_recover_the_known_function_of_distance(distance_dir: Path) -> None:
    """Each arm's slope has the true sign, lies within 0.7 log-odds of the truth and its interval holds it; the
    difference pre-trained minus random (+3) lies in its paired interval, which excludes zero."""
    from postfit.report.distance import distance_comparisons

    comps = [c for c in distance_comparisons(load_study(distance_dir)) if c.split == TEXT_DISTANCE]
    slopes = {c.subject: c for c in comps if c.kind == SLOPE and c.recipe == "sft"}
    assert set(slopes) == {"pretrained", "random", INITS}
    assert [c for c in comps if c.recipe == "none"] == []  # every answer wrong: no slope, and `none` has no gap
    for init, (_, b) in TRUTH.items():
        est, lo, hi = slopes[init].est
        assert np.sign(est) == np.sign(b) and abs(est - b) < 0.7 and lo <= b <= hi, (init, slopes[init].est)
        assert slopes[init].n == 2 * N_ITEMS and slopes[init].seeds == 2 and slopes[init].supported
    est, lo, hi = slopes[INITS].est
    true_diff = TRUTH["pretrained"][1] - TRUTH["random"][1]
    assert lo <= true_diff <= hi and lo > 0 and abs(est - true_diff) < 1.0, slopes[INITS].est
    assert (
        slopes[INITS].quantity == "slope difference"
        and slopes[INITS].verdict() == "pre-trained declines less with distance"
    )


def test_the_section_figure_and_comparison_rows(distance_dir: Path) -> None:
    md_path, html_path = write_report(distance_dir)
    md, html = md_path.read_text(), html_path.read_text()
    assert md.index("## Out of distribution") < md.index("## Distance to the post-training data")
    section = md.split("## Distance to the post-training data\n", 1)[1].split("\n## ", 1)[0]
    assert "![Greedy pass@1 against distance to the post-training data](plots/distance.png)" in section
    assert (distance_dir / "plots" / "distance.png").read_bytes().startswith(b"\x89PNG")
    row = _table_row(md, "Distance to the post-training data", [INITS, "sft", "text"])
    assert re.fullmatch(r"\+\d\.\d\d \[\+\d\.\d\d, \+\d\.\d\d\]", row[3]) and row[4:6] == ["600", "2"]
    assert _table_row(md, "Distance to the post-training data", ["random", "sft", "structural"])[6] == (
        "falls with distance")  # fmt: skip
    token = _table_row(md, "Distance to the post-training data", [INITS, "sft", "token"])
    assert re.fullmatch(r"\+\d\.\d\d \[\+\d\.\d\d, \+\d\.\d\d\]", token[3]), token  # 1/0.9 of the text slope
    assert f"After sft, on text distance, pre-trained minus random slope is {row[3]} log-odds (pretrained -" in section
    assert "No slope for pretrained + none, random + none: every answer the same." in section
    assert f"{COPIES} of the {2 * N_ITEMS} evaluated items (id_test: {COPIES})" in section
    assert "data: id_test-0, id_test-1, id_test-2." in section  # the item ids, as the samples hold them
    # The comparisons table lists the slopes; the headline's third sentence is the supported slope difference.
    comparisons = md.split("## Comparisons\n", 1)[1].split("\n## ", 1)[0]
    assert "| distance slope, pretrained | sft | text distance |" in comparisons
    assert f"| slope difference, {INITS} | sft | text distance |" in comparisons
    headline = md.split("\n\n", 2)[1]
    assert len(re.findall(r"[.!?](?:\s|$)", headline)) <= 3
    third = "Against text distance to the post-training data, the pre-trained minus random slope of accuracy after sft"
    assert f"{third} is {row[3]} log-odds (pre-trained declines less with distance)." in headline
    assert "difference of the slopes of accuracy on distance" in comparisons  # the rules paragraph names the rule
    # Both panels in report.html, every hover point on a drawn mark.
    assert_self_contained(html)
    body = re.search(r'<figure class="pf-plot" data-name="distance">(.*?)</figure>', html, re.S).group(1)
    assert "text distance" in body and "token distance" in body and "structural distance" in body
    points = json.loads(re.search(r'class="pf-points">(.*?)</script>', body, re.S).group(1))["points"]
    assert {t.split(" · ")[0] for *_, t in points} == {f"{i} + {r}" for i in TRUTH for r in ("none", "sft")}
    for x, y, series, text in points:
        assert min(max(abs(x - a), abs(y - b)) for a, b in _drawn_at(body, series)) <= 0.051, text


def test_accuracy_per_bin_falls_faster_for_random_init(distance_dir: Path) -> None:
    """The curves behind the figure: equal-count bins of text distance, one bin per structural value."""
    from postfit.report.distance import distance_curves

    study = load_study(distance_dir)
    text, structure = distance_curves(study, TEXT_DISTANCE), distance_curves(study, STRUCTURE)
    for init in TRUTH:
        _, x, est = text[(init, "sft")]
        assert len(x) == 5 and x == sorted(x) and all(lo <= v <= hi for v, lo, hi in est)
        assert est[0][0] > est[-1][0]
        assert structure[(init, "sft")][1] == [0, 1, 2, 3, 4]
    drop = {init: text[(init, "sft")][2][0][0] - text[(init, "sft")][2][-1][0] for init in TRUTH}
    assert drop["random"] > drop["pretrained"] + 0.2


def test_an_old_study_without_distances_says_so_and_nothing_else_changes(tmp_path: Path, monkeypatch) -> None:
    """test_report's study stores no distance: one line in the section, no slope row, and the rest of the report as
    it is without the section."""
    from postfit.report import build, comparisons

    d = make_study(tmp_path / "old")
    md = write_report(d)[0].read_text()
    section = md.split("## Distance to the post-training data\n\n", 1)[1].split("\n\n## ", 1)[0]
    assert section.startswith("No distances to the post-training data are stored") and "\n" not in section
    assert "distance slope" not in md and "slope difference" not in md and "plots/distance.png" not in md
    assert "then the largest supported RL or probe effect. Where no interval" in md
    monkeypatch.setattr(build, "distance_blocks", lambda study, comps: [])
    monkeypatch.setattr(comparisons, "distance_comparisons", lambda study: [])
    without = write_report(d)[0].read_text()
    assert md.replace(f"## Distance to the post-training data\n\n{section}\n\n", "") == without
