"""Every comparison a study's stored samples support (postfit.report.headline.Comparison), in the order the
comparisons table lists them: recovery and pre-trained minus random per recipe and split, ID-to-OOD drops, the
slopes of accuracy on distance to the post-training data, pass@k crossovers, what RL changed, the learning-to-learn
probes, then forgetting (a pre-trained model's loss on its held-out pre-training corpus, after minus before)."""

from __future__ import annotations

from postfit.config.recipes import NONE
from postfit.report.distance import distance_comparisons
from postfit.report.forgetting import forgetting_comparisons
from postfit.report.headline import DROP, INIT_GAP, RECOVERY, RL, Comparison
from postfit.report.passk import crossover_comparisons
from postfit.report.probes import probe_comparisons
from postfit.report.results import StudyResults, group_drop, paired_difference, recovery
from postfit.report.rl import RL_RECIPES


def _inits(study: StudyResults, recipes: list[str]) -> list[Comparison]:
    groups, out = study.groups(), []
    for recipe in recipes:
        for split in study.splits:
            rec = recovery(study, recipe, split)
            if rec is None:
                continue
            out.append(Comparison(RECOVERY, "recovery", "random / pre-trained", recipe, split, rec["ratio"],
                                  rec["n"], rec["seeds"], unit="ratio"))  # fmt: skip
            d = paired_difference(study, groups[("pretrained", recipe)], groups[("random", recipe)], split)
            if d is not None:
                out.append(Comparison(INIT_GAP, "difference", "pre-trained − random", recipe, split, d["diff"],
                                      d["n"], d["seeds"], better="pre-trained", worse="random init"))  # fmt: skip
    return out


def _drops(study: StudyResults) -> list[Comparison]:
    out = []
    for (init, recipe), runs in study.groups().items():
        drop = group_drop(study, runs) if recipe != NONE else None
        if drop is not None:
            out.append(Comparison(DROP, "ID→OOD drop", init, recipe, "id_test − OOD mean", drop, None,
                                  max(len(runs), 1), better="id_test", worse="OOD mean"))  # fmt: skip
    return out


def _rl(study: StudyResults) -> list[Comparison]:
    groups, out = study.groups(), []
    for (init, recipe), runs in groups.items():
        start = RL_RECIPES.get(recipe)
        if (init, start) not in groups:
            continue
        for split in study.splits:
            d = paired_difference(study, runs, groups[(init, start)], split)
            if d is not None:
                out.append(Comparison(RL, f"{recipe} − {start}", init, recipe, split, d["diff"], d["n"], d["seeds"],
                                      better=recipe, worse=start))  # fmt: skip
    return out


def comparisons(study: StudyResults) -> list[Comparison]:
    """The study's comparisons, its runs' probe rows included."""
    recipes = [r for r in dict.fromkeys(recipe for _, recipe in study.groups()) if r != NONE]
    return [*_inits(study, recipes), *_drops(study), *distance_comparisons(study), *crossover_comparisons(study),
            *_rl(study), *probe_comparisons(study, study.runs), *forgetting_comparisons(study)]  # fmt: skip
