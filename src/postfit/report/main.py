"""The report's main sections: the pass@1 / pass@k tables with ID-to-OOD drops, the recovery ratio, the summary
line, loss curves and the contamination checks."""

from __future__ import annotations

import re

import numpy as np

from postfit.config.recipes import RECIPES
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.plots import loss_plot, runs_loss_plot
from postfit.report.results import StudyResults, group_drop, recovery


def pct(e: tuple[float, float, float], signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * e[0])} [{f.format(100 * e[1])}, {f.format(100 * e[2])}]"


def estimate_table(study: StudyResults, est: dict, with_drop: bool) -> Table:
    splits = [s for s in study.splits if any(s in row for row in est.values())]
    # n goes in the header when every row agrees (the normal case), else into each cell.
    ns = {split: {row[split].n for row in est.values() if split in row} for split in splits}
    header = ["init", "recipe", "seeds"] + [f"{s} (n={min(ns[s])})" if len(ns[s]) == 1 else s for s in splits]
    header += ["ID→OOD drop (pp)"] if with_drop else []
    groups = study.groups()
    rows = []
    for (init, recipe), by_split in est.items():
        cells = [init, recipe, str(max(e.seeds for e in by_split.values()))]
        for split in splits:
            e = by_split.get(split)
            n_note = "" if len(ns[split]) == 1 or e is None else f" (n={e.n})"
            cells.append("—" if e is None else pct((e.value, e.lo, e.hi)) + n_note)
        if with_drop:
            drop = group_drop(study, groups[(init, recipe)])
            cells.append("—" if drop is None else pct(drop, signed=True))
        rows.append(cells)
    return Table(header, rows)


RECOVERY_HEADER = "recipe|split|random pass@1 (%)|pretrained pass@1 (%)|ratio random/pretrained|n items|seeds".split(
    "|"
)


def ratio_text(r: tuple[float, float, float]) -> str:
    return "undefined (pretrained score is 0)" if np.isnan(r[0]) else f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"


def recovery_table(study: StudyResults) -> Table | None:
    rows = []
    for recipe in dict.fromkeys(recipe for _, recipe in study.groups()):
        for split in study.splits:
            rec = recovery(study, recipe, split)
            if rec is None:
                continue
            ratio = ratio_text(rec["ratio"])
            scores = [f"{100 * rec['random']:.1f}", f"{100 * rec['pretrained']:.1f}"]
            rows.append([recipe, split, *scores, ratio, str(rec["n"]), str(rec["seeds"])])
    return Table(RECOVERY_HEADER, rows) if rows else None


def _number(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else (f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}")


def _planned(study: StudyResults, inits: list, recipes: list, seeds: list) -> str:
    """The grid's run count; with grid.posttrain_examples every recipe but `none` runs once per N."""
    sizes = study.grid("posttrain_examples")
    if not sizes:
        return str(len(inits) * len(recipes) * len(seeds))
    per_init = sum(len(sizes) if r in RECIPES and RECIPES[r].trains else 1 for r in recipes)
    return f"{len(inits) * per_init * len(seeds)} (post-training recipes once per N in {sizes})"


def summary(study: StudyResults) -> str:
    inits = study.grid("inits") or sorted({r.init for r in study.runs})
    recipes = study.grid("recipes") or sorted({r.recipe for r in study.runs})
    seeds = study.grid("seeds") or sorted({r.seed for r in study.runs})
    params = sorted({r.params for r in study.runs if r.params is not None})
    text = (
        f"Grid: {len(inits)} inits ({', '.join(map(str, inits))}) × {len(recipes)} recipes "
        f"({', '.join(map(str, recipes))}) × {len(seeds)} seeds ({', '.join(map(str, seeds))}) = "
        f"{_planned(study, inits, recipes, seeds)} planned runs, {len(study.runs)} evaluated. "
        f"Model: {' / '.join(_number(p) for p in params) or 'unknown'} parameters (from run.json). "
        f"Intervals are {study.ci:.0%} percentile bootstrap CIs with {study.n_boot} resamples, "
        f"drawing seeds and then items within each seed."
    )
    if study.unevaluated:
        text += f" Not yet evaluated, left out: {', '.join(study.unevaluated)}."
    return text


def loss_blocks(study: StudyResults) -> list[Block]:
    blocks: list[Block] = []
    for recipe in dict.fromkeys(recipe for _, recipe in study.groups()):
        runs = [r for (_, rec), runs in study.groups().items() if rec == recipe for r in runs if r.train_log]
        png = runs_loss_plot(f"Post-training loss: {recipe}", runs)
        if png:
            blocks.append(Plot(f"loss_{re.sub(r'[^A-Za-z0-9_.-]+', '_', recipe)}", f"Training loss, {recipe}", png))
    meta = study.base_meta or {}
    levels = [(label, meta[key]) for label, key in [("corpus unigram entropy", "unigram_entropy"),
              ("held-out loss, pre-trained", "heldout_loss_pretrained")] if meta.get(key) is not None]  # fmt: skip
    png = study.pretrain_log and loss_plot("Pre-training loss", [("pretrain", study.pretrain_log, {})], levels)
    if png:
        blocks.append(Plot("pretrain_loss", "Pre-training loss", png))
    if meta.get("unigram_entropy") is not None and meta.get("heldout_loss_pretrained") is not None:
        h, pre, rand = meta["unigram_entropy"], meta["heldout_loss_pretrained"], meta.get("heldout_loss_random")
        text = (f"Pre-training, in nats per token: held-out loss {pre:.2f} on {meta.get('heldout_tokens', 0):,} "
                f"corpus tokens never trained on, {h - pre:.2f} below the corpus's unigram entropy ({h:.2f}: the loss "
                "of a model that ignores context)")  # fmt: skip
        text += f"; the random init it started from: {rand:.2f}." if rand is not None else "."
        blocks.append(Para(text))
    if study.base_meta:
        meta_rows = [[k, _number(v)] for k, v in sorted(study.base_meta.items())]
        blocks += [Para("Pre-training (base/meta.json):"), Table(["quantity", "value"], meta_rows)]
    return [Heading("Training loss"), *blocks] if blocks else []


def contamination_blocks(c: dict) -> list[Block]:
    rows = [[str(p.get("source")), str(p.get("check", f"word {c.get('n')}-gram")), str(p.get("split")),
             _number(p.get("overlapping")), _number(p.get("total")),
             f"{100 * p['overlapping'] / p['total']:.1f}" if p.get("total") else "—"]
            for p in c.get("pairs", [])]  # fmt: skip
    text = "Evaluation items found in each training source: the post-training data by exact question, the "
    text += f"pre-training corpus ({c.get('corpus')}) by shared word {c.get('n')}-gram. Overlapping item ids are "
    text += "listed in data/contamination.json."
    header = ["source", "check", "split", "overlapping", "total", "overlapping (%)"]
    blocks: list[Block] = [Heading("Contamination"), Para(text), Table(header, rows)]
    if c.get("drop"):
        dropped = c.get("dropped") or {}
        listed = "; ".join(f"{split}: {', '.join(ids)}" for split, ids in dropped.items())
        blocks.append(
            Para(
                f"contamination.drop is on: overlapping items were left out of evaluation ({listed})."
                if dropped
                else "contamination.drop is on: no evaluation item overlapped, none dropped."
            )
        )
    return blocks
