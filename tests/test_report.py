"""The report: built from a synthetic study directory's stored files only (no model is trained)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from postfit.io import read_jsonl
from postfit.report.build import write_report
from postfit.report.results import load_study

SPLITS = ["id_test", "ood_harder", "ood_family", "ood_format"]
N_ITEMS, N_SAMPLES, SEEDS = 20, 4, [0, 1]
# Correct greedy items out of N_ITEMS per (init, recipe) and split, the same for every seed.
RATES = {
    ("pretrained", "none"): [10, 6, 4, 0],
    ("pretrained", "sft"): [15, 12, 10, 8],
    ("random", "none"): [0, 0, 0, 0],
    ("random", "sft"): [6, 3, 2, 1],
}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _samples(init: str, recipe: str, seed: int) -> list[dict]:
    rows = []
    for s, split in enumerate(SPLITS):
        for i in range(N_ITEMS):
            # Which items are right rotates with the seed; how many does not.
            greedy = (i + 5 * seed) % N_ITEMS < RATES[init, recipe][s]
            base = {"split": split, "item": f"{split}-{i}", "prompt": "q", "reference": "1", "score": 0.0}
            rows.append({**base, "sample": -1, "completion": "1", "answer": "1", "correct": greedy})
            for j in range(N_SAMPLES):
                ok = greedy and j < 2 or (i + j) % 7 == 0
                rows.append({**base, "sample": j, "completion": "x", "answer": None, "correct": ok})
    return rows


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return make_study(tmp_path / "study")


def make_study(d: Path) -> Path:
    """The synthetic study: every init x recipe of RATES, SEEDS seeds, logs, base/ and contamination checks."""
    (d / "runs").mkdir(parents=True)
    config = {"name": "synthetic", "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft"],
                                            "seeds": SEEDS},
              "eval": {"k": [1, 4]}, "report": {"bootstrap": 200, "ci": 0.95}}  # fmt: skip
    (d / "study.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for (init, recipe), seed in ((key, seed) for key in RATES for seed in SEEDS):
        run_dir = d / "runs" / f"{init}-{recipe}-s{seed}"
        run_dir.mkdir()
        meta = {"run": run_dir.name, "init": init, "recipe": recipe, "seed": seed, "params": 2012345,
                "config_hash": "ab12"}  # fmt: skip
        (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
        _write_jsonl(run_dir / "samples.jsonl", _samples(init, recipe, seed))
        # A stale results.jsonl with nonsense values: the report must not read it.
        _write_jsonl(run_dir / "results.jsonl", [{**meta, "split": "id_test", "metric": "pass@1", "value": 0.987}])
        if recipe == "sft":
            log = [{"step": s, "loss": 3.0 / (1 + s / 20) + seed * 0.1, "learning_rate": 1e-3, "epoch": s / 100}
                   for s in range(10, 110, 10)]  # fmt: skip
            _write_jsonl(run_dir / "train_log.jsonl", [*log, {"train_runtime": 12.0, "train_loss": 1.5}])
    (d / "base").mkdir()
    _write_jsonl(d / "base" / "pretrain_log.jsonl", [{"step": s, "loss": 6.0 - s / 100} for s in range(0, 500, 50)])
    (d / "base" / "meta.json").write_text(
        json.dumps(
            {
                "tokens": 1500000,
                "tokens_per_s": 6000.0,
                "unigram_entropy": 6.26,
                "heldout_loss_pretrained": 3.9,
                "heldout_loss_random": 7.7,
                "heldout_tokens": 8192,
            }
        ),
        encoding="utf-8",
    )
    (d / "data").mkdir()
    pairs = [{"source": "pretrain corpus", "split": s, "overlapping": 1, "total": N_ITEMS} for s in SPLITS]
    (d / "data" / "contamination.json").write_text(json.dumps({"n": 13, "corpus": "stdlib", "pairs": pairs}))
    return d


def _table_row(md: str, section: str, first_cells: list[str]) -> list[str]:
    """Cells of the first table row under heading `section` whose leading cells are `first_cells`."""
    text = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[: len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells} under {section!r}")


def _greedy_mean(study_dir: Path, init: str, recipe: str, split: str) -> float:
    per_seed = []
    for seed in SEEDS:
        rows = [
            json.loads(line)
            for line in (study_dir / "runs" / f"{init}-{recipe}-s{seed}" / "samples.jsonl").read_text().splitlines()
        ]
        greedy = [r["correct"] for r in rows if r["split"] == split and r["sample"] == -1]
        per_seed.append(sum(greedy) / len(greedy))
    return sum(per_seed) / len(per_seed)


def test_report_files_and_main_table(study_dir: Path) -> None:
    md_path, html_path = write_report(study_dir)
    assert md_path == study_dir / "report.md" and html_path == study_dir / "report.html"
    md = md_path.read_text()
    assert md.startswith("# postfit study: synthetic")
    assert "2,012,345 parameters" in md
    row = _table_row(md, "Greedy pass@1 (%)", ["pretrained", "sft"])
    assert row[2] == "2"  # seeds
    expected = 100 * _greedy_mean(study_dir, "pretrained", "sft", "id_test")
    assert expected == pytest.approx(75.0)
    assert row[3].startswith(f"{expected:.1f} [")
    assert "id_test (n=20)" in md
    assert "98.7" not in md
    # ID→OOD drop: 75 - mean(60, 50, 40) = +25 pp
    assert row[-1].startswith("+25.0 [")
    # pass@4 table exists; K=1 does not get a sampled table (pass@1 means greedy)
    assert "## pass@4 (%)" in md and "## pass@1 (%)" not in md
    assert "![Greedy pass@1 by split](plots/pass1_bars.png)" in md
    for name in ("pass1_bars", "loss_sft", "pretrain_loss"):
        assert (study_dir / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    assert "## Contamination" in md and "| pretrain corpus | word 13-gram | ood_family | 1 | 20 | 5.0 |" in md
    assert "regenerate with `postfit report" in md


def test_recovery_ratio(study_dir: Path) -> None:
    md = write_report(study_dir)[0].read_text()
    sft = _table_row(md, "Recovery ratio", ["sft", "id_test"])
    assert sft[2:4] == ["30.0", "75.0"]
    assert sft[4].startswith("0.40 [")
    assert _table_row(md, "Recovery ratio", ["none", "ood_format"])[4] == "undefined (pretrained score is 0)"
    assert _table_row(md, "Recovery ratio", ["none", "id_test"])[4].startswith("0.00 [")


def assert_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing loaded from elsewhere
    assert "<link" not in html and "<img" not in html
    assert not re.search(r"fetch\(|XMLHttpRequest|WebSocket|import\(|sendBeacon", html)  # the script asks for nothing
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "two elements of the page share an id"


def test_html_is_self_contained(study_dir: Path) -> None:
    html = write_report(study_dir)[1].read_text()
    assert html.count('<figure class="pf-plot"') == 5 and html.count("<svg") == 5  # the plots, as inline SVG
    assert_self_contained(html)
    assert "<td>pretrained</td>" in html


def _drawn_at(svg: str, series: int) -> list[tuple[float, float]]:
    """Where the SVG draws series `series`: its paths' vertices and edge midpoints (a bar's top), its markers."""
    out = []
    for group in re.findall(rf'<g id="[^"]*pf-s{series}-\d+">(.*?)</g>', svg, re.S):
        for d in re.findall(r'<path d="([^"]+)"', group):
            xy = [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+) (-?[\d.]+)", d)]
            out += xy + [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in zip(xy, xy[1:], strict=False)]
        out += [(float(x), float(y)) for x, y in re.findall(r'<use [^>]*x="([-\d.]+)" y="([-\d.]+)"', group)]
    return out


def test_every_hover_point_sits_on_what_the_svg_draws(study_dir: Path) -> None:
    """A plot's hover points are placed by the layout of the SVG's own draw, to the 0.1 unit they are rounded to."""
    html = write_report(study_dir)[1].read_text()
    figures = re.findall(r'<figure class="pf-plot" data-name="([^"]+)">(.*?)</figure>', html, re.S)
    # bars and lines
    assert {name for name, _ in figures} == {"headline", "pass1_bars", "pass_at_k", "loss_sft", "pretrain_loss"}
    for name, body in figures:
        points = json.loads(re.search(r'class="pf-points">(.*?)</script>', body, re.S).group(1))["points"]
        assert points, name
        for x, y, series, text in points:
            near = min(max(abs(x - a), abs(y - b)) for a, b in _drawn_at(body, series))
            assert near <= 0.051, (name, text, x, y, near)
        if name == "pretrain_loss":  # a reference level (axhline) spans the axes: its points name only the level
            level = [t for *_, t in points if t.startswith("corpus unigram entropy")]
            assert level == ["corpus unigram entropy: 6.26"] * 2


def test_html_holds_every_stored_sample_once(study_dir: Path) -> None:
    html = write_report(study_dir)[1].read_text()
    data = json.loads(re.search(r'<script type="application/json" id="pf-samples-data">(.*?)</script>', html).group(1))
    runs, items = data["runs"], data["items"]
    seen = sorted((runs[r][0], items[i][0], items[i][1], s, c, bool(ok)) for r, i, s, c, _, ok, _ in data["rows"])
    stored = sorted((p.parent.name, row["split"], row["item"], row["sample"], row["completion"], row["correct"])
                    for p in (study_dir / "runs").glob("*/samples.jsonl") for row in read_jsonl(p))  # fmt: skip
    assert seen == stored and data["clip"] == 0
    prompts = {
        (row["split"], row["item"]): row["prompt"]
        for row in read_jsonl(next((study_dir / "runs").glob("*/samples.jsonl")))
    }
    assert all(prompts.get((split, item), prompt) == prompt for split, item, prompt, _ in items)


def test_a_large_study_keeps_the_start_of_each_completion_and_links_the_rest(study_dir: Path, monkeypatch) -> None:
    from postfit.report import browser

    path = study_dir / "runs" / "random-sft-s0" / "samples.jsonl"
    rows = read_jsonl(path)
    rows[0]["completion"] = "Answer: 12345"
    _write_jsonl(path, rows)
    monkeypatch.setattr(browser, "WHOLE_LIMIT", 1000)
    monkeypatch.setattr(browser, "CLIP", 8)
    data = browser.samples_block(load_study(study_dir)).payload
    completions = {row[3] for row in data["rows"]}
    assert data["clip"] == 8 and "Answer: " in completions and max(map(len, completions)) == 8
    assert all(run[4] == f"runs/{run[0]}/samples.jsonl" and (study_dir / run[4]).exists() for run in data["runs"])


def test_report_is_deterministic(study_dir: Path) -> None:
    md1 = write_report(study_dir)[0].read_bytes()
    html1 = (study_dir / "report.html").read_bytes()
    md2 = write_report(study_dir)[0].read_bytes()
    assert md1 == md2
    assert html1 == (study_dir / "report.html").read_bytes()


def test_report_reads_samples(study_dir: Path) -> None:
    before = _table_row(write_report(study_dir)[0].read_text(), "Greedy pass@1 (%)", ["random", "sft"])
    path = study_dir / "runs" / "random-sft-s0" / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(r for r in rows if r["split"] == "id_test" and r["sample"] == -1 and not r["correct"])
    target["correct"] = True
    _write_jsonl(path, rows)
    after = _table_row(write_report(study_dir)[0].read_text(), "Greedy pass@1 (%)", ["random", "sft"])
    assert before[3].startswith("30.0 [")
    assert after[3].startswith(f"{100 * _greedy_mean(study_dir, 'random', 'sft', 'id_test'):.1f} [")
    assert after[3].startswith("32.5 [")  # (7/20 + 6/20) / 2
    assert after[4:] != before[4:] or after[3] != before[3]


def test_missing_optional_files_and_runs(study_dir: Path) -> None:
    for path in [
        study_dir / "data" / "contamination.json",
        study_dir / "base" / "meta.json",
        study_dir / "base" / "pretrain_log.jsonl",
        study_dir / "runs" / "random-none-s1" / "samples.jsonl",
    ]:
        path.unlink()
    md = write_report(study_dir)[0].read_text()
    assert "## Contamination" not in md and "pretrain_loss" not in md
    assert "Not yet evaluated, left out: random-none-s1." in md
    assert _table_row(md, "Greedy pass@1 (%)", ["random", "none"])[2] == "1"


def _headline(md: str) -> str:
    return md.split("\n\n", 2)[1]  # the paragraph right under the title


def _comparison_rows(md: str) -> list[list[str]]:
    table = md.split("## Comparisons\n\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table]


def test_report_opens_with_headline_figure_and_comparisons(study_dir: Path) -> None:
    """pretrained+sft 15/20 vs random+sft 6/20 on id_test, both seeds: the headline states the recovery ratio and
    the paired difference with their intervals, names the better init, and every number it holds is in a row of
    the comparisons table; the figure and that table come before the main table."""
    md = write_report(study_dir)[0].read_text(encoding="utf-8")
    text = _headline(md)
    assert md.index(text) < md.index("plots/headline.png") < md.index("## Comparisons") < md.index("## Greedy pass@1")
    assert len(re.findall(r"[.!?](?:\s|$)", text)) <= 3
    hit = re.search(r"pre-trained minus random is \+45\.0 \[\+(\d+\.\d), \+(\d+\.\d)\] pp on id_test "
                    r"\(pre-trained higher\)", text)  # fmt: skip
    assert hit and 0 < float(hit[1]) < 45 < float(hit[2])
    assert "After sft, random init recovers 0.40 [" in text
    assert re.search(r"id_test minus the mean of the OOD splits is \+25\.0 \[.*?\] pp for pretrained \+ sft "
                     r"\(a drop\)", text)  # fmt: skip
    rows = _comparison_rows(md)
    cells = {(r[0], r[1], r[2]): r for r in rows}
    assert cells[("difference, pre-trained − random", "sft", "id_test")][3:] == [
        "+45.0 pp", f"[+{hit[1]}, +{hit[2]}]", "20", "2", "pre-trained higher"]  # fmt: skip
    table_numbers = {n for r in rows for cell in r[3:5] for n in re.findall(r"[-+]?\d+\.\d+", cell)}
    assert set(re.findall(r"[-+]?\d+\.\d+", text)) <= table_numbers


def test_headline_says_no_detectable_difference_when_the_intervals_span_zero(study_dir: Path) -> None:
    """random+sft one item behind pretrained+sft on every split: each interval reaches zero, so no init is named."""
    RATES["random", "sft"] = [14, 11, 9, 7]
    try:
        for seed in SEEDS:
            _write_jsonl(study_dir / "runs" / f"random-sft-s{seed}" / "samples.jsonl", _samples("random", "sft", seed))
    finally:
        RATES["random", "sft"] = [6, 3, 2, 1]
    md = write_report(study_dir)[0].read_text(encoding="utf-8")
    text = _headline(md)
    assert text.startswith("After post-training (sft), pre-trained and random init show no detectable difference")
    assert "higher" not in text
    for row in _comparison_rows(md):
        if row[0] == "difference, pre-trained − random":
            lo, hi = (float(x) for x in row[4].strip("[]").split(", "))
            assert row[3] == "+5.0 pp" and lo <= 0 <= hi and row[7] == "no detectable difference", row


def test_pretraining_held_out_loss_against_the_unigram_entropy(study_dir: Path) -> None:
    md = write_report(study_dir)[0].read_text(encoding="utf-8")
    assert (
        "held-out loss 3.90 on 8,192 corpus tokens never trained on, 2.36 below the corpus's unigram entropy "
        "(6.26: the loss of a model that ignores context); the random init it started from: 7.70."
    ) in md
