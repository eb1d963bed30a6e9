"""Report section of the learning-to-learn probes: in-context k-curves and adaptation curves, side by side.

Rows come from runs/*/probes.jsonl. The `none` runs are the models before post-training ("before"), the others
after it. Scores pool the probe's families (an item is `task/id`); the comparisons stated in words are paired
over the same items and seeds.
"""

from __future__ import annotations

from itertools import pairwise

from postfit.config.recipes import NONE
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.context import context_blocks, context_comparisons
from postfit.report.headline import ADAPT, ICL, INITS, Comparison, frozen_kinds
from postfit.report.plots import curves_plot
from postfit.report.results import RunResults, paired_estimate
from postfit.report.scaling import aligned, difference_text, estimate, pct


def _scores(info: RunResults, probe: str, key: str, value: int) -> dict[str, float]:
    return {f"{r['task']}/{r['item']}": float(r["correct"]) for r in info.probes
            if r["probe"] == probe and r[key] == value and r["sample"] == -1}  # fmt: skip


def _by_seed(infos: list[RunResults], probe: str, key: str, value: int) -> dict[int, dict[str, float]]:
    return {i.seed: _scores(i, probe, key, value) for i in infos}


def question_gains(info: RunResults, m: int) -> dict[str, float]:
    """item -> the question gain after m adaptation steps: log p(answer | its question) - log p(answer | the next
    test item's question), nats. A model that learned only the answers' distribution (their format, the commonest
    one) gains nothing; one that reads the question does. Rows stored before postfit recorded it give none."""
    return {f"{r['task']}/{r['item']}": float(r["loglik"]) - float(r["loglik_other"]) for r in info.probes
            if r["probe"] == "adapt" and r["m"] == m and r["sample"] == -1 and "loglik_other" in r}  # fmt: skip


def _gains_by_seed(infos: list[RunResults], m: int) -> dict[int, dict[str, float]]:
    return {i.seed: d for i in infos if (d := question_gains(i, m))}


def _gain_auc_by_seed(infos: list[RunResults], ms: list[int]) -> dict[int, dict[str, float]]:
    return {i.seed: d for i in infos if (d := adaptation_auc({m: question_gains(i, m) for m in ms}))}


def adaptation_auc(by_m: dict[int, dict[str, float]]) -> dict[str, float]:
    """Per item, the area under its score-vs-m curve (trapezoids over the probed m, divided by their range): its
    mean score over the adaptation (for accuracy, in [0, 1]); items probed at every m only. One m: its score."""
    ms = sorted(by_m)
    items = set.intersection(*(set(by_m[m]) for m in ms)) if ms else set()
    if len(ms) == 1:
        return {i: by_m[ms[0]][i] for i in items}
    span = ms[-1] - ms[0]
    return {i: sum((b - a) * (by_m[a][i] + by_m[b][i]) / 2 for a, b in pairwise(ms)) / span for i in items}


def _auc_by_seed(infos: list[RunResults], ms: list[int]) -> dict[int, dict[str, float]]:
    return {i.seed: adaptation_auc({m: _scores(i, "adapt", "m", m) for m in ms}) for i in infos}


def _name(init: str, label: str) -> str:
    return f"{init} (before)" if label == NONE else f"{init} {label} (after)"


def _groups(probed: list[RunResults]) -> dict[tuple[str, str], list[RunResults]]:
    """(init, model label) -> the probed runs of that model, one per seed."""
    groups: dict[tuple[str, str], list[RunResults]] = {}
    for i in probed:
        groups.setdefault((i.init, i.label), []).append(i)
    return groups


