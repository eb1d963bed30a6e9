"""report.html in a real browser (Debian's chromium through playwright): the sample browser and the plots work
from the page's own controls, with no console error and no network request."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from postfit.io import read_jsonl

pytestmark = pytest.mark.slow

ROW_KEYS = "rows => rows.map(r => [r.cells[0].textContent, r.cells[2].textContent, r.cells[3].textContent])"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test report.html in chromium: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])  # root, as in CI
        yield b
        b.close()


def _open(browser, path: Path):
    """A page showing `path`, with the console errors and warnings and the requests it has logged so far."""
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    pg.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(path.as_uri())
    return pg, errors, requests, path.as_uri()


@pytest.fixture(scope="module")
def page(browser, smoke_dir):
    opened = _open(browser, smoke_dir / "report.html")
    opened[0].wait_for_selector("#pf-rows tr")
    return opened


def _stored(smoke_dir: Path) -> list[dict]:
    return [{**row, "run": p.parent.name} for p in sorted((smoke_dir / "runs").glob("*/samples.jsonl"))
            for row in read_jsonl(p)]  # fmt: skip


def _cells(pg, column: int) -> list[str]:
    return pg.eval_on_selector_all("#pf-rows tr", f"rows => rows.map(r => r.cells[{column}].textContent)")


def test_every_stored_sample_is_reachable_page_by_page(page, smoke_dir):
    pg, errors, requests, url = page
    stored = _stored(smoke_dir)
    assert pg.text_content("#pf-count").startswith(f"{len(stored)} of {len(stored)} samples")
    seen = []
    while True:
        seen += [tuple(r) for r in pg.eval_on_selector_all("#pf-rows tr", ROW_KEYS)]
        if pg.is_disabled("#pf-next"):
            break
        pg.click("#pf-next")
    kind = lambda s: "greedy" if s < 0 else f"sample {s}"  # noqa: E731
    assert sorted(seen) == sorted((r["run"], r["item"], kind(r["sample"])) for r in stored)
    assert errors == [] and requests == [url]


def test_filters_and_search_through_the_page_controls(page, smoke_dir):
    pg, errors, requests, url = page
    stored = _stored(smoke_dir)
    pg.select_option("#pf-f-run", "random-sft-s0")
    pg.select_option("#pf-f-verdict", "wrong")
    want = [r for r in stored if r["run"] == "random-sft-s0" and not r["correct"]]
    assert want and pg.text_content("#pf-count").startswith(f"{len(want)} of {len(stored)} samples")
    assert set(_cells(pg, 0)) == {"random-sft-s0"} and set(_cells(pg, 4)) == {"wrong"}
    assert len(_cells(pg, 0)) == min(50, len(want))
    pg.select_option("#pf-f-split", "ood_family")
    pg.select_option("#pf-f-sample", "greedy")
    want = [r for r in want if r["split"] == "ood_family" and r["sample"] == -1]
    assert sorted(_cells(pg, 2)) == sorted(r["item"] for r in want)[:50]
    for control in ("#pf-f-run", "#pf-f-verdict", "#pf-f-split", "#pf-f-sample"):
        pg.select_option(control, "")
    needle = "Answer: 1"
    pg.fill("#pf-f-text", needle.lower())
    hits = [r for r in stored if needle.lower() in (r["prompt"] + "\n" + r["completion"]).lower()]
    assert hits and pg.text_content("#pf-count").startswith(f"{len(hits)} of")
    pg.fill("#pf-f-text", "")
    assert errors == [] and requests == [url]


def test_an_item_shows_every_runs_completion_side_by_side(page, smoke_dir):
    pg, errors, requests, url = page
    stored = _stored(smoke_dir)
    link = pg.locator("a.pf-item").first
    item = link.text_content()
    link.click()
    same = [r for r in stored if r["item"] == item]
    assert pg.locator("#pf-item").is_visible()
    cards = pg.locator(".pf-card")
    assert cards.count() == len(same) and len({r["run"] for r in same}) == 6
    assert same[0]["reference"] in pg.text_content("#pf-item")
    texts = cards.all_text_contents()
    assert all(any(r["run"] in t and r["completion"].strip() in t for t in texts) for r in same)
    pg.click("#pf-close")
    assert not pg.locator("#pf-item").is_visible()
    assert errors == []


def _hover_first_point(pg, fig) -> str:
    """Move the pointer onto the figure's first hover point; return the text the page says it shows."""
    points = json.loads(fig.locator(".pf-points").text_content())["points"]
    svg = fig.locator("svg")
    box, view = svg.bounding_box(), [float(v) for v in svg.get_attribute("viewBox").split()]
    x, y, _, text = points[0]
    pg.mouse.move(box["x"] + x * box["width"] / view[2], box["y"] + y * box["height"] / view[3])
    return text


