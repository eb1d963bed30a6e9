"""The report's plots: loss curves and the main bars, and the scaling sections' curves (accuracy vs N, effective
data transferred, vs pre-training tokens, probes).

Each function takes plain numbers (or stored rows), so the sections decide what is shown and this module only how.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from postfit.config.recipes import NONE
from postfit.report.blocks import Drawn, drawn, new_figure

if TYPE_CHECKING:
    from postfit.report.results import Estimate, RunResults


Curve = tuple[str, list[float], list[tuple[float, float, float]]]  # label, x, (value, lo, hi) per x


def _style(label: str, labels: list[str]) -> dict:
    """Colour by the label's first word (the init), so one model's before and after share a colour; "(before)"
    dashed."""
    heads = list(dict.fromkeys(x.split(" ")[0] for x in labels))
    return {"color": f"C{heads.index(label.split(' ')[0]) % 10}", "ls": "--" if label.endswith("(before)") else "-"}


def paired_styles(labels: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """label -> line style, for labels that belong to a (group, member) such as (recipe, init) or (study, init): a
    colour of its own per line, so that each band joins its line in report.html (members in order within a group:
    with one recipe, pre-trained and random get the headline figure's colours), the first member solid, the next
    dashed."""
    groups = list(dict.fromkeys(g for g, _ in labels.values()))
    members = list(dict.fromkeys(m for _, m in labels.values()))
    out = {}
    for label, (group, member) in labels.items():
        j = members.index(member)
        out[label] = {
            "color": f"C{(groups.index(group) * len(members) + j) % 10}",
            "ls": ["-", "--", ":", "-."][j % 4],
        }
    return out


def curves_plot(panels: dict[str, list[Curve]], xlabel: str, ylabel: str, title: str, xscale: str = "log",
                linthresh: float = 1.0, styles: dict[str, dict] | None = None,
                min_width: float = 0.0, percent: bool = True) -> Drawn:  # fmt: skip
    """One panel per key (a split, a probe), one line per curve with its CI as a band; y in percent (fractions
    drawn x100 on 0-100), or as given with `percent=False`. `styles`: label -> line style (colour and ls), else
    colour by init and dashed "(before)" lines; `min_width` in inches, for a long legend beside few panels."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = new_figure(max(4.2 * len(panels) + 1.2, min_width), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    labels = list(dict.fromkeys(c[0] for curves in panels.values() for c in curves))
    for ax, (name, curves) in zip(axes, panels.items(), strict=True):
        for label, x, est in curves:
            v, lo, hi = ((100 if percent else 1) * np.array([e[i] for e in est]) for i in range(3))
            style = (styles or {}).get(label) or _style(label, labels)
            ax.plot(x, v, marker="o", ms=3, lw=1.5, label=label, **style)
            ax.fill_between(x, lo, hi, alpha=0.15, color=style["color"])
        if xscale == "symlog":
            ax.set_xscale("symlog", linthresh=linthresh)
        else:
            ax.set_xscale(xscale)
        if xscale != "linear":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 200, not 2x10^2
        elif all(float(v).is_integer() for _, x, _ in curves for v in x):  # a count, such as the structural distance
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=name, xlabel=xlabel, **({"ylim": (-2, 102)} if percent else {}))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    return drawn(fig)


def transfer_plot(transfer, observed: dict[str, list[tuple[int, float, float, float]]], split: str,
                  ci: float) -> Drawn:  # fmt: skip
    """Left: measured accuracy vs N with the fitted logistic curves and their bootstrap bands. Right: N_eff vs N."""
    from postfit.analysis.transfer import REACHED

    fig = new_figure(10.0, 4.0)
    left, right = fig.subplots(1, 2)
    for i, (init, fit) in enumerate((("pretrained", transfer.pretrained), ("random", transfer.random))):
        color = f"C{i}"
        pts = observed[init]
        x = [p[0] for p in pts]
        v = np.array([p[1] for p in pts])
        err = [100 * (v - [p[2] for p in pts]), 100 * (np.array([p[3] for p in pts]) - v)]
        left.errorbar(x, 100 * v, yerr=err, fmt="o", color=color, capsize=3, label=f"{init} (measured)")
        left.plot(transfer.grid, 100 * fit.predict(transfer.grid), color=color, label=f"{init} (fit)")
        lo, hi = transfer.bands[init]
        left.fill_between(transfer.grid, 100 * lo, 100 * hi, color=color, alpha=0.15)
    left.set(xscale="log", xlabel="post-training examples N", ylabel=f"greedy pass@1 on {split} (%)",
             title=f"Fits: sigmoid(a + b ln N), {ci:.0%} bands")  # fmt: skip
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    n_lo, n_hi = transfer.points[0].n_min, transfer.points[0].n_max
    right.plot([n_lo, n_hi], [n_lo, n_hi], color="gray", ls=":", label="N_eff = N (worth nothing)")
    for p in transfer.points:
        lo = max(p.lo, n_lo) if np.isfinite(p.lo) else n_hi
        hi = min(p.hi, n_hi) if np.isfinite(p.hi) else n_hi
        if p.status == REACHED:
            right.errorbar([p.n], [p.n_eff], yerr=[[p.n_eff - min(lo, p.n_eff)], [max(hi, p.n_eff) - p.n_eff]],
                           fmt="o", color="C0", capsize=3)  # fmt: skip
        else:  # not reached in range (arrow up at the top) or already matched below it (arrow down)
            marker, y = ("^", n_hi) if p.lo > 0 else ("v", n_lo)
            right.plot([p.n], [y], marker=marker, color="C3", ls="none")
    right.set(xscale="log", yscale="log", xlabel="post-training examples N (pre-trained)",
              ylabel="N_eff: random-init examples to match", title="Effective data transferred")  # fmt: skip
    right.plot([], [], "^", color="C3", label="not reached within the measured range")
    right.plot([], [], "v", color="C3", label="matched below the measured range")
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    return drawn(fig)


