"""Report part of the context probe (postfit/context_probe.py): in-context learning where only the prompt holds the
answer, for every model and for the positive control, from runs/*/probes.jsonl and probes/control.jsonl.

A family's gain is, per query, the mean over k > 0 of its score with k shots minus its score with none: the
log-likelihood of the context-determined answer (nats), and greedy accuracy. A family can measure only where the
positive control's log-likelihood gain has an interval above zero; otherwise its rows are shown as unable to measure
at this scale, and no comparison of it reaches the comparisons table or the headline.
"""

from __future__ import annotations

import numpy as np

from postfit.analysis import stats
from postfit.context_probe import DESCRIPTIONS
from postfit.report.blocks import Block, Para, Plot, Table
from postfit.report.headline import CONTEXT, INITS, Comparison
from postfit.report.plots import curves_plot
from postfit.report.results import paired_estimate
from postfit.report.scaling import aligned, estimate

PROBE = "context"
Rows = list[dict]


def _rows(rows: Rows, family: str) -> Rows:
    return [r for r in rows if r.get("probe") == PROBE and r["task"] == family and r["sample"] == stats.GREEDY]


def _control(study) -> Rows:
    return getattr(study, "control", None) or []  # the control's rows (a study read by load_study has them)


def families(study, groups: dict) -> list[str]:
    found = {r["task"] for r in _control(study) if r.get("probe") == PROBE}
    found |= {r["task"] for runs in groups.values() for run in runs for r in run.probes if r.get("probe") == PROBE}
    return sorted(found)


def ks(groups: dict) -> list[int]:
    return sorted({r["k"] for runs in groups.values() for run in runs for r in run.probes if r.get("probe") == PROBE})


def _value(r: dict, measure: str) -> float:
    return float(r["loglik"]) if measure == "loglik" else float(bool(r["correct"]))


def at_k(rows: Rows, family: str, k: int, measure: str) -> dict[str, float]:
    """item -> its score with k shots."""
    return {r["item"]: _value(r, measure) for r in _rows(rows, family) if r["k"] == k}


def gains(rows: Rows, family: str, measure: str) -> dict[str, float]:
    """item -> mean over k > 0 of (score with k shots - score with none)."""
    by_k: dict[int, dict[str, float]] = {}
    for r in _rows(rows, family):
        by_k.setdefault(r["k"], {})[r["item"]] = _value(r, measure)
    zero, shown = by_k.get(0, {}), [d for k, d in sorted(by_k.items()) if k > 0]
    items = set(zero).intersection(*map(set, shown)) if shown else set()
    return {i: float(np.mean([d[i] for d in shown])) - zero[i] for i in sorted(items)}


def _estimate(study, per_seed: list[dict[str, float]]) -> tuple[tuple[float, float, float], int] | None:
    """(estimate with CI, items) over the items every seed has; None without any."""
    arrays = aligned(per_seed)
    return None if arrays is None else (estimate(study, arrays), arrays[0].size)


def control_verdicts(study, groups: dict) -> dict[str, tuple[tuple[float, float, float], int] | None]:
    """family -> the control's log-likelihood gain (estimate with CI, items), None without a control."""
    return {f: _estimate(study, [gains(_control(study), f, "loglik")]) if _control(study) else None
            for f in families(study, groups)}  # fmt: skip


def measurable(study, groups: dict) -> list[str]:
    """The families whose control shows a gain with an interval above zero."""
    return [f for f, got in control_verdicts(study, groups).items() if got is not None and got[0][1] > 0]


def _name(init: str, label: str) -> str:
    return f"{init} (before)" if label == "none" else f"{init} {label} (after)"


