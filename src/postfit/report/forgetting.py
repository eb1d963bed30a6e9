"""Report section "Forgetting: the pre-training corpus after post-training": per init × recipe, the held-out loss on
the blocks of the pre-training corpus that pre-training never saw, its change from the same init's `none` (paired by
seed and block), and the KL of the final model's next-token distribution from its starting model's; the comparison
rows give a pre-trained model's loss increase after each recipe. From runs/*/forgetting.jsonl only
(evaluation/forgetting.py writes them).

Random init never learned the corpus, so it has nothing of pre-training to forget: its rows are a reference for how
far post-training moves a model's loss on that text anyway.
"""

from __future__ import annotations

import numpy as np

from postfit.analysis import stats
from postfit.config.recipes import NONE
from postfit.report.blocks import Block, Heading, Para, Table
from postfit.report.headline import FORGET, Comparison
from postfit.report.results import BOOT_SEED, StudyResults, paired_estimate

HEADING = "Forgetting: the pre-training corpus after post-training"
CORPUS = "pre-training corpus"  # the comparisons' `split`
Arm = dict[int, dict[int, dict]]  # seed -> block -> its stored row
REFERENCE = ("Random init never learned the corpus, so it has nothing of pre-training to forget: its rows are a "
             "reference for how far post-training moves the loss on this text anyway, not forgetting.")  # fmt: skip


def pretrained(init: str) -> bool:
    """An init with postfit's pre-training behind it: `pretrained` or `pretrained@TOKENS`."""
    return init.partition("@")[0] == "pretrained"


def arms(study: StudyResults) -> dict[tuple[str, str], Arm]:
    """(init, recipe) -> its runs' forgetting rows by seed and block; arms whose runs stored none are left out."""
    out = {}
    for group, runs in study.groups().items():
        by_seed = {run.seed: {int(r["block"]): r for r in run.forgetting} for run in runs if run.forgetting}
        if by_seed:
            out[group] = by_seed
    return out


def _values(arm: Arm, key: str) -> dict[int, dict[int, float]]:
    return {seed: {block: float(row[key]) for block, row in rows.items()} for seed, rows in arm.items()}


def pooled(study: StudyResults, arm: Arm, key: str) -> tuple[float, float, float]:
    """Mean over seeds of the per-seed mean over blocks of `key` ("loss" or "kl"), bootstrapped over seeds then
    blocks."""
    per_seed = [np.array([rows[b][key] for b in sorted(rows)]) for _, rows in sorted(arm.items())]
    return stats.bootstrap_ci(per_seed, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))


def change(study: StudyResults, data: dict, init: str, recipe: str):
    """(est, lo, hi), blocks, seeds of the loss of init + recipe minus init + none, paired by seed and block; None
    for `none` itself or without both."""
    none = data.get((init, NONE))
    if recipe == NONE or none is None:
        return None
    return paired_estimate(study, _values(data[(init, recipe)], "loss"), _values(none, "loss"))


def forgetting_comparisons(study: StudyResults) -> list[Comparison]:
    """A pre-trained model's loss increase on its held-out pre-training corpus after each recipe (not random init:
    it had nothing to forget)."""
    data, out = arms(study), []
    for init, recipe in data:
        got = change(study, data, init, recipe) if pretrained(init) else None
        if got is not None:
            est, n, seeds = got
            out.append(Comparison(FORGET, "loss increase", init, recipe, CORPUS, est, n, seeds, unit="nats"))
    return out


def _num(est: tuple[float, float, float], sign: str = "") -> str:
    return f"{est[0]:{sign}.3f} [{est[1]:{sign}.3f}, {est[2]:{sign}.3f}]"


def _table(study: StudyResults, data: dict) -> Table:
    rows = []
    for (init, recipe), arm in data.items():
        got = change(study, data, init, recipe)
        kl = "0 (its own start)" if recipe == NONE else _num(pooled(study, arm, "kl"))
        model = init if pretrained(init) else f"{init} (reference)"
        rows.append([model, recipe, _num(pooled(study, arm, "loss")), "—" if got is None else _num(got[0], "+"), kl,
                     str(max(len(r) for r in arm.values())), str(len(arm))])  # fmt: skip
    header = ["model", "recipe", "held-out loss, nats [CI]", "change from none [CI]", "KL from start, nats [CI]",
              "blocks", "seeds"]  # fmt: skip
    return Table(header, rows, nowrap=True)