def probe_blocks(study, comps: list[Comparison]) -> list[Block]:
    """The section, from the study's runs' probe rows; `comps` (report/comparisons.py) hold the in-context gains."""
    probed = [i for i in study.runs if i.probes]
    if not probed:
        return []
    groups = _groups(probed)
    # Plot the models before post-training and the final ones (largest N); the table has every group.
    top = {}
    for i in probed:
        top[(i.init, i.recipe)] = max(top.get((i.init, i.recipe), 0), i.examples or 0)
    plotted = [key for key, g in groups.items() if (g[0].examples or 0) == top[(g[0].init, g[0].recipe)]]
    panels: dict[str, list] = {}
    columns: list[tuple[str, str, int]] = []
    for probe, key, title in (
        ("icl", "k", "in-context: k solved examples"),
        ("adapt", "m", "adaptation: m SFT steps"),
    ):
        values = sorted({r[key] for i in probed for r in i.probes if r["probe"] == probe})
        columns += [(probe, key, v) for v in values]
        for g in plotted:
            est = [(v, aligned([d for d in _by_seed(groups[g], probe, key, v).values() if d])) for v in values]
            est = [(v, estimate(study, a)) for v, a in est if a]
            if est:
                panels.setdefault(title, []).append((_name(*g), [v for v, _ in est], [e for _, e in est]))
    blocks: list[Block] = [Heading("Learning to learn")]
    if not columns:  # only the context probe
        return blocks + context_blocks(study, groups)
    icl = "with k solved examples as earlier chat turns (no shot shares the query's question or an accepted answer)"
    adapt = "after m SFT steps on a new task (constant learning rate, the same for every model)"
    shown = [text for probe, text in (("icl", icl), ("adapt", adapt)) if probe in {p for p, _, _ in columns}]
    what = f"left, {shown[0]}; right, {shown[1]}" if len(shown) == 2 else shown[0]
    blocks.append(
        Para(
            f"Greedy accuracy (%) on task families never post-trained on, {what}. Dashed: before "
            f"post-training (`none` runs); solid: after. Bands: {study.ci:.0%} CI over seeds and items."
        )
    )
    if panels:
        png = curves_plot(panels, "k or m (symlog)", "greedy accuracy (%)", "Learning to learn", xscale="symlog")
        blocks.append(Plot("probes", "In-context and adaptation curves", png))
    ms = [v for p, _, v in columns if p == "adapt"]
    header = ["init", "model"] + [f"{probe} {key}={v}" for probe, key, v in columns]
    header += [f"adapt AUC (m={ms[0]}-{ms[-1]})"] if ms else []
    rows = []
    for (init, label), g in groups.items():
        cells = []
        for probe, key, v in columns:
            arrays = aligned([d for d in _by_seed(g, probe, key, v).values() if d])
            cells.append(pct(estimate(study, arrays)) if arrays else "—")
        if ms:
            arrays = aligned([d for d in _auc_by_seed(g, ms).values() if d])
            cells.append(pct(estimate(study, arrays)) if arrays else "—")
        rows.append([init, label, *cells])
    blocks.append(Table(header, rows))
    blocks += _statements(study, groups, columns, [c for c in comps if c.kind == ICL])
    blocks += gain_blocks(study, groups, plotted, ms)
    return blocks + context_blocks(study, groups)


