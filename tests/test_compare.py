"""`postfit compare`: two synthetic study directories (test_report's fixture and an edited copy), compared from their
stored samples only."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from postfit.analysis import stats
from postfit.cli.app import app
from postfit.io import read_jsonl
from postfit.report.build import write_report
from postfit.report.compare import write_comparison
from postfit.report.results import BOOT_SEED
from test_report import SEEDS, _table_row, _write_jsonl, assert_self_contained, make_study


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return make_study(tmp_path / "study")


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def _edit(study: Path, name: str, change) -> Path:
    """A copy of `study` named `name` whose samples rows went through `change(run_name, row)`."""
    copy = study.parent / name
    shutil.copytree(study, copy)
    config = yaml.safe_load((copy / "study.yaml").read_text())
    (copy / "study.yaml").write_text(yaml.safe_dump({**config, "name": name}))
    for path in copy.glob("runs/*/samples.jsonl"):
        _write_jsonl(path, [change(path.parent.name, row) for row in read_jsonl(path)])
    return copy


def _all_right_on_id_test(run: str, row: dict) -> dict:
    """pretrained-sft answers every id_test item right, greedy; nothing else changes."""
    if run.startswith("pretrained-sft") and row["split"] == "id_test" and row["sample"] == -1:
        return {**row, "correct": True}
    return row


def _greedy(study: Path, run: str, split: str) -> np.ndarray:
    rows = [r for r in read_jsonl(study / "runs" / run / "samples.jsonl") if r["split"] == split and r["sample"] == -1]
    return np.array([float(r["correct"]) for r in sorted(rows, key=lambda r: r["item"])])


def test_side_by_side_tables_and_a_paired_difference(study_dir: Path, tmp_path: Path) -> None:
    tuned = _edit(study_dir, "tuned", _all_right_on_id_test)
    code, output = cli("compare", str(study_dir), str(tuned), "--out", str(tmp_path / "cmp"))
    assert code == 0, output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    # Each study's row is the one its own report shows.
    for d, name in ((study_dir, "synthetic"), (tuned, "tuned")):
        own = _table_row(write_report(d)[0].read_text(), "Greedy pass@1 (%)", ["pretrained", "sft"])
        row = _table_row(md, "Greedy pass@1 (%)", [name, "pretrained", "sft"])
        assert row[4].split(" (n=")[0] == own[3]  # id_test
        assert row[-1] == own[-1]  # ID→OOD drop
    # tuned minus synthetic on id_test: +25 pp (every item right vs 15 of 20), with the paired bootstrap's interval.
    a = [_greedy(study_dir, f"pretrained-sft-s{s}", "id_test") for s in SEEDS]
    b = [_greedy(tuned, f"pretrained-sft-s{s}", "id_test") for s in SEEDS]
    est, lo, hi = stats.paired_diff_ci(b, a, 200, 0.95, np.random.default_rng(BOOT_SEED))
    assert est == pytest.approx(0.25)
    row = _table_row(md, "Differences to synthetic (pp)", ["tuned − synthetic", "pretrained", "sft", "id_test"])
    assert row[4:] == [f"+{100 * est:.1f} [+{100 * lo:.1f}, +{100 * hi:.1f}]", "20", "2"]
    assert lo > 0
    # The page opens with that difference as its headline, then the figure, then the differences table.
    headline = md.split("\n\n", 2)[1]
    assert headline == (f"tuned − synthetic: 1 of 16 differences exclude zero; the largest is {row[4]} pp for "
                        "pretrained + sft on id_test (tuned higher).")  # fmt: skip
    assert md.index(headline) < md.index("compare_pass1.png") < md.index("## Differences") < md.index("## Studies")
    # Where the studies agree item by item, the difference is exactly 0 with a zero-width interval.
    row = _table_row(md, "Differences to synthetic (pp)", ["tuned − synthetic", "random", "sft", "ood_format"])
    assert row[4:] == ["+0.0 [+0.0, +0.0]", "20", "2"]
    # The page: self-contained, with the bar plot inline, and the md's plot written.
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert '<figure class="pf-plot" data-name="compare_pass1"' in page and "tuned − synthetic" in page
    assert_self_contained(page)
    assert (tmp_path / "cmp" / "plots" / "compare_pass1.png").read_bytes().startswith(b"\x89PNG")


def test_items_with_another_prompt_are_not_paired(study_dir: Path, tmp_path: Path) -> None:
    def reworded(run: str, row: dict) -> dict:
        if row["split"] == "id_test" and int(row["item"].rsplit("-", 1)[1]) < 5:
            return {**row, "prompt": "another question"}
        return row

    other = _edit(study_dir, "reworded", reworded)
    code, output = cli("compare", str(study_dir), str(other), "--out", str(tmp_path / "cmp"))
    assert code == 0, output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    row = _table_row(md, "Differences to synthetic (pp)", ["reworded − synthetic", "pretrained", "none", "id_test"])
    assert row[5:] == ["15", "2"]
    assert "pretrained × none, id_test: 5 item ids hold a different prompt or reference" in md
    row = _table_row(md, "Differences to synthetic (pp)", ["reworded − synthetic", "pretrained", "none", "ood_harder"])
    assert row[5:] == ["20", "2"]


def test_other_seeds_pair_nothing_and_say_so(study_dir: Path, tmp_path: Path) -> None:
    other = study_dir.parent / "reseeded"
    shutil.copytree(study_dir, other)
    for run_json in other.glob("runs/*/run.json"):
        meta = json.loads(run_json.read_text())
        run_json.write_text(json.dumps({**meta, "seed": meta["seed"] + 10}))
    code, output = cli("compare", str(study_dir), str(other), "--out", str(tmp_path / "cmp"))
    assert code == 0, output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    # Both are named "synthetic" in study.yaml: the page names them by directory.
    assert md.startswith("# postfit comparison: study vs reseeded\n")
    row = _table_row(md, "Differences to study (pp)", ["reseeded − study", "pretrained", "sft", "id_test"])
    assert row[4:] == ["— (no item and seed in common)", "0", "0"]


def test_bad_input_exits_2_and_writes_nothing(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    code, output = cli("compare", str(study_dir), "--out", str(out))
    assert code == 2 and "at least two study directories, got 1" in output
    code, output = cli("compare", str(study_dir), str(study_dir) + "/", "--out", str(out))
    assert code == 2 and "given twice" in output
    code, output = cli("compare", str(study_dir), str(tmp_path), "--out", str(out))
    assert code == 2 and f"{tmp_path}: no study.yaml" in output
    # A study evaluated on other splits only.
    other = _edit(study_dir, "elsewhere", lambda run, row: {**row, "split": "ood_" + row["split"]})
    code, output = cli("compare", str(study_dir), str(other), "--out", str(out))
    assert code == 2 and "share no evaluation split" in output and "elsewhere: ood_id_test" in output
    assert not out.exists()
    out.write_text("a file")
    code, output = cli("compare", str(study_dir), str(_edit(study_dir, "b", lambda run, row: row)), "--out", str(out))
    assert code == 2 and "--out is a file" in output and out.read_text() == "a file"


def test_distance_curves_of_several_studies_on_one_figure(study_dir: Path, tmp_path: Path) -> None:
    """Two studies that store distances: one figure, a panel per recipe, a line per study × init, each line its own
    study's binned curve; studies without distances (the first test's) get no such figure."""
    from postfit.report.distance import distance_curves
    from postfit.report.headline import TEXT_DISTANCE
    from postfit.report.results import load_study
    from test_report_distance import make_distance_study

    first = make_distance_study(tmp_path / "near")
    second = _edit(first, "far", lambda run, row: {**row, "correct": row["correct"] and (row["distance"] or 0) < 0.5})
    write_comparison([first, second], tmp_path / "cmp")
    md, page = (tmp_path / "cmp" / "compare.md").read_text(), (tmp_path / "cmp" / "compare.html").read_text()
    assert "![Greedy pass@1 against distance to the post-training data](plots/compare_distance.png)" in md
    assert md.index("compare_pass1.png") < md.index("compare_distance.png") < md.index("## Differences")
    body = re.search(r'<figure class="pf-plot" data-name="compare_distance">(.*?)</figure>', page, re.S).group(1)
    points = json.loads(re.search(r'class="pf-points">(.*?)</script>', body, re.S).group(1))["points"]
    labels = {t.split(" · ")[0] for *_, t in points}
    assert labels == {"distance: pretrained", "distance: random", "far: pretrained", "far: random"}
    far = distance_curves(load_study(second), TEXT_DISTANCE)[("random", "sft")]
    assert far[2][-1][0] == 0.0  # every item past distance 0.5 wrong in the edited study
    assert f"far: random · text distance to the post-training data {far[1][-1]:.4g}: 0" in {t for *_, t in points}
    write_comparison([study_dir, _edit(study_dir, "again", lambda run, row: row)], tmp_path / "old")
    assert "compare_distance" not in (tmp_path / "old" / "compare.md").read_text()