def context_comparisons(study, groups: dict) -> list[Comparison]:
    """Per measurable family: each model's log-likelihood gain, then pre-trained minus random per model label,
    paired by seed and item."""
    out = []
    for family in measurable(study, groups):
        by_group = {g: {r.seed: gains(r.probes, family, "loglik") for r in runs} for g, runs in groups.items()}
        for (init, label), by_seed in by_group.items():
            got = _estimate(study, [d for d in by_seed.values() if d])
            if got:
                out.append(Comparison(CONTEXT, "in-context gain (answer log-likelihood)", _name(init, label), label,
                                      family, got[0], got[1], len(by_seed), unit="nats", better="with shots",
                                      worse="without"))  # fmt: skip
        for label in dict.fromkeys(label for _, label in by_group):
            pre, rand = by_group.get(("pretrained", label)), by_group.get(("random", label))
            got = pre and rand and paired_estimate(study, pre, rand)
            if got:
                out.append(Comparison(CONTEXT, "in-context gain (answer log-likelihood)", INITS, label, family,
                                      *got, unit="nats", better="pre-trained", worse="random init"))  # fmt: skip
    return out


def _fmt(est: tuple[float, float, float], scale: float = 1.0) -> str:
    return f"{scale * est[0]:+.2f} [{scale * est[1]:+.2f}, {scale * est[2]:+.2f}]"


def context_blocks(study, groups: dict) -> list[Block]:
    """The context probe's figure, control verdicts, table and method; nothing for a study without it."""
    fams, k_values = families(study, groups), ks(groups)
    if not fams:
        return []
    verdicts, ok = control_verdicts(study, groups), measurable(study, groups)
    models = {_name(*g): {r.seed: r.probes for r in runs} for g, runs in groups.items()}
    if _control(study):
        models["positive control"] = {0: _control(study)}
    panels: dict[str, list] = {}
    for family in fams:
        for name, by_seed in models.items():
            est = [(k, _estimate(study, [at_k(rows, family, k, "loglik") for rows in by_seed.values()]))
                   for k in k_values]  # fmt: skip
            est = [(k, e) for k, e in est if e]
            if est:
                panels.setdefault(family, []).append((name, [k for k, _ in est], [e[0] for _, e in est]))
    words = []
    for family in fams:
        got = verdicts[family]
        if got is None:
            words.append(f"{family}: no positive control was trained, so a null here cannot be told from a probe "
                         "that cannot move.")  # fmt: skip
        elif family in ok:
            words.append(f"{family}: the positive control gains {_fmt(got[0])} nats (n={got[1]} queries): the probe "
                         "can measure at this scale.")  # fmt: skip
        else:
            words.append(f"{family}: the positive control gains {_fmt(got[0])} nats (n={got[1]} queries), an "
                         "interval that reaches zero: not able to measure at this scale; its rows are shown, not "
                         "compared.")  # fmt: skip
    header = ["model"] + [f"{f} {m}" for f in fams for m in ("log-lik gain, nats", "accuracy gain, pp")]
    rows = []
    for name, by_seed in models.items():
        cells = []
        for family in fams:
            for measure, scale in (("loglik", 1.0), ("correct", 100.0)):
                got = _estimate(study, [d for d in (gains(r, family, measure) for r in by_seed.values()) if d])
                cells.append(_fmt(got[0], scale) if got else "—")
        rows.append([name, *cells])
    method = (
        "In-context learning from the prompt alone (postfit/context_probe.py): each query comes with its own k solved "
        "examples as earlier chat turns, drawn afresh, so only the shots hold its answer ("
        + "; ".join(f"{f}: {DESCRIPTIONS.get(f, 'a family of a later postfit')}" for f in fams)
        + "). Plotted: the log-likelihood of the "
        "context-determined answer after `Answer: ` (nats) against k; the gain is, per query, the "
        "mean over k > 0 minus k = 0, with "
        f"{study.ci:.0%} intervals over seeds and queries. The positive control is a base model fine-tuned briefly "
        "on these families (other draws); a family can measure only where its gain is above zero."
    )  # fmt: skip
    blocks: list[Block] = [Para(method)]
    if panels:
        png = curves_plot(panels, "k shots (symlog)", f"answer log-likelihood (nats), {study.ci:.0%} CI",
                          "In-context learning from the prompt alone", xscale="symlog", percent=False)  # fmt: skip
        blocks.append(Plot("context", "Answer log-likelihood against k shots", png))
    return [*blocks, Para(" ".join(words)), Table(header, rows)]