def _statements(study, groups: dict[tuple[str, str], list[RunResults]], columns: list[tuple[str, str, int]],
                gains: list[Comparison]) -> list[Block]:  # fmt: skip
    """In words, with CI and n: the in-context gain of each model (`gains`), and what post-training did to
    adaptation."""
    lines = []
    icl = [v for p, _, v in columns if p == "icl"]
    if frozen_kinds(gains):
        lines.append(
            f"No model shows an in-context gain at this scale: every one scores the same items right with "
            f"k={icl[-1]} and k={icl[0]} shots (+0.0 [+0.0, +0.0] pp), so this probe cannot measure here."
        )
    else:
        for c in gains:
            lines.append(f"{c.subject}: k={icl[-1]} minus k={icl[0]} = {pct(c.est, signed=True)} pp "
                         f"(n={c.n} items, {c.seeds} seed{'s' * (c.seeds > 1)}, paired).")  # fmt: skip
    adapt = [v for p, _, v in columns if p == "adapt"]
    if adapt and not adapts_beyond_constant(groups, adapt):  # each model's numbers are in the table above
        return [Para(" ".join(lines + _constant_lines(groups, adapt)))]
    for (init, label), g in groups.items() if adapt else ():
        arrays = aligned([d for d in _auc_by_seed(g, adapt).values() if d])
        if arrays:
            lines.append(f"{_name(init, label)}: adaptation speed (area under accuracy vs m={adapt[0]}-{adapt[-1]} "
                         f"SFT steps, as a mean accuracy) {pct(estimate(study, arrays))}% ({study.ci:.0%} CI, "
                         f"n={arrays[0].size} items, {len(arrays)} seed(s)).")  # fmt: skip
    if adapt:
        m = adapt[-1]
        for (init, label), g in groups.items():
            before = groups.get((init, NONE))
            if label == NONE or not before:
                continue
            d = difference_text(study, _by_seed(g, "adapt", "m", m), _by_seed(before, "adapt", "m", m))
            if d:
                lines.append(f"{init}: adaptation after m={m} steps, {label} model minus the model before "
                             f"post-training = {d}.")  # fmt: skip
        lines += _threshold_lines(study, groups, adapt)
    return [Para(" ".join(lines))] if lines else []


def _threshold_lines(study, groups: dict[tuple[str, str], list[RunResults]], ms: list[int]) -> list[str]:
    """Each model's steps to the study's accuracy threshold (`probes.adapt.threshold`), with its interval, then
    `_constant_lines`."""
    threshold = _adapt_option(study, "threshold")
    out = []
    for (init, label), g in groups.items():
        if steps := _steps_to(study, {m: _by_seed(g, "adapt", "m", m) for m in ms}, threshold):
            out.append(f"{_name(init, label)}: steps to {threshold:.0%} accuracy {steps}.")
    return out + _constant_lines(groups, ms)


def _constant_lines(groups: dict[tuple[str, str], list[RunResults]], ms: list[int]) -> list[str]:
    """The accuracy of always giving the commonest training answer: a model that ends at or below it learned
    nothing a constant answer does not give, and where every model does, the probe's accuracy cannot measure."""
    if (constant := constant_answer(groups)) is None:
        return []
    answer, baseline = constant
    out = [f"Always answering the commonest training answer ({answer!r}) scores {baseline:.0%}."]
    if not adapts_beyond_constant(groups, ms):
        out.append(f"Every model ends at or below it after m={ms[-1]} steps: adaptation accuracy cannot measure "
                   "learning at this scale, and its differences are shown in the table, not compared.")  # fmt: skip
    return out


def _adapt_option(study, key: str) -> float:
    """`probes.adapt.<key>` of the study's stored config, else its default."""
    from postfit.config.scaling import AdaptProbe

    stored = ((getattr(study, "config", {}).get("probes") or {}).get("adapt") or {}).get(key)
    return float(AdaptProbe.model_fields[key].default if stored is None else stored)


def _steps_to(study, by_m: dict[int, dict[int, dict[str, float]]], threshold: float) -> str | None:
    """'m [lo, hi]': the first probed m whose mean score reaches `threshold` (`stats.steps_to_threshold`), over the
    seeds and items every m has; '> M' where it is never reached; None without any."""
    import numpy as np

    from postfit.analysis.stats import steps_to_threshold
    from postfit.report.results import BOOT_SEED

    ms = sorted(by_m)
    seeds = sorted(set.intersection(*(set(d) for d in by_m.values())))
    items = sorted(set.intersection(*(set(d[s]) for d in by_m.values() for s in seeds))) if seeds else []
    if not items:
        return None
    arrays = {m: [np.array([by_m[m][s][i] for i in items]) for s in seeds] for m in ms}
    m, lo, hi = steps_to_threshold(arrays, threshold, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))

    def steps(x: float) -> str:
        return f"> {ms[-1]}" if np.isinf(x) else f"{x:.0f}"

    return f"{steps(m)} [{steps(lo)}, {steps(hi)}]"


