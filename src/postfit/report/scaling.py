"""Report sections of the scaling analyses: data scaling, effective data transferred, pre-training budget.

Read from the stored files only, through report/results.py (each run's N and pre-training tokens, its samples).
Every estimate is a mean over seeds of per-seed item means with the hierarchical bootstrap of
postfit.analysis.stats; every comparison stated in words is a paired bootstrap over the seeds and items both
sides share, with its n.
"""

from __future__ import annotations

import numpy as np

from postfit.analysis import stats
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.main import pct
from postfit.report.plots import curves_plot, transfer_plot
from postfit.report.results import RunResults, paired_estimate

BOOT_SEED = 0


# ---- numbers --------------------------------------------------------------------------------------------------


def aligned(per_run: list[dict[str, float]]) -> list[np.ndarray] | None:
    """One array per run over the items every run has, in one order (so runs and groups can be paired)."""
    if not per_run:
        return None
    items = sorted(set.intersection(*(set(d) for d in per_run)))
    return [np.array([d[i] for i in items]) for d in per_run] if items else None


def estimate(study, arrays: list[np.ndarray]) -> tuple[float, float, float]:
    return stats.bootstrap_ci(arrays, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))


def difference_text(study, a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> str | None:
    """'+d [lo, hi] pp (n items, s seeds)' for a - b, two {seed: {item: score}}, paired by seed and item."""
    got = paired_estimate(study, a, b)
    if got is None:
        return None
    est, n, k = got
    return f"{pct(est, signed=True)} pp (n={n} items, {k} seed{'s' * (k > 1)}, paired)"


def _by_seed(infos: list[RunResults], split: str) -> dict[int, dict[str, float]]:
    return {i.seed: stats.per_item_pass(i.samples, split) for i in infos}


def _cell(study, infos: list[RunResults], split: str) -> tuple[float, float, float] | None:
    arrays = aligned([d for d in _by_seed(infos, split).values() if d])
    return estimate(study, arrays) if arrays else None


def _pair(inits: list[str]) -> tuple[str, str] | None:
    """(reference, baseline) for stated differences: the fully pre-trained init against random."""
    ref = "pretrained" if "pretrained" in inits else next((i for i in reversed(inits) if i != "random"), None)
    return (ref, "random") if ref and "random" in inits else None


# ---- sections -------------------------------------------------------------------------------------------------


def data_scaling_blocks(study) -> list[Block]:
    scaled = [i for i in study.runs if i.examples is not None]
    if not scaled:
        return []
    inits = [i for i in study.grid("inits") if any(x.init == i for x in scaled)]
    blocks: list[Block] = [Heading("Accuracy vs post-training examples")]
    for recipe in dict.fromkeys(i.recipe for i in scaled):
        rows = [i for i in scaled if i.recipe == recipe]
        ns = sorted({i.examples for i in rows})
        panels: dict[str, list] = {}
        table = []
        for split in study.splits:
            for init in inits:
                cells = [(n, _cell(study, [i for i in rows if i.init == init and i.examples == n], split)) for n in ns]
                cells = [(n, e) for n, e in cells if e is not None]
                if cells:
                    panels.setdefault(split, []).append((init, [n for n, _ in cells], [e for _, e in cells]))
                    table += [[recipe, split, init, f"{n:,}", pct(e)] for n, e in cells]
        text = (f"Greedy pass@1 (%) after `{recipe}` on the first N training items (same steps for every N), per "
                f"init; bands and brackets: {study.ci:.0%} CI over seeds and items.")  # fmt: skip
        png = curves_plot(panels, "post-training examples N (log)", "greedy pass@1 (%)", f"{recipe}: accuracy vs N")
        blocks += [Para(text), Plot(f"scaling_{recipe}".replace("+", "_"), f"Accuracy vs N ({recipe})", png)]
        blocks.append(Table(["recipe", "split", "init", "N", "pass@1 (%)"], table))
        pair = _pair(inits)
        if pair:
            diffs = []
            for split in study.splits:
                for n in ns:
                    a, b = ([i for i in rows if i.init == x and i.examples == n] for x in pair)
                    d = difference_text(study, _by_seed(a, split), _by_seed(b, split)) if a and b else None
                    if d:
                        diffs.append([split, f"{n:,}", d])
            if diffs:
                blocks += [Para(f"{pair[0]} minus {pair[1]}, `{recipe}` (percentage points, paired bootstrap over "
                                "the same items and seeds):"), Table(["split", "N", "difference"], diffs)]  # fmt: skip
    return blocks


def transfer_blocks(study) -> list[Block]:
    from postfit.analysis.transfer import describe, effective_data

    blocks: list[Block] = []
    scaled = [i for i in study.runs if i.examples is not None and i.init in ("pretrained", "random")]
    for recipe in dict.fromkeys(i.recipe for i in scaled):
        rows, table = [i for i in scaled if i.recipe == recipe], []
        for split in study.splits:
            cells = {}
            for init in ("pretrained", "random"):
                for n in sorted({i.examples for i in rows}):
                    by_seed = _by_seed([i for i in rows if i.init == init and i.examples == n], split)
                    cells[(init, n)] = by_seed
            seeds = sorted(set.intersection(*(set(d) for d in cells.values()))) if cells else []
            arrays = aligned([d[s] for d in cells.values() for s in seeds]) if seeds else None
            ns = sorted({n for _, n in cells})
            if arrays is None or len(ns) < 2:
                continue
            it = iter(arrays)
            per = {key: [next(it) for _ in seeds] for key in cells}
            t = effective_data({n: per[("pretrained", n)] for n in ns}, {n: per[("random", n)] for n in ns},
                               study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))  # fmt: skip
            for p in t.points:
                n_eff = "—" if np.isnan(p.n_eff) else f"{p.n_eff:,.0f}"
                table.append([split, f"{p.n:,}", f"{100 * p.target:.1f}", n_eff, describe(p, study.ci)])
            if split == study.splits[0]:
                observed = {
                    init: [(n, *estimate(study, per[(init, n)])) for n in ns] for init in ("pretrained", "random")
                }
                png = transfer_plot(t, observed, split, study.ci)
                words = "; ".join(describe(p, study.ci) for p in t.points)
                blocks += [Plot(f"transfer_{recipe}".replace("+", "_"), f"Effective data transferred ({split})", png),
                           Para(f"On {split} ({t.n_items} items, {t.n_seeds} seed(s)): {words}.")]  # fmt: skip
        if table:
            text = (f"What pre-training is worth in `{recipe}` examples (Hernandez et al. 2021): N_eff is the number "
                    "of examples the random-init model needs to reach the pre-trained model's accuracy at N, from "
                    "logistic fits of accuracy against ln N (postfit.analysis.transfer); D_T = N_eff - N. Fits are "
                    "never extrapolated: beyond the largest N measured the table says so. CIs: bootstrap over seeds "
                    "and items, paired across inits and N, refitting both curves each time.")  # fmt: skip
            blocks = [Heading(f"Effective data transferred ({recipe})"), Para(text), *blocks]
            blocks.append(Table(["split", "N", "pretrained fit (%)", "N_eff", "reading"], table))
    return blocks