def loss_plot(title: str, curves: list[tuple[str, list[dict], dict]],
              levels: list[tuple[str, float]] = ()) -> Drawn | None:  # fmt: skip
    """Loss vs step, one line per (label, log rows, matplotlib line style), and a dashed horizontal line per
    (label, loss) in `levels`; None when no row holds a loss."""
    fig = new_figure()
    ax = fig.subplots()
    plotted = False
    for label, rows, style in curves:
        points = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, lw=1.5, **style)
            plotted = True
    if not plotted:
        return None
    for i, (label, y) in enumerate(levels):
        ax.axhline(y, ls="--", lw=1, color=f"C{i + 1}", label=label)
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return drawn(fig)


def runs_loss_plot(title: str, runs: list[RunResults]) -> Drawn | None:
    """Loss curves of one recipe's runs: colour says init, line style says seed, so the init comparison stands out."""
    inits, seeds = sorted({r.init for r in runs}), sorted({r.seed for r in runs})
    styles = [{"color": f"C{inits.index(r.init) % 10}", "ls": "- -- : -.".split()[seeds.index(r.seed) % 4]}
              for r in runs]  # fmt: skip
    curves = [(f"{r.init} s{r.seed}", r.train_log, style) for r, style in zip(runs, styles, strict=True)]
    return loss_plot(title, curves)


def bar_plot(est: dict[tuple[str, str], dict[str, Estimate]], splits: list[str], ci: float) -> Drawn:
    fig = new_figure(max(7.0, 1.8 * len(est)), 4.5)
    ax = fig.subplots()
    x, width = np.arange(len(est)), 0.8 / len(splits)
    for j, split in enumerate(splits):
        cells = [row.get(split) for row in est.values()]
        height = [100 * e.value if e else np.nan for e in cells]
        err = [
            [100 * (e.value - e.lo) if e else 0.0 for e in cells],
            [100 * (e.hi - e.value) if e else 0.0 for e in cells],
        ]
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, height, width, yerr=err, capsize=3, label=split)
    ax.set_xticks(x, [f"{init}\n{recipe}" for init, recipe in est])
    ax.set(ylabel=f"greedy pass@1 (%), {ci:.0%} CI", ylim=(0, 100), title="Greedy pass@1 by init × recipe")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")  # outside: a bar at 100% must not hide under it
    return drawn(fig)


def inits_plot(est: dict[tuple[str, str], dict[str, Estimate]], splits: list[str], ci: float) -> Drawn:
    """The report's headline figure: one panel per recipe, the splits along x (id_test first), one bar per init
    with its CI, so "how much of post-training needs pre-training, and where" is one picture."""
    recipes = list(dict.fromkeys(recipe for _, recipe in est))
    inits = list(dict.fromkeys(init for init, _ in est))
    fig = new_figure(max(6.0, (0.5 * len(splits) + 0.6) * len(recipes) + 1.4), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(recipes), sharey=True))
    x, width = np.arange(len(splits)), 0.8 / len(inits)
    for ax, recipe in zip(axes, recipes, strict=True):
        for j, init in enumerate(inits):
            cells = [est.get((init, recipe), {}).get(split) for split in splits]
            height = [100 * e.value if e else np.nan for e in cells]
            err = [[100 * (e.value - e.lo) if e else 0.0 for e in cells],
                   [100 * (e.hi - e.value) if e else 0.0 for e in cells]]  # fmt: skip
            ax.bar(x + (j - (len(inits) - 1) / 2) * width, height, width, yerr=err, capsize=2, label=init,
                   color=f"C{j % 10}")  # fmt: skip
        ax.set_xticks(x, splits, fontsize=8, rotation=30, ha="right")
        ax.set(title=f"after {recipe}" if recipe != NONE else f"before post-training ({NONE})", ylim=(0, 100))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"greedy pass@1 (%), {ci:.0%} CI")
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    return drawn(fig)
