"""Report section "pass@k: does post-training widen or narrow what the model can reach?": the unbiased pass@k curve
for k = 1..n of every init × recipe, and the k at which a post-trained model's curve is caught by its starting
model's (Yue et al. 2025: the base overtakes the RL model at large k), from the stored sampled completions only.

Each post-trained recipe is compared with every model of its chain (`config/recipes.py`: `sft` with `none`; `sft+rl`
with `sft`, RL's own start, and with `none`), same init. The crossover is the smallest k at which the starting
model's pass@k is at least the post-trained model's, with a bootstrap interval paired by seed and item
(`analysis/stats.py` `crossover_ci`); a resample whose curves do not cross up to K counts as "> K".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from postfit.analysis import stats
from postfit.config.grid import Run
from postfit.config.recipes import NONE, RECIPES
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.headline import CROSSOVER, Comparison
from postfit.report.plots import Curve, curves_plot, paired_styles
from postfit.report.results import BOOT_SEED, RunResults, StudyResults, pair_by_seed_and_item

MIN_SAMPLES = 4  # sampled completions per item a split needs for its curve to be drawn and crossed
HEADING = "pass@k: does post-training widen or narrow what the model can reach?"
Curves = dict[int, dict[str, np.ndarray]]  # seed -> item -> pass@k for k = 1..K


@dataclass(frozen=True)
class Crossover(Comparison):
    """A comparison whose estimate is a k: (k, lo, hi), infinity for "no crossover up to k = `upto`"."""

    start: str = NONE  # the starting model's recipe (label)
    upto: int = 0  # K: the largest k both curves have
    crossed: float = 0.0  # share of the bootstrap resamples that cross by K
    ends: tuple[tuple[float, float], ...] = ()  # (starting model, post-trained) pass@k at k = 1 and at k = K

    @property
    def supported(self) -> bool:
        """The interval places the crossover at or below K."""
        return bool(np.isfinite(self.est[2]))

    @property
    def frozen(self) -> bool:
        return False

    def _k(self, x: float) -> str:
        return f"> {self.upto}" if np.isinf(x) else str(int(x))

    def value(self) -> str:
        return f"no crossover up to k = {self.upto}" if np.isinf(self.est[0]) else f"k = {int(self.est[0])}"

    def interval(self) -> str:
        return f"[{self._k(self.est[1])}, {self._k(self.est[2])}]"

    def text(self) -> str:
        return f"{self.value()} {self.interval()}"

    def verdict(self) -> str:
        share = f"{self.crossed:.0%} of resamples cross by k = {self.upto}"
        if np.isinf(self.est[0]):
            return f"{self.recipe} stays ahead ({share})"
        if self.est[0] == 1:
            return f"{self.start} level or ahead from k = 1 ({share})"
        return f"{self.start} catches up at k = {int(self.est[0])} ({share})"


def curves(runs: list[RunResults], split: str) -> Curves:
    """Per seed, each item's pass@k for k = 1..K, K the fewest samples any of `runs` drew on `split` (a larger n
    still gives an unbiased pass@k for k <= K); empty below MIN_SAMPLES."""
    k_max = min((stats.samples_per_item(r.samples, split) for r in runs), default=0)
    if k_max < MIN_SAMPLES:
        return {}
    return {r.seed: {i: c[:k_max] for i, c in stats.pass_at_k_curves(r.samples, split).items()} for r in runs}


def starts(study: StudyResults) -> list[tuple[tuple[str, str], tuple[str, str], str]]:
    """(post-trained group, starting group, starting recipe) for every post-trained recipe and every model of its
    chain that the study has, same init (and N): `sft` vs `none`; `sft+rl` vs `sft`, then vs `none`."""
    groups, out = study.groups(), []
    for (init, label), runs in groups.items():
        recipe, examples = runs[0].recipe, runs[0].examples
        while recipe != NONE:
            recipe = RECIPES[recipe].before
            start = Run(init, recipe, 0, examples if RECIPES[recipe].trains else None).label
            if (init, start) in groups:
                out.append(((init, label), (init, start), start))
    return out


def _crossover(study: StudyResults, after: Curves, before: Curves, key, start: str, split: str) -> Crossover | None:
    k_max = min(len(c) for side in (after, before) for by_item in side.values() for c in by_item.values())
    cut = [{s: {i: c[:k_max] for i, c in by_item.items()} for s, by_item in side.items()} for side in (after, before)]
    paired = pair_by_seed_and_item(*cut)
    if paired is None:
        return None
    post, pre, n, seeds = paired
    est, crossed = stats.crossover_ci(post, pre, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))
    at = lambda side, k: float(np.mean([a[:, k].mean() for a in side]))  # noqa: E731
    ends = tuple((at(pre, k), at(post, k)) for k in (0, k_max - 1))
    init, label = key
    return Crossover(CROSSOVER, f"pass@k crossover, {start} vs {label}", init, label, split, est, n, seeds,
                     unit="k", start=start, upto=k_max, crossed=crossed, ends=ends)  # fmt: skip


def crossover_comparisons(study: StudyResults) -> list[Crossover]:
    """Every (post-trained, starting model) pair's crossover on every split where both drew MIN_SAMPLES or more."""
    groups, out = study.groups(), []
    for after_key, before_key, start in starts(study):
        for split in study.splits:
            after, before = curves(groups[after_key], split), curves(groups[before_key], split)
            if after and before and (c := _crossover(study, after, before, after_key, start, split)):
                out.append(c)
    return out