def budget_blocks(study) -> list[Block]:
    known = [i for i in study.runs if i.pretrain_tokens is not None]
    if len({i.pretrain_tokens for i in known}) < 3:  # random vs pretrained alone is the main table already
        return []
    top = {}  # per recipe, the largest N: the final post-trained model
    for i in known:
        top[i.recipe] = max(top.get(i.recipe, 0), i.examples or 0)
    chosen = [i for i in known if (i.examples or 0) == top[i.recipe]]
    labels = list(dict.fromkeys(i.label for i in chosen))
    panels: dict[str, list] = {}
    table = []
    for split in study.splits:
        for label in labels:
            xs = sorted({i.pretrain_tokens for i in chosen if i.label == label})
            at = {x: [i for i in chosen if i.label == label and i.pretrain_tokens == x] for x in xs}
            cells = [(x, _cell(study, at[x], split)) for x in xs]
            cells = [(x, e) for x, e in cells if e is not None]
            if cells:
                panels.setdefault(split, []).append((label, [x for x, _ in cells], [e for _, e in cells]))
                table += [[split, label, f"{x:,}", pct(e)] for x, e in cells]
    positive = sorted({i.pretrain_tokens for i in chosen if i.pretrain_tokens})
    png = curves_plot(panels, "pre-training tokens (symlog; 0 = random init)", "greedy pass@1 (%)",
                      "Accuracy vs pre-training tokens", xscale="symlog", linthresh=(positive or [1])[0])  # fmt: skip
    text = ("Greedy pass@1 (%) against the tokens of postfit's own pre-training behind the initial weights "
            "(random init = 0; `pretrained@T` = the checkpoint after T tokens of the same run), before post-training "
            f"(`none`) and after it (largest N), {study.ci:.0%} CI over seeds and items.")  # fmt: skip
    return [Heading("Accuracy vs pre-training tokens"), Para(text), Plot("budget", "Accuracy vs tokens", png),
            Table(["split", "recipe", "pre-training tokens", "pass@1 (%)"], table)]  # fmt: skip