def _against_random(study: StudyResults, data: dict, c: Comparison) -> str:
    """Where the post-trained pre-trained model's loss stands against the untrained random init's (about the
    uniform guess), worded from the intervals: above it, no advantage of pre-training is left on this text."""
    if ("random", NONE) not in data:
        return ""
    loss, rand = pooled(study, data[(c.subject, c.recipe)], "loss"), pooled(study, data[("random", NONE)], "loss")
    than = f"the untrained random init's {rand[0]:.3f}"
    if loss[1] > rand[2]:
        return f" That is above {than}: none of pre-training's advantage on this text is left."
    if loss[2] < rand[1]:
        return f" That is still below {than}: part of pre-training's advantage on this text stays."
    return f" Its interval holds {than}."


def _findings(study: StudyResults, data: dict, comps: list[Comparison]) -> str:
    out = []
    for c in comps:
        arm = data[(c.subject, c.recipe)]
        loss, kl = _num(pooled(study, arm, "loss")), _num(pooled(study, arm, "kl"))
        out.append(f"After {c.recipe}, the {c.subject} model's loss on the held-out pre-training corpus is {loss} "
                   f"nats per token, {c.text()} from {c.subject} + none ({c.verdict()}); its next-token distribution "
                   f"is {kl} nats per token (KL) from its starting model's.")  # fmt: skip
        out[-1] += _against_random(study, data, c)
    meta = study.base_meta or {}
    if ("pretrained", NONE) in data and meta.get("heldout_loss_pretrained") is not None:
        loss = pooled(study, data[("pretrained", NONE)], "loss")[0]
        out.append(f"Untrained, the pre-trained model scores {loss:.4f}, as pre-training measured it (base/meta.json: "
                   f"{meta['heldout_loss_pretrained']:.4f}).")  # fmt: skip
    if any(not pretrained(init) for init, _ in data):
        out.append(REFERENCE)
    return " ".join(out)


def _method(study: StudyResults, data: dict) -> str:
    rows = next(iter(next(iter(data.values())).values()))
    blocks, tokens = len(rows), next(iter(rows.values()))["tokens"]
    return (
        f"How: the corpus's last {blocks} blocks of {tokens + 1} tokens, which pre-training never trained on "
        "(base/heldout.jsonl), scored by each run's final model: the mean next-token cross-entropy, and "
        "KL(p_start ‖ p_final), the KL of its next-token distribution from its starting model's (the weights the "
        "run was built from before post-training: the pre-trained model, or the seed's random init), averaged over "
        f"the {tokens} predicted positions of each block. A `none` run is its own starting model: its KL is 0 by "
        f"construction and not computed. Intervals: {study.ci:.0%} bootstrap over seeds, then blocks within seeds "
        f"({study.n_boot} resamples); the change from none is paired by seed and block."
    )


def forgetting_blocks(study: StudyResults, comps: list[Comparison]) -> list[Block]:
    """The section; `comps` (report/comparisons.py) hold its loss increases, computed once for the table too."""
    heading = Heading(HEADING)
    if (study.config.get("model") or {}).get("name_or_path"):
        return [heading, Para("Not measured: the model was not pre-trained by postfit (`model.name_or_path`), so its "
                              "pre-training corpus is not known here.")]  # fmt: skip
    data = arms(study)
    if not data:
        why = "a study evaluated before postfit measured them, or a corpus too short to hold blocks out"
        return [heading, Para(f"Not measured: no run stored forgetting rows (runs/*/forgetting.jsonl; {why}).")]
    blocks = [heading, Para(_findings(study, data, [c for c in comps if c.kind == FORGET])), _table(study, data)]
    if missing := [run.name for run in study.runs if not run.forgetting]:
        blocks.append(Para(f"Not measured for {', '.join(missing)} (evaluated before postfit stored its rows)."))
    return [*blocks, Para(_method(study, data))]