def gain_moves(study, groups: dict[tuple[str, str], list[RunResults]], ms: list[int]) -> bool:
    """Some model's question gain after the last m has an interval above zero: the probe moves at this scale, so
    its differences can be compared (without it, a null says nothing about the models)."""
    for g in groups.values() if ms else ():
        arrays = aligned(list(_gains_by_seed(g, ms[-1]).values()))
        if arrays and estimate(study, arrays)[1] > 0:
            return True
    return False


def _nats(est: tuple[float, float, float]) -> str:
    return f"{est[0]:+.2f} [{est[1]:+.2f}, {est[2]:+.2f}]"


def gain_blocks(study, groups: dict[tuple[str, str], list[RunResults]], shown: list, ms: list[int]) -> list[Block]:
    """The question gain of every model against m (plot of the `shown` groups, table of all), each model's steps to
    `probes.adapt.gain_threshold`, and whether the probe moves; nothing for rows stored before it was recorded."""
    if not ms or not any(_gains_by_seed(g, ms[-1]) for g in groups.values()):
        return []
    threshold = _adapt_option(study, "gain_threshold")
    panels: dict[str, list] = {}
    family = _families([i for g in groups.values() for i in g], "adapt")
    rows, lines = [], []
    for (init, label), g in groups.items():
        est = [(m, aligned(list(_gains_by_seed(g, m).values()))) for m in ms]
        est = [(m, estimate(study, a)) for m, a in est if a]
        if (init, label) in shown and est:
            panels.setdefault(family, []).append((_name(init, label), [m for m, _ in est], [e for _, e in est]))
        auc = aligned(list(_gain_auc_by_seed(g, ms).values()))
        by_m = dict(est)
        steps = _steps_to(study, {m: _gains_by_seed(g, m) for m in ms}, threshold)
        rows.append([init, label, *(_nats(by_m[m]) if m in by_m else "—" for m in ms),
                     _nats(estimate(study, auc)) if auc else "—", steps or "—"])  # fmt: skip
    moves = gain_moves(study, groups, ms)
    for (init, label), g in groups.items() if moves else ():
        before = groups.get((init, NONE))
        got = label != NONE and before and paired_estimate(study, _gain_auc_by_seed(g, ms),
                                                           _gain_auc_by_seed(before, ms))  # fmt: skip
        if got:
            lines.append(f"{init}: question-gain AUC, {label} model minus the model before post-training = "
                         f"{_nats(got[0])} nats (n={got[1]} items, {got[2]} seeds, paired).")  # fmt: skip
    if moves:
        lines.append(
            "The question gain of at least one model is above zero after the last step: the probe "
            "moves at this scale, and its pre-trained minus random differences are in the comparisons."
        )
    else:
        lines.append(f"No model's question gain after m={ms[-1]} steps has an interval above zero: the probe "
                     "cannot measure at this scale, and no comparison of it is made.")  # fmt: skip
    method = (
        "What each model takes from the question while it adapts: the log-likelihood of the right answer after "
        "`Answer: ` given its own question minus given the next test item's question (nats, mean over items; 0: "
        "the answer is no likelier for its question than for another, as for a model that learned only the answers' "
        f"format and distribution). Area under the curve over m={ms[0]}-{ms[-1]} as a mean, with {study.ci:.0%} "
        "intervals over seeds and items; steps to a gain: the first probed m whose mean reaches it, with the "
        "interval of that m."
    )  # fmt: skip
    blocks: list[Block] = [Para(method)]
    if panels:
        png = curves_plot(panels, "m SFT steps (symlog)", f"question gain (nats), {study.ci:.0%} CI",
                          "Question gain while adapting", xscale="symlog", min_width=7.0, percent=False)  # fmt: skip
        blocks.append(Plot("adapt_gain", "Question gain against adaptation steps", png))
    header = ["init", "model", *(f"gain m={m}" for m in ms), f"gain AUC (m={ms[0]}-{ms[-1]})",
              f"steps to {threshold:g} nats"]  # fmt: skip
    return [*blocks, Table(header, rows), Para(" ".join(lines))]


