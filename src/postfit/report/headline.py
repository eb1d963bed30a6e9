"""The top of every report: the comparisons a study supports, as rows, and a headline of at most four sentences
chosen from them by fixed rules. From stored samples only.

A comparison is one estimate with its interval: a recovery ratio or a paired difference between inits, an
ID-to-OOD drop, the slope of accuracy on distance to the post-training data (an arm's, or pre-trained minus random),
what RL changed, a probe's gain, the k at which a starting model's pass@k catches up with its post-trained model's
(report/passk.py), the loss a pre-trained model gained on its pre-training corpus (forgetting); no headline rule uses
the last two. Its verdict is worded from the interval alone ("no detectable difference" when a difference's interval
reaches zero). The headline (`headline`) states the strongest supported
findings, in this order, one sentence each:

1. Inits: the largest pre-trained minus random difference after post-training whose interval excludes zero, with
   the recovery ratio on that split (and on id_test, when the split is an OOD one); or, when none excludes zero,
   that no difference is detectable, naming the largest estimate.
2. Distribution shift: the largest ID-to-OOD drop (or gain) after post-training whose interval excludes zero, with
   the other init's drop after the same recipe; or that no drop is detectable.
3. Distance, RL and learning to learn: the supported pre-trained minus random difference of distance slopes of
   largest magnitude (on the text distance, else the token one, else the structural one: their units differ), since
   it measures the study's question continuously (do the inits part away from the post-training data?); else the
   largest supported RL change or probe effect; or that none of them is detectable, and which could not move at all
   (every estimate zero with a zero-width interval: unable to measure). An arm's own slope is never a headline:
   accuracy falling with distance is expected, only the difference between inits says what pre-training does.
4. Learning to learn, when rule 3 stated a slope: the supported pre-trained minus random probe difference of
   largest magnitude (adaptation first, then the in-context gain from the prompt alone), or that none is
   detectable; only probes that can measure here have such rows.

Every number of the headline is formatted by the same function as its row of the comparisons table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postfit.config.recipes import NONE
from postfit.report.blocks import Table

INIT_GAP, RECOVERY, DROP = "init gap", "recovery", "ID→OOD drop"
RL, ICL, ADAPT, CONTEXT = "RL change", "in-context", "adaptation", "in-context (prompt only)"
SLOPE = "distance slope"
FORGET = "forgetting"  # a pre-trained model's held-out loss on its pre-training corpus, after minus before (nats)
CROSSOVER = "pass@k crossover"  # report/passk.py: its estimate is a k, never a headline
INITS = "pre-trained − random"  # the subject of a difference between the two inits
# The `split` of a slope comparison: which distance it is on.
TEXT_DISTANCE, TOKEN_DISTANCE, STRUCTURE = "text distance", "token distance", "structural distance"
_SUFFIX = {"pp": " pp", "log-odds": " log-odds", "nats": " nats"}


@dataclass(frozen=True)
class Comparison:
    """One estimate with its interval. `kind` is one of the names above; `subject` says whose estimate it is (an
    init, a model, or "pre-trained − random"); `unit` "pp" (a difference of two accuracies), "ratio", "log-odds"
    (a slope per unit of distance, or a difference of two) or "nats" (a difference of two losses per token)."""

    kind: str
    quantity: str
    subject: str
    recipe: str
    split: str
    est: tuple[float, float, float]
    n: int | None
    seeds: int
    unit: str = "pp"
    better: str = ""  # what a positive difference favours, for the verdict's words
    worse: str = ""

    @property
    def supported(self) -> bool:
        """An interval that excludes zero (a difference) or one (a ratio); never for an undefined estimate."""
        lo, hi = self.est[1], self.est[2]
        if np.isnan(self.est[0]):
            return False
        return (lo > 1 or hi < 1) if self.unit == "ratio" else (lo > 0 or hi < 0)

    @property
    def frozen(self) -> bool:
        """Zero with a zero-width interval: nothing moved, so the comparison cannot tell anything apart."""
        return self.unit == "pp" and self.est == (0.0, 0.0, 0.0)

    def _num(self, x: float) -> str:
        return {"ratio": f"{x:.2f}", "log-odds": f"{x:+.2f}", "nats": f"{x:+.3f}"}.get(self.unit, f"{100 * x:+.1f}")

    def interval(self) -> str:
        return "—" if np.isnan(self.est[0]) else f"[{self._num(self.est[1])}, {self._num(self.est[2])}]"

    def value(self) -> str:
        if np.isnan(self.est[0]):
            return "undefined (pre-trained score is 0)"
        return self._num(self.est[0]) + _SUFFIX.get(self.unit, "")

    def text(self) -> str:
        """The estimate with its interval as the headline prints it: '0.40 [0.25, 0.58]', '+45.0 [+30.0, +60.0] pp'."""
        if np.isnan(self.est[0]):
            return self.value()
        return f"{self._num(self.est[0])} {self.interval()}" + _SUFFIX.get(self.unit, "")

    def verdict(self) -> str:
        if np.isnan(self.est[0]):
            return "undefined"
        if self.unit == "ratio":
            if not self.supported:
                return "full recovery not excluded"
            return "random init below pre-trained" if self.est[2] < 1 else "random init above pre-trained"
        if self.kind == DROP:
            return "no detectable drop" if not self.supported else ("a drop" if self.est[0] > 0 else "a gain")
        if self.kind == FORGET:
            return ("forgets: the loss rises" if self.est[0] > 0 else "the loss falls") if self.supported else (
                "no detectable change")  # fmt: skip
        if self.kind == SLOPE and self.subject != INITS:  # an arm's own slope
            trend = "rises" if self.est[0] > 0 else "falls"
            return f"{trend} with distance" if self.supported else "no detectable trend"
        if self.kind == SLOPE and self.supported:  # a larger slope is a smaller decline, whatever the signs
            return f"{self.better if self.est[0] > 0 else self.worse} declines less with distance"
        if not self.supported:
            return "no detectable difference"
        return f"{self.better} higher" if self.est[0] > 0 else f"{self.worse} higher"


def comparisons_table(comps: list[Comparison]) -> Table:
    """Every comparison as a row; a kind whose every estimate is frozen collapses into one row saying so."""
    rows, frozen = [], frozen_kinds(comps)
    for kind in dict.fromkeys(c.kind for c in comps):
        group = [c for c in comps if c.kind == kind]
        if kind in frozen:
            rows.append([group[0].quantity, "every model", "—", "+0.0 pp", "[+0.0, +0.0]", "—", "—",
                         f"unable to measure: no model's score moves ({len(group)} estimates)"])  # fmt: skip
            continue
        for c in group:
            rows.append([f"{c.quantity}, {c.subject}", c.recipe, c.split, c.value(), c.interval(),
                         "—" if c.n is None else str(c.n), str(c.seeds), c.verdict()])  # fmt: skip
    return Table(["quantity", "recipe", "split", "estimate", "interval", "n", "seeds", "verdict"], rows, nowrap=True)


def frozen_kinds(comps: list[Comparison]) -> list[str]:
    """Kinds with more than one estimate, all frozen: probes (or RL) that cannot measure anything here."""
    kinds = dict.fromkeys(c.kind for c in comps)
    return [k for k in kinds if len(group := [c for c in comps if c.kind == k]) > 1 and all(c.frozen for c in group)]


def _largest(comps: list[Comparison]) -> Comparison | None:
    """The supported comparison of largest magnitude (ties: the first listed)."""
    supported = [c for c in comps if c.supported]
    return max(supported, key=lambda c: abs(c.est[0]), default=None)


def _inits_sentence(comps: list[Comparison]) -> str | None:
    gaps = [c for c in comps if c.kind == INIT_GAP]
    if not gaps:
        return None
    best = _largest(gaps)
    if best is None:
        top = max(gaps, key=lambda c: abs(c.est[0]))
        recipes = ", ".join(dict.fromkeys(c.recipe for c in gaps))
        return (f"After post-training ({recipes}), pre-trained and random init show no detectable difference on any "
                f"split (the largest estimate, {top.text()} on {top.split} after {top.recipe}, has an interval that "
                "reaches zero).")  # fmt: skip
    who = "pre-trained" if best.est[0] > 0 else "random init"
    gap = f"pre-trained minus random is {best.text()} on {best.split} ({who} higher)"
    ratios = [c for c in comps if c.kind == RECOVERY and c.recipe == best.recipe and not np.isnan(c.est[0])]
    first = next((c for c in ratios if c.split == "id_test"), None) or next(
        (c for c in ratios if c.split == best.split), None
    )
    if first is None:
        return f"After {best.recipe}, {gap}."
    text = f"After {best.recipe}, random init recovers {first.text()} of the pre-trained score on {first.split}"
    # The contrast: the split where recovery is lowest among those whose interval excludes full recovery.
    low = min((c for c in ratios if c.supported and c is not first), key=lambda c: c.est[0], default=None)
    if low is not None:
        text += f" {'but' if low.est[0] < first.est[0] else 'and'} {low.text()} on {low.split}"
    return f"{text}; {gap}."


def _drop_sentence(comps: list[Comparison]) -> str | None:
    drops = [c for c in comps if c.kind == DROP]
    if not drops:
        return None
    best = _largest(drops)
    if best is None:
        return "No model shows a detectable drop from id_test to the mean of the OOD splits."
    text = f"Out of distribution: id_test minus the mean of the OOD splits is {best.text()}"
    text += f" for {best.subject} + {best.recipe} ({best.verdict()})"
    other = next((c for c in drops if c.recipe == best.recipe and c.subject != best.subject), None)
    if other is not None:
        text += f" and {other.text()} for {other.subject} + {other.recipe} ({other.verdict()})"
    return text + "."


_EFFECT = {RL: "RL", ICL: "in-context examples", CONTEXT: "in-context examples", ADAPT: "adaptation"}


def _slope_sentence(diffs: list[Comparison]) -> str | None:
    on = (_largest([c for c in diffs if c.split == split]) for split in (TEXT_DISTANCE, TOKEN_DISTANCE, STRUCTURE))
    best = next((c for c in on if c is not None), None)
    if best is None:
        return None
    return (f"Against {best.split} to the post-training data, the pre-trained minus random slope of accuracy after "
            f"{best.recipe} is {best.text()} ({best.verdict()}).")  # fmt: skip


def _rest_sentence(comps: list[Comparison]) -> str | None:
    diffs = [c for c in comps if c.kind == SLOPE and c.subject == INITS]
    rest = [c for c in comps if c.kind in _EFFECT]
    if not rest and not diffs:
        return None
    if slope := _slope_sentence(diffs):
        return slope
    # The pre-trained minus random in-context gain first (nats: not comparable with the others' pp), then the rest.
    best = _largest([c for c in rest if c.kind == CONTEXT and c.subject == INITS]) or _largest(
        [c for c in rest if c.unit == "pp"]) or _largest(rest)  # fmt: skip
    if best is not None:
        return _effect_text(best)
    frozen = frozen_kinds(rest)
    kinds = [k for k in dict.fromkeys(c.kind for c in rest) if k not in frozen]
    parts = []
    if kinds:
        parts.append(f"no detectable effect of {' or '.join(_EFFECT[k] for k in kinds)}")
    if diffs:
        parts.append("no detectable difference between the inits' slopes of accuracy on distance")
    if frozen:
        parts.append(f"the {' and '.join(k for k in frozen)} probe{'s' * (len(frozen) > 1)} cannot measure at this "
                     "scale (every estimate +0.0 [+0.0, +0.0] pp)")  # fmt: skip
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _effect_text(best: Comparison) -> str:
    """One supported RL change or probe effect, in words."""
    when = "Before post-training" if best.recipe == NONE else f"After {best.recipe}"
    if best.kind == RL:
        return f"{best.quantity} changes {best.subject}'s {best.split} score by {best.text()}."
    if best.kind == CONTEXT and best.subject == INITS:
        return (f"{when}, pre-trained minus random in-context gain from the prompt alone ({best.split}) is "
                f"{best.text()} ({best.verdict()}).")  # fmt: skip
    if best.kind in (ICL, CONTEXT):
        return f"{best.subject} changes by {best.text()} with in-context examples ({best.split}, {best.verdict()})."
    who = "pre-trained" if best.est[0] > 0 else "random init"
    measure = f" in {best.quantity.partition(': ')[2]}" if best.unit == "nats" else ""
    return (f"{when}, {who} adapts faster to a new task ({best.split}){measure}: pre-trained minus random "
            f"{best.text()}.")  # fmt: skip


def _learning_sentence(comps: list[Comparison]) -> str | None:
    """Rule 4: after a distance slope, the learning-to-learn difference between the inits."""
    if not _slope_sentence([c for c in comps if c.kind == SLOPE and c.subject == INITS]):
        return None  # rule 3 already chose among the probes
    diffs = [c for c in comps if c.kind in (ADAPT, CONTEXT) and c.subject == INITS]
    if not diffs:
        return None
    adapt = [c for c in diffs if c.kind == ADAPT]  # the question gain (nats) before accuracy (pp): units differ
    best = _largest([c for c in adapt if c.unit == "nats"]) or _largest(adapt) or _largest(diffs)
    if best is None:
        return "No learning-to-learn probe that can measure here shows a detectable difference between the inits."
    return _effect_text(best)


def headline(comps: list[Comparison]) -> list[str]:
    """At most four sentences, by the rules of this module's docstring."""
    sentences = (_inits_sentence(comps), _drop_sentence(comps), _rest_sentence(comps), _learning_sentence(comps))
    return [s for s in sentences if s]
