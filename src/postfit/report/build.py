"""Build report.md and a self-contained report.html from a study directory's stored files.

Every number is recomputed from runs/*/samples.jsonl (loss curves from the stored training logs, forgetting from
runs/*/forgetting.jsonl), so the report can be regenerated at any time and never depends on a live process or on
scraped logs. This module reads the study and decides the content, as a list of blocks; postfit.report.render
draws the plots and renders the blocks as markdown and as HTML.
"""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.analysis import stats
from postfit.io import atomic_write_bytes, atomic_write_text
from postfit.report.blocks import Block, Heading, Para, Plot
from postfit.report.browser import samples_block
from postfit.report.comparisons import comparisons
from postfit.report.distance import distance_blocks
from postfit.report.forgetting import forgetting_blocks
from postfit.report.headline import SLOPE, comparisons_table, headline
from postfit.report.main import (
    contamination_blocks,
    estimate_table,
    loss_blocks,
    recovery_table,
    summary,
)
from postfit.report.passk import passk_blocks
from postfit.report.plots import bar_plot, inits_plot
from postfit.report.probes import probe_blocks
from postfit.report.provenance import provenance_blocks
from postfit.report.render import render_html, render_md
from postfit.report.results import StudyResults, group_estimates, load_study
from postfit.report.rl import rl_blocks
from postfit.report.scaling import budget_blocks, data_scaling_blocks, transfer_blocks

log = logging.getLogger(__name__)


HEADLINE_RULES = (
    "How the headline is chosen (postfit.report.headline): first, the largest pre-trained minus random difference "
    "after post-training whose interval excludes zero, with the recovery ratio there; then the largest ID-to-OOD "
    "drop whose interval excludes zero; then {third}. Where no interval excludes zero the headline says so; a probe "
    "whose every estimate is zero with a zero-width interval is reported as unable to measure. Intervals: {ci} "
    "bootstrap over seeds, then items within each seed, paired where two models are compared."
)
THIRD = "the largest supported RL or probe effect"
THIRD_WITH_DISTANCE = (  # a study that stores distances (report/distance.py)
    "the largest supported pre-trained minus random difference of the slopes of accuracy on distance to the "
    f"post-training data (text distance first), else {THIRD}"
)


def top_blocks(study: StudyResults, main: dict, comps: list) -> list[Block]:
    """The first screen: headline, the pre-trained vs random figure, every comparison as a table."""
    blocks: list[Block] = []
    sentences = headline(comps)
    blocks += [Para(" ".join(sentences), lead=True)] if sentences else []
    if main:
        figure = inits_plot(main, study.splits, study.ci)
        blocks.append(Plot("headline", "Greedy pass@1 per split: pre-trained vs random init, per recipe", figure))
    if comps:
        third = THIRD_WITH_DISTANCE if any(c.kind == SLOPE for c in comps) else THIRD
        rules = HEADLINE_RULES.format(ci=f"{study.ci:.0%}", third=third)
        blocks += [Heading("Comparisons"), comparisons_table(comps), Para(rules)]
    return blocks


def lighteval_note(study: StudyResults) -> str:
    """Names the splits scored under lighteval's protocol, whose pass@1 is not greedy; "" when there are none."""
    splits = [s for s in study.splits if any(stats.protocol(r.samples, s) == "lighteval" for r in study.runs)]
    if not splits:
        return ""
    return (f" {', '.join(splits)}: lighteval's protocol (eval.protocol), where pass@1 is the mean correctness of "
            "n sampled completions per item, as open-r1 reports it, not a greedy completion's.")  # fmt: skip


def build_blocks(study: StudyResults) -> list[Block]:
    """The report's content, in order, as blocks that render_md and render_html both draw from."""
    ci = f"{study.ci:.0%}"
    main = group_estimates(study)
    comps = comparisons(study)  # the headline's and the probe section's, computed once
    blocks: list[Block] = [Heading(f"postfit study: {study.config.get('name', study.dir.name)}", 1)]
    if study.sandbox and study.sandbox.get("weak"):
        missing = ", ".join(study.sandbox.get("missing") or [])
        blocks.append(Para(f"Weak sandbox: model-written code ran without the layers {missing} "
                           "(sandbox.allow_weak / --unsafe-weak-sandbox); see sandbox.json."))  # fmt: skip
    blocks += top_blocks(study, main, comps)
    description = str(study.config.get("description") or "").strip()
    blocks += [Heading("The study"), *([Para(description)] if description else []), Para(summary(study))]
    blocks += [
        Heading("Greedy pass@1 (%)"),
        Para(
            f"Rows pool the seeds of one init × recipe: mean over seeds of per-seed accuracy, {ci} CI in brackets, "
            "n = items per split. ID→OOD drop = id_test minus the mean of the ood_* splits, in percentage "
            "points, with the seeds paired." + lighteval_note(study)
        ),
        estimate_table(study, main, with_drop=True),
    ]
    # "pass@1" names the greedy metric, so a sampled pass@1 (k=1) gets no table of its own.
    for k in sorted({int(k) for k in (study.config.get("eval") or {}).get("k") or [] if int(k) > 1}):
        est = group_estimates(study, k)
        if est:
            text = f"Unbiased pass@{k} per item from the sampled completions, then pooled as above."
            blocks += [Heading(f"pass@{k} (%)"), Para(text), estimate_table(study, est, with_drop=False)]
    rec = recovery_table(study)
    if rec is not None:
        text = "Random-init greedy pass@1 divided by pretrained greedy pass@1 for the same recipe, on the items and "
        text += f"seeds both share; {ci} CI from a bootstrap paired by seed and item."
        blocks += [Heading("Recovery ratio"), Para(text), rec]
    blocks += data_scaling_blocks(study) + transfer_blocks(study)
    if main:
        bars = bar_plot(main, study.splits, study.ci)
        blocks += [Heading("Out of distribution"), Plot("pass1_bars", "Greedy pass@1 by split", bars)]
    blocks += distance_blocks(study, comps) + passk_blocks(study, comps) + forgetting_blocks(study, comps)
    blocks += probe_blocks(study, comps) + rl_blocks(study) + loss_blocks(study) + budget_blocks(study)
    if study.contamination:
        blocks += contamination_blocks(study.contamination)
    # Relative paths: a copied or moved study directory regenerates the identical report.
    text = "Provenance: every number above comes from `runs/*/samples.jsonl` in this directory (loss curves from "
    text += "the stored training logs, forgetting from `runs/*/forgetting.jsonl`); regenerate with `postfit report "
    text += "DIR`, DIR being this directory."
    blocks += [Heading("Samples"), samples_block(study)] + provenance_blocks(study)
    return [*blocks, Para(text)]


def write_pages(blocks: list[Block], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """DIR/STEM.md (its plots as PNGs in DIR/plots/) and a self-contained DIR/STEM.html from the same blocks."""
    for b in blocks:
        if isinstance(b, Plot):
            atomic_write_bytes(out_dir / "plots" / f"{b.name}.png", b.figure.png)
    md_path, html_path = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    atomic_write_text(md_path, render_md(blocks))
    atomic_write_text(html_path, render_html(blocks))
    log.info("wrote %s and %s", md_path, html_path)
    return md_path, html_path


def write_report(out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/report.md (plots in DIR/plots/) and a self-contained DIR/report.html; return their paths."""
    out_dir = Path(out_dir)
    return write_pages(build_blocks(load_study(out_dir)), out_dir, "report")
