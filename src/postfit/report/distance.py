"""Report section "Distance to the post-training data": greedy accuracy against each evaluated item's distance to
its run's post-training data, as binned curves per init × recipe, the logistic slope of each (postfit.analysis.slopes)
and pre-trained minus random per recipe, from the stored samples only.

Each greedy sample row stores `distance` (1 minus the largest word 3-gram Jaccard similarity of the item with any
one training item: 0 is a copy), `token_distance` (the same on the study tokenizer's 4-grams) and `structure` (how
many operands, operators or terms differ from the nearest training item; null where the task has no structure). A
study evaluated before they were stored gets one line saying so, and no comparison.
"""

from __future__ import annotations

import numpy as np

from postfit.analysis import slopes, stats
from postfit.config.recipes import NONE
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.headline import INITS, SLOPE, STRUCTURE, TEXT_DISTANCE, TOKEN_DISTANCE, Comparison
from postfit.report.plots import Curve, curves_plot, paired_styles
from postfit.report.results import BOOT_SEED, StudyResults, pair_by_seed_and_item

# The comparison's `split` -> the samples' key.
KEYS = {TEXT_DISTANCE: "distance", TOKEN_DISTANCE: "token_distance", STRUCTURE: "structure"}
ArmRows = dict[int, dict[str, tuple[float, float]]]  # seed -> "split/item" -> (distance, greedy correctness)
CLAIM = ("If the inits meet near the training data and part far from it, pre-training is what carries the model away "
         "from its training distribution; only a difference whose interval excludes zero shows that.")  # fmt: skip


def _rows(samples: list[dict], key: str) -> dict[str, tuple[float, float]]:
    return {
        f"{r['split']}/{r['item']}": (float(r[key]), float(bool(r["correct"])))
        for r in samples
        if int(r["sample"]) == stats.GREEDY and r.get(key) is not None
    }


def arms(study: StudyResults, key: str) -> dict[tuple[str, str], ArmRows]:
    """(init, recipe) -> its runs' greedy rows that store `key`, by seed; arms without any are left out."""
    out = {}
    for group, runs in study.groups().items():
        by_seed = {run.seed: rows for run in runs if (rows := _rows(run.samples, key))}
        if by_seed:
            out[group] = by_seed
    return out


def _arrays(by_seed: ArmRows) -> slopes.Arm:
    """(distances per seed, correctness per seed), items in one order."""
    per_seed = [np.array([by_seed[s][i] for i in sorted(by_seed[s])]) for s in sorted(by_seed)]
    return [a[:, 0] for a in per_seed], [a[:, 1] for a in per_seed]


def _difference(study: StudyResults, split: str, recipe: str, pre: ArmRows, rand: ArmRows) -> Comparison:
    """Pre-trained minus random slope: paired on the seeds and items both have, else each arm resampled alone."""
    rng, paired = np.random.default_rng(BOOT_SEED), pair_by_seed_and_item(pre, rand)
    if paired is not None:
        first, second, n, seeds = paired
        sides = [([a[:, 0] for a in side], [a[:, 1] for a in side]) for side in (first, second)]
        est, quantity = slopes.slope_diff_ci(*sides, study.n_boot, study.ci, rng), "slope difference"
    else:
        sides = [_arrays(pre), _arrays(rand)]
        est = slopes.slope_diff_ci(*sides, study.n_boot, study.ci, rng, paired=False)
        n, seeds = max(x.size for xs, _ in sides for x in xs), min(len(pre), len(rand))
        quantity = "slope difference (unpaired)"
    return Comparison(SLOPE, quantity, INITS, recipe, split, est, n, seeds, unit="log-odds", better="pre-trained",
                      worse="random init")  # fmt: skip


def alike(by_seed: ArmRows) -> bool:
    """Every item of every seed scored the same (all wrong, say): correctness has no slope to measure."""
    return len({y for rows in by_seed.values() for _, y in rows.values()}) == 1


def distance_comparisons(study: StudyResults) -> list[Comparison]:
    """Each arm's slope of greedy correctness on each stored distance (not for an arm whose answers are all alike),
    then pre-trained minus random per recipe (not `none`, which is not post-trained; not when both arms are alike);
    none for a study without distances."""
    out = []
    for split, key in KEYS.items():
        data = arms(study, key)
        for recipe in dict.fromkeys(recipe for _, recipe in data):  # the grid's order: a recipe's arms, then their gap
            for init, by_seed in ((i, rows) for (i, r), rows in data.items() if r == recipe and not alike(rows)):
                xs, ys = _arrays(by_seed)
                est = slopes.slope_ci(xs, ys, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))
                out.append(Comparison(SLOPE, "distance slope", init, recipe, split, est, max(x.size for x in xs),
                                      len(xs), unit="log-odds"))  # fmt: skip
            pre, rand = data.get(("pretrained", recipe)), data.get(("random", recipe))
            if recipe != NONE and pre and rand and not (alike(pre) and alike(rand)):
                out.append(_difference(study, split, recipe, pre, rand))
    return out


def distance_curves(study: StudyResults, split: str) -> dict[tuple[str, str], Curve]:
    """(init, recipe) -> its binned accuracy curve on `split` (a key of KEYS): the text distance in quantile bins
    pooled over every run, the structural one a bin per value; empty without that distance."""
    data = {group: _arrays(by_seed) for group, by_seed in arms(study, KEYS[split]).items()}
    if not data:
        return {}
    pooled = np.concatenate([x for xs, _ in data.values() for x in xs])
    bins = slopes.value_bins(pooled) if split == STRUCTURE else slopes.quantile_bins(pooled)
    out = {}
    for (init, recipe), (xs, ys) in data.items():
        points = slopes.binned_accuracy(bins, xs, ys, study.n_boot, study.ci)
        out[(init, recipe)] = (f"{init} + {recipe}", [p[0] for p in points], [p[1] for p in points])
    return out