def constant_answer(groups: dict[tuple[str, str], list[RunResults]]) -> tuple[str, float] | None:
    """(the commonest answer of the adaptation task's training items, the share of its test items it answers
    right), from the rows' `majority`; None for rows stored before postfit recorded it."""
    rows = [r for g in groups.values() for i in g for r in i.probes if r["probe"] == "adapt" and "majority" in r]
    if not rows:
        return None
    per_item = {r["item"]: r["reference"] == r["majority"] for r in rows}
    return rows[0]["majority"], sum(per_item.values()) / len(per_item)


def adapts_beyond_constant(groups: dict[tuple[str, str], list[RunResults]], ms: list[int]) -> bool:
    """Some model's accuracy after the last m (mean over seeds) is above a constant answer's (True without one)."""
    constant = constant_answer(groups)
    if constant is None or not ms:
        return True
    for g in groups.values():
        per_seed = [sum(d.values()) / len(d) for d in _by_seed(g, "adapt", "m", ms[-1]).values() if d]
        if per_seed and sum(per_seed) / len(per_seed) > constant[1] + 1e-9:
            return True
    return False


def _families(probed: list[RunResults], probe: str) -> str:
    return f"{probe}: " + ", ".join(sorted({r["task"] for i in probed for r in i.probes if r["probe"] == probe}))


def probe_comparisons(study, infos: list[RunResults]) -> list[Comparison]:
    """Per model, the in-context gain (largest k minus k=0); per recipe, pre-trained minus random init in
    adaptation speed (the AUC); each paired over seeds and items."""
    probed = [i for i in infos if i.probes]
    groups = _groups(probed)
    values = {p: sorted({r[key] for i in probed for r in i.probes if r["probe"] == p}) for p, key in
              (("icl", "k"), ("adapt", "m"))}  # fmt: skip
    ks, ms, out = values["icl"], values["adapt"], []
    for (init, label), g in groups.items() if len(ks) > 1 else ():
        got = paired_estimate(study, _by_seed(g, "icl", "k", ks[-1]), _by_seed(g, "icl", "k", ks[0]))
        if got:
            what = f"in-context gain, k={ks[-1]} − k={ks[0]} shots"
            out.append(Comparison(ICL, what, _name(init, label), label, _families(probed, "icl"), *got,
                                  better=f"k={ks[-1]}", worse=f"k={ks[0]}"))  # fmt: skip
    for label in dict.fromkeys(label for _, label in groups) if ms and adapts_beyond_constant(groups, ms) else ():
        pre, rand = groups.get(("pretrained", label)), groups.get(("random", label))
        got = pre and rand and paired_estimate(study, _auc_by_seed(pre, ms), _auc_by_seed(rand, ms))
        if got:
            out.append(Comparison(ADAPT, f"adaptation speed (AUC, m={ms[0]}-{ms[-1]} steps)", INITS,
                                  label, _families(probed, "adapt"), *got, better="pre-trained",
                                  worse="random init"))  # fmt: skip
    for label in dict.fromkeys(label for _, label in groups) if gain_moves(study, groups, ms) else ():
        pre, rand = groups.get(("pretrained", label)), groups.get(("random", label))
        got = pre and rand and paired_estimate(study, _gain_auc_by_seed(pre, ms), _gain_auc_by_seed(rand, ms))
        if got:
            out.append(Comparison(ADAPT, f"adaptation: question gain (AUC, m={ms[0]}-{ms[-1]} steps)", INITS, label,
                                  _families(probed, "adapt"), *got, unit="nats", better="pre-trained",
                                  worse="random init"))  # fmt: skip
    return out + context_comparisons(study, groups)
