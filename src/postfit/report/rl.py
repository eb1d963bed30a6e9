"""The report's RL sections: what GRPO changed, read from each RL run's stored logs and samples.

Per RL run (recipe `rl` or `sft+rl`): the training reward, held-out greedy accuracy (heldout.jsonl), completion
length and the fraction of groups whose rewards were all equal (no GRPO signal) over the RL steps; where the time
went (run.json); and pass@k for k = 1..K before and after RL, the "before" model being the run RL started from
(`sft` for sft+rl, `none` for rl) with the same init and seed, evaluated on the same items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from postfit.analysis import stats
from postfit.config.grid import Run
from postfit.config.recipes import RECIPES, RL
from postfit.report.blocks import Drawn, Heading, Para, Plot, Table, drawn, new_figure
from postfit.report.results import paired_estimate

if TYPE_CHECKING:
    from postfit.report.results import RunResults, StudyResults

# RL recipe -> the recipe whose model it starts from (its "before")
RL_RECIPES = {r.name: r.before for r in RECIPES.values() if r.trainer == RL}
TIME_KEYS = ("generate_s", "update_s", "heldout_eval_s", "generated_tokens", "generated_tokens_per_s")


def _series(log: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], float(r[key])) for r in log if key in r and "step" in r]


def heldout_curve(run: RunResults) -> list[tuple[int, float, int]]:
    """(step, greedy accuracy, items) from heldout.jsonl."""
    by_step: dict[int, list[bool]] = {}
    for row in run.heldout:
        by_step.setdefault(int(row["step"]), []).append(bool(row["correct"]))
    return [(s, float(np.mean(v)), len(v)) for s, v in sorted(by_step.items())]


def _style(run: RunResults, runs: list[RunResults]) -> dict:
    inits = sorted({r.init for r in runs})
    return {"color": f"C{inits.index(run.init) % 10}", "ls": "- -- : -.".split()[run.seed % 4]}


def _curves_plot(runs: list[RunResults], panels: list[tuple[str, str]], title: str) -> Drawn | None:
    """One panel per (log key or "heldout", y label); one line per run."""
    fig = new_figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    plotted = False
    for ax, (key, label) in zip(axes, panels, strict=True):
        for run in runs:
            pts = [(s, a) for s, a, _ in heldout_curve(run)] if key == "heldout" else _series(run.train_log, key)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="." if key == "heldout" else None, lw=1.5,
                        label=f"{run.init} {run.recipe} s{run.seed}", **_style(run, runs))  # fmt: skip
                plotted = True
        ax.set(xlabel="RL step", ylabel=label)
        ax.grid(alpha=0.3)
    if not plotted:
        return None
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return drawn(fig)


def pass_at_k_curve(run: RunResults, split: str, items: list[str] | None = None) -> list[float]:
    """Mean unbiased pass@k over the split's items for k = 1..n (n = sampled completions per item)."""
    n = stats.samples_per_item(run.samples, split)
    curve = []
    for k in range(1, n + 1):
        per_item = stats.per_item_pass(run.samples, split, k)
        keep = [per_item[i] for i in (items or per_item) if i in per_item]
        curve.append(float(np.mean(keep)) if keep else float("nan"))
    return curve


def _paired_change(study: StudyResults, start: RunResults, run: RunResults, split: str, items: list[str]) -> str:
    """After minus before in sampled pass@1, percentage points, with a bootstrap CI paired over the same items."""
    a, b = ({0: {i: scores[i] for i in items}} for scores in (stats.per_item_pass(r.samples, split, 1)
                                                               for r in (run, start)))  # fmt: skip
    est = paired_estimate(study, a, b)[0]
    return f"{100 * est[0]:+.1f} [{100 * est[1]:+.1f}, {100 * est[2]:+.1f}]"


def before_after(study: StudyResults) -> list[tuple[RunResults, RunResults]]:
    """(starting run, RL run) pairs: same init and seed (and, for sft+rl, the same `grid.posttrain_examples`)."""
    by_name = {r.name: r for r in study.runs}
    pairs = []
    for run in (r for r in study.runs if r.recipe in RL_RECIPES):
        start = RL_RECIPES[run.recipe]
        examples = run.examples if RECIPES[start].trains else None  # untrained runs have no N
        name = Run(run.init, start, run.seed, examples).name
        if name in by_name:
            pairs.append((by_name[name], run))
    return pairs