def _copies(study: StudyResults) -> str:
    """The line that flags evaluation items at distance 0 from some run's post-training data."""
    seen, copies = set(), {}
    for run in study.runs:
        for item, (d, _) in _rows(run.samples, "distance").items():
            seen.add(item)
            if d == 0:
                copies.setdefault(item.split("/", 1)[0], set()).add(item)
    if not copies:
        return f"Copies of training items (distance 0): none among the {len(seen)} evaluated items."
    listed = sorted(i.split("/", 1)[1] for ids in copies.values() for i in ids)  # keys are "split/item id"
    per_split = ", ".join(
        f"{split}: {len(ids)}" for split, ids in sorted(copies.items(), key=lambda kv: stats.split_sort_key(kv[0]))
    )
    names = f": {', '.join(listed)}" if len(listed) <= 10 else ""
    return (
        f"Copies of training items (distance 0): {len(listed)} of the {len(seen)} evaluated items ({per_split}) "
        f"are a copy of an item of some run's post-training data{names}. They are flagged, not dropped: they stay "
        "in the curves and slopes above."
    )


def _slopes_table(comps: list[Comparison]) -> Table:
    """Each slope and difference; numbers on one line, the verdict free to wrap."""
    rows = [[c.subject, c.recipe, c.split.removesuffix(" distance"), c.text().removesuffix(" log-odds"), str(c.n),
             str(c.seeds), c.verdict()] for c in comps]  # fmt: skip
    return Table(["model", "recipe", "distance", "slope, log-odds per unit [CI]", "n items", "seeds", "verdict"], rows)


def _findings(study: StudyResults, comps: list[Comparison]) -> str:
    """What was found, worded by the intervals: each difference of slopes with the two arms' slopes beside it, and
    the arms whose answers were all alike (no slope)."""
    out = []
    for d in (c for c in comps if c.subject == INITS):
        arms_ = [c for c in comps if c.subject != INITS and (c.recipe, c.split) == (d.recipe, d.split)]
        beside = f" ({', '.join(f'{c.subject} {c.value()}' for c in arms_)})" if arms_ else ""
        verdict = d.verdict() if d.supported else "its interval reaches zero, no detectable difference"
        out.append(f"After {d.recipe}, on {d.split}, pre-trained minus random slope is {d.text()}{beside}: {verdict}.")
    flat = [f"{init} + {recipe}" for (init, recipe), rows in arms(study, "distance").items() if alike(rows)]
    if flat:
        out.append(f"No slope for {', '.join(flat)}: every answer the same.")
    out.append(CLAIM)
    return " ".join(out)


def _method(study: StudyResults, shown: dict) -> str:
    ci = f"{study.ci:.0%}"
    text = (
        "How: each evaluated item's text distance to its run's post-training data is 1 minus the largest Jaccard "
        "similarity of its word 3-grams (prompt and reference) with any one training item's (0: a copy; 1: no "
        "3-gram shared)"
    )
    if TOKEN_DISTANCE in shown:
        text += "; its token distance the same on 4-grams of the token ids the model reads"
    if STRUCTURE in shown:
        text += "; its structural distance: how many operands, operators or terms differ from the nearest one"
    return text + (
        f". The figure bins the items into up to {slopes.BINS} bins of about equal size (quantiles of the distances "
        "pooled over every run; tied distances share a bin; the structural distance one bin per value) and shows "
        f"greedy pass@1 per bin at its mean distance, with {ci} intervals over seeds and items. The slope is a "
        "logistic regression of greedy correctness on distance over every item and seed of an init × recipe "
        "(log-odds per unit of distance: negative when accuracy falls away from the training data), with a "
        f"bootstrap interval ({study.n_boot} resamples of seeds, then items within seeds, refitted each time); "
        "pre-trained minus random is paired by seed and item."
    )


def distance_blocks(study: StudyResults, comps: list[Comparison]) -> list[Block]:
    """The section; `comps` (report/comparisons.py) hold its slopes, computed once for the headline too."""
    heading = Heading("Distance to the post-training data")
    curves = {split: c for split in KEYS if (c := distance_curves(study, split))}
    if not curves:
        return [
            heading,
            Para(
                "No distances to the post-training data are stored in this study's samples (evaluated "
                "before postfit recorded them): re-evaluate to measure accuracy against distance."
            ),
        ]
    groups = {label: (recipe, init) for c in curves.values() for (init, recipe), (label, *_) in c.items()}
    panels = {split: list(c.values()) for split, c in curves.items()}
    figure = curves_plot(
        panels,
        "distance to the post-training data",
        f"greedy pass@1 (%), {study.ci:.0%} CI",
        "Accuracy against distance to the post-training data",
        xscale="linear",
        styles=paired_styles(groups),
    )
    mine = [c for c in comps if c.kind == SLOPE]
    return [
        heading,
        Plot("distance", "Greedy pass@1 against distance to the post-training data", figure),
        Para(_findings(study, mine)),
        _slopes_table(mine),
        Para(_method(study, curves)),
        Para(_copies(study)),
    ]