def test_plots_show_values_on_hover_and_hide_a_series(page):
    pg, errors, _, _ = page
    fig = pg.locator('figure.pf-plot[data-name="pass1_bars"]')
    fig.scroll_into_view_if_needed()
    series = json.loads(fig.locator(".pf-points").text_content())["points"][0][2]
    text = _hover_first_point(pg, fig)
    tip = fig.locator(".pf-tip")
    assert tip.is_visible() and tip.text_content() == text and "[" in text  # the value and its CI
    bars = fig.locator(f'[id^="pass1_bars-pf-s{series}-"]')
    shown = "els => els.filter(e => getComputedStyle(e).display !== 'none').length"
    assert bars.count() >= 6 and bars.evaluate_all(shown) == bars.count()
    fig.locator(f'input[data-series="{series}"]').uncheck()
    assert bars.evaluate_all(shown) == 0
    _hover_first_point(pg, fig)
    assert not tip.is_visible() or tip.text_content() != text  # a hidden series has no values either
    fig.locator(f'input[data-series="{series}"]').check()
    assert bars.evaluate_all(shown) == bars.count() and errors == []


def test_the_comparison_page_of_a_study_and_its_copy(browser, smoke_dir, tmp_path):
    from postfit.report.compare import write_comparison

    copy = tmp_path / "again"
    shutil.copytree(smoke_dir, copy)
    html = write_comparison([smoke_dir, copy], tmp_path / "cmp")[1]
    pg, errors, requests, url = _open(browser, html)
    # The first table, under the headline and the figure, holds the differences: every init x recipe on every
    # split, each against itself.
    diffs = pg.eval_on_selector_all("table", "ts => [...ts[0].rows].slice(1).map(r => r.cells[4].textContent)")
    groups = {p.parent.name.rsplit("-s", 1)[0] for p in smoke_dir.glob("runs/*/samples.jsonl")}
    splits = {r["split"] for p in smoke_dir.glob("runs/*/samples.jsonl") for r in read_jsonl(p)}
    assert len(diffs) == len(groups) * len(splits) and set(diffs) == {"+0.0 [+0.0, +0.0]"}
    fig = pg.locator('figure.pf-plot[data-name="compare_pass1"]')
    fig.scroll_into_view_if_needed()
    text = _hover_first_point(pg, fig)
    assert fig.locator(".pf-tip").text_content() == text and errors == [] and requests == [url]
    pg.close()


def test_the_page_is_drawn(page):
    from PIL import Image

    pg, *_ = page
    pg.evaluate("window.scrollTo(0, 0)")
    shot = Image.open(io.BytesIO(pg.screenshot())).convert("L")
    lo, hi = shot.getextrema()
    assert hi - lo > 200 and sum(1 for n in shot.histogram() if n) > 50  # text, tables and colours, not a blank page


def test_first_viewport_shows_the_headline_and_its_figure(browser, smoke_dir):
    """At 1400 x 900, as a reader first sees it: the headline (at most 3 sentences) and the whole pre-trained vs
    random figure lie inside the first screen, before any scrolling."""
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.goto((smoke_dir / "report.html").as_uri())
    lead = pg.locator("p.pf-lead")
    figure = pg.locator('figure[data-name="headline"] svg')
    for element in (lead, figure):
        box = element.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, box
    text = lead.inner_text()
    assert 1 <= len([s for s in text.replace("e.g.", "").split(". ") if s]) <= 3, text
    pg.close()