def _panels(study: StudyResults) -> dict[str, list[Curve]]:
    panels: dict[str, list[Curve]] = {}
    for split in study.splits:
        for (init, label), runs in study.groups().items():
            if by_seed := curves(runs, split):
                arrays = [np.array([c for _, c in sorted(by_item.items())]) for _, by_item in sorted(by_seed.items())]
                est = stats.curve_ci(arrays, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))
                panels.setdefault(split, []).append((f"{init} + {label}", list(range(1, len(est) + 1)), est))
    return panels


def _table(comps: list[Crossover]) -> Table:
    rows = [[c.split, c.subject, f"{c.start} → {c.recipe}", *(f"{100 * a:.1f} → {100 * b:.1f}" for a, b in c.ends),
             c.text(), f"{c.crossed:.0%}"] for c in comps]  # fmt: skip
    header = ["split", "init", "start → post-trained", "pass@1 (%)", "pass@K (%)", "crossover k [CI]",
              "resamples crossing"]  # fmt: skip
    return Table(header, rows, nowrap=True)


def _findings(comps: list[Crossover]) -> str:
    """What was found, worded by the estimates: the pairs the starting model catches up with above k = 1, those
    where the post-trained model stays ahead up to K, those level or reversed at k = 1 already."""
    name = lambda c: f"{c.split} {c.subject} {c.start} → {c.recipe}"  # noqa: E731
    crossing = [c for c in comps if 1 < c.est[0] < math.inf]
    ahead = [c for c in comps if c.est[0] == math.inf]
    level = [c for c in comps if c.est[0] == 1]
    out = []
    if crossing:
        pairs = "; ".join(f"{name(c)} at {c.text()}" for c in crossing)
        out.append(f"The starting model catches up in {len(crossing)} of the {len(comps)} pairs ({pairs}): what "
                   "post-training added at one try, it finds with k tries.")  # fmt: skip
    if ahead:
        out.append(f"In {len(ahead)} of the {len(comps)} pairs the post-trained model stays ahead at every k measured "
                   f"({'; '.join(name(c) for c in ahead)}).")  # fmt: skip
    if level:
        out.append(f"In {len(level)} of the {len(comps)} the starting model is level or ahead already at k = 1 "
                   f"({'; '.join(name(c) for c in level)}).")  # fmt: skip
    if again := [c for c in level if c.ends[1][1] > c.ends[1][0] + 1e-9]:
        listed = "; ".join(f"{name(c)}: {100 * c.ends[1][0]:.1f} vs {100 * c.ends[1][1]:.1f}%" for c in again)
        out.append(f"Of these, the post-trained model's pass@K is above its start's in {len(again)} ({listed} at "
                   "k = K), a point estimate without an interval here.")  # fmt: skip
    return " ".join(out)


def passk_blocks(study: StudyResults, comps: list[Comparison]) -> list[Block]:
    """The section; `comps` (report/comparisons.py) hold its crossovers, computed once for the comparisons table."""
    if not starts(study):
        return []
    heading, panels = Heading(HEADING), _panels(study)
    if not panels:
        text = f"No split has {MIN_SAMPLES} or more sampled completions per item for the models compared here; "
        return [heading, Para(text + "set `eval.samples` or `eval.samples_by_split` to draw them.")]
    labels = {label: tuple(label.split(" + ", 1)) for curves_ in panels.values() for label, *_ in curves_}
    figure = curves_plot(panels, "k (samples drawn)", f"pass@k (%), {study.ci:.0%} CI",
                         "pass@k against k", xscale="linear",
                         styles=paired_styles(labels), min_width=6.5)  # fmt: skip
    mine = [c for c in comps if isinstance(c, Crossover)]
    method = (
        "How: each item's unbiased pass@k, 1 - C(n-c, k)/C(n, k) from its n sampled completions of which c are "
        f"correct (sampled pass@1, not greedy), for k = 1..K (K: the fewest samples drawn; splits with K >= "
        f"{MIN_SAMPLES}), averaged over items, then over seeds; bands and intervals at {study.ci:.0%} from "
        f"{study.n_boot} resamples of seeds, then items within seeds. The crossover is the smallest k at which the "
        "starting model's pass@k is at least the post-trained model's (same init), on the seeds and items both "
        "have, recomputed on each resample with one draw for both curves; a resample whose curves do not cross up "
        'to K counts as "> K". A crossover above k = 1 says that what post-training added at one try the starting '
        "model finds with k tries: post-training sharpened what the model could already sample rather than widening "
        "it. Without a crossover the post-trained model stays ahead at every k measured (it may be caught beyond K)."
    )
    return [heading, Plot("pass_at_k", "Unbiased pass@k against k", figure), Para(_findings(mine)),
            _table(mine), Para(method)]  # fmt: skip
