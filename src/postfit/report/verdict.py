"""The verdict paragraph at the top of every report: one sentence per quantity, each number with its interval,
n and seeds, worded from the interval ("no detectable difference" when it spans zero). From stored samples only.
"""

from __future__ import annotations

from postfit.report.main import pct, ratio_text
from postfit.report.probes import probe_verdict
from postfit.report.results import StudyResults, group_drop, paired_difference, recovery
from postfit.report.rl import RL_RECIPES


def _pp(e: tuple[float, float, float]) -> str:
    return f"{pct(e, signed=True)} pp"


def compare(est: tuple[float, float, float], better: str, worse: str) -> str:
    """The words for a difference `better - worse` with its interval."""
    if est[1] <= 0 <= est[2]:
        return "no detectable difference"
    return f"{better} higher" if est[0] > 0 else f"{worse} higher"


def verdict(study: StudyResults, infos: list | None = None) -> list[str]:
    """The verdict's sentences, in the order: recovery, paired difference between inits, ID-to-OOD drops, RL,
    then learning to learn from the probes of `infos` (postfit.report.scaling.load_infos)."""
    groups, ci = study.groups(), f"{study.ci:.0%}"
    recipes = [r for r in dict.fromkeys(recipe for _, recipe in groups) if r != "none"]
    out: list[str] = []
    for recipe in recipes:
        for split in study.splits:
            rec = recovery(study, recipe, split)
            if rec is None:
                continue
            out.append(f"{recipe}, {split}: random init recovers {ratio_text(rec['ratio'])} of the pre-trained score "
                       f"({100 * rec['random']:.1f}% vs {100 * rec['pretrained']:.1f}%, n={rec['n']}, "
                       f"{rec['seeds']} seed(s)).")  # fmt: skip
            d = paired_difference(study, groups[("pretrained", recipe)], groups[("random", recipe)], split)
            if d is not None:
                out.append(f"{recipe}, {split}: pre-trained minus random init {_pp(d['diff'])} ({ci} CI, n={d['n']}, "
                           f"{d['seeds']} seed(s)): {compare(d['diff'], 'pre-trained', 'random init')}.")  # fmt: skip
    for (init, recipe), runs in groups.items():
        drop = group_drop(study, runs)
        if drop is not None and recipe != "none":
            words = "no detectable drop" if drop[1] <= 0 <= drop[2] else ("a drop" if drop[0] > 0 else "a gain")
            out.append(f"{init} + {recipe}: id_test minus the mean of the OOD splits {_pp(drop)} ({ci} CI, "
                       f"{max(len(runs), 1)} seed(s)): {words}.")  # fmt: skip
    for (init, recipe), runs in groups.items():
        start = RL_RECIPES.get(recipe)
        if (init, start) not in groups:
            continue
        for split in study.splits:
            d = paired_difference(study, runs, groups[(init, start)], split)
            if d is not None:
                out.append(f"{init}, {recipe} minus {start} on {split}: {_pp(d['diff'])} greedy pass@1 ({ci} CI, "
                           f"n={d['n']}, {d['seeds']} seed(s)): {compare(d['diff'], recipe, start)}.")  # fmt: skip
    return out + probe_verdict(study, infos or [], compare)