def _pass_k_blocks(study: StudyResults, pairs: list[tuple[RunResults, RunResults]]) -> list:
    splits = [s for s in study.splits if all(stats.samples_per_item(r.samples, s) for p in pairs for r in p)]
    if not splits:
        return []
    rows, fig = [], new_figure(4.2 * len(splits), 3.6)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        for start, run in pairs:
            items = sorted(stats.per_item_pass(start.samples, split, 1).keys()
                           & stats.per_item_pass(run.samples, split, 1).keys())  # fmt: skip
            before, after = pass_at_k_curve(start, split, items), pass_at_k_curve(run, split, items)
            ks = range(1, min(len(before), len(after)) + 1)
            style = _style(run, [r for p in pairs for r in p])
            ax.plot(ks, [100 * before[k - 1] for k in ks], marker="o", ms=3, alpha=0.6,
                    label=f"{run.init} s{run.seed} before ({start.recipe})", **{**style, "ls": ":"})  # fmt: skip
            ax.plot(ks, [100 * after[k - 1] for k in ks], marker="o", ms=3, label=f"{run.init} s{run.seed} after "
                    f"({run.recipe})", **{**style, "ls": "-"})  # fmt: skip
            k_max = len(ks)
            change = _paired_change(study, start, run, split, items)
            rows.append([split, run.init, str(run.seed), run.recipe, str(len(items)),
                         f"{100 * before[0]:.1f} → {100 * after[0]:.1f}", change,
                         f"{100 * before[k_max - 1]:.1f} → {100 * after[k_max - 1]:.1f} (k={k_max})"])  # fmt: skip
        ax.set(xlabel="k", ylabel="pass@k (%)", title=split, ylim=(0, 100))
        ax.set_xticks(range(1, max(stats.samples_per_item(r.samples, split) for p in pairs for r in p) + 1))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    text = ("Unbiased pass@k from the sampled completions of the model RL started from (before) and of the RL "
            "model (after), on the same items: does RL lift pass@1 only, or pass@k at large k too? The change in "
            f"pass@1 carries a {study.ci:.0%} bootstrap interval paired over the n items.")  # fmt: skip
    header = ["split", "init", "seed", "recipe", "n", "pass@1 sampled (%)", "change (pp, paired CI)", "pass@K (%)"]
    return [Heading("pass@k before and after RL", 3), Para(text), Plot("rl_pass_at_k", "pass@k before/after RL",
            drawn(fig)), Table(header, rows)]  # fmt: skip


def _summary_table(runs: list[RunResults]) -> Table:
    rows = []
    for run in runs:
        reward, lengths = _series(run.train_log, "reward"), _series(run.train_log, "completions/mean_length")
        zero = _series(run.train_log, "frac_reward_zero_std")
        held = heldout_curve(run)
        t = run.train
        rows.append([
            f"{run.init} {run.recipe} s{run.seed}", str(t.get("steps", "—")),
            f"{reward[0][1]:.3f} → {reward[-1][1]:.3f}" if reward else "—",
            f"{100 * held[0][1]:.1f} → {100 * held[-1][1]:.1f} (n={held[0][2]})" if held else "—",
            f"{lengths[0][1]:.1f} → {lengths[-1][1]:.1f}" if lengths else "—",
            f"{np.mean([v for _, v in zero]):.2f}" if zero else "—",
            *[f"{t[k]:,}" if isinstance(t.get(k), int) else (f"{t[k]:.1f}" if k in t else "—") for k in TIME_KEYS],
        ])  # fmt: skip
    header = ["run", "steps", "reward first → last log", "held-out greedy pass@1 (%) start → end",
              "completion length (tokens)", "mean frac. zero-variance groups", "generate (s)", "update (s)",
              "held-out eval (s)", "generated tokens", "generated tokens/s"]  # fmt: skip
    return Table(header, rows)


def rl_blocks(study: StudyResults) -> list:
    """The RL sections, or nothing when the study has no RL run."""
    runs = [r for r in study.runs if r.recipe in RL_RECIPES]
    if not runs:
        return []
    blocks: list = [
        Heading("What RL changed"),
        Para("GRPO through TRL; the reward is the evaluation verifier's score (`postfit.verify.score`). Training "
             "reward is on the RL prompts (the `rl` split, or the SFT items when the study has none); held-out "
             "accuracy is greedy pass@1 on the first `rl.heldout_items` id_test items, measured during RL. Values "
             "are the trainer's logged means over `rl.logging_steps` steps (from train_log.jsonl)."),
        _summary_table(runs),
    ]  # fmt: skip
    curves = _curves_plot(runs, [("reward", "training reward"), ("heldout", "held-out greedy pass@1")],
                          "Reward and held-out accuracy over RL")  # fmt: skip
    blocks += [Plot("rl_reward", "Reward and held-out accuracy over RL", curves)] if curves else []
    shape = _curves_plot(runs, [("completions/mean_length", "mean completion length (tokens)"),
                                ("frac_reward_zero_std", "groups with zero reward variance")],
                         "Completion length and groups without learning signal")  # fmt: skip
    blocks += [Plot("rl_length_signal", "Completion length and zero-variance groups", shape)] if shape else []
    pairs = before_after(study)
    blocks += _pass_k_blocks(study, pairs) if pairs else []
    return blocks
