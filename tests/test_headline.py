"""The headline's rules on synthetic comparisons: each sentence is worded as its intervals allow, at most three
sentences, and every number it states is a number of the comparisons table."""

from __future__ import annotations

import re
from dataclasses import replace

from postfit.report.headline import (
    ADAPT,
    DROP,
    ICL,
    INIT_GAP,
    INITS,
    RECOVERY,
    RL,
    SLOPE,
    STRUCTURE,
    TEXT_DISTANCE,
    Comparison,
    comparisons_table,
    headline,
)


def gap(recipe: str, split: str, est: tuple[float, float, float]) -> Comparison:
    return Comparison(INIT_GAP, "difference", "pre-trained − random", recipe, split, est, 200, 2,
                      better="pre-trained", worse="random init")  # fmt: skip


def ratio(recipe: str, split: str, est: tuple[float, float, float]) -> Comparison:
    return Comparison(RECOVERY, "recovery", "random / pre-trained", recipe, split, est, 200, 2, unit="ratio")


def drop(init: str, est: tuple[float, float, float]) -> Comparison:
    return Comparison(DROP, "ID→OOD drop", init, "sft", "id_test − OOD mean", est, None, 2)


def icl(model: str, est: tuple[float, float, float]) -> Comparison:
    return Comparison(ICL, "in-context gain, k=4 − k=0 shots", model, "sft", "icl: gcd", est, 32, 2, better="k=4",
                      worse="k=0")  # fmt: skip


def numbers(text: str) -> set[str]:
    return set(re.findall(r"[-+]?\d+\.\d+", text))


def table_numbers(comps: list[Comparison]) -> set[str]:
    return {n for row in comparisons_table(comps).rows for cell in row[3:5] for n in numbers(cell)}


def sentences(lines: list[str]) -> int:
    return sum(len(re.findall(r"[.!?](?:\s|$)", line)) for line in lines)


def test_clear_effect_names_the_better_init_and_contrasts_id_with_ood():
    comps = [
        ratio("sft", "id_test", (0.85, 0.79, 0.91)), gap("sft", "id_test", (0.06, 0.03, 0.09)),
        ratio("sft", "ood_family", (0.12, 0.0, 0.30)), gap("sft", "ood_family", (0.20, 0.12, 0.28)),
        drop("pretrained", (0.30, 0.22, 0.38)), drop("random", (0.10, 0.02, 0.18)),
        Comparison(RL, "sft+rl − sft", "random", "sft+rl", "id_test", (0.08, 0.02, 0.14), 200, 2, better="sft+rl",
                   worse="sft"),
    ]  # fmt: skip
    lines = headline(comps)
    assert lines == [
        "After sft, random init recovers 0.85 [0.79, 0.91] of the pre-trained score on id_test but 0.12 [0.00, 0.30] "
        "on ood_family; pre-trained minus random is +20.0 [+12.0, +28.0] pp on ood_family (pre-trained higher).",
        "Out of distribution: id_test minus the mean of the OOD splits is +30.0 [+22.0, +38.0] pp for pretrained + "
        "sft (a drop) and +10.0 [+2.0, +18.0] pp for random + sft (a drop).",
        "sft+rl − sft changes random's id_test score by +8.0 [+2.0, +14.0] pp.",
    ]
    assert sentences(lines) <= 3 and numbers(" ".join(lines)) <= table_numbers(comps)


def test_null_says_no_detectable_difference_and_names_no_winner():
    comps = [
        ratio("sft", "id_test", (0.95, 0.80, 1.10)), gap("sft", "id_test", (0.02, -0.03, 0.07)),
        gap("sft", "ood_harder", (-0.04, -0.10, 0.01)), drop("pretrained", (0.05, -0.02, 0.12)),
        icl("pretrained sft (after)", (0.03, -0.02, 0.08)),
    ]  # fmt: skip
    lines = headline(comps)
    assert lines == [
        "After post-training (sft), pre-trained and random init show no detectable difference on any split (the "
        "largest estimate, -4.0 [-10.0, +1.0] pp on ood_harder after sft, has an interval that reaches zero).",
        "No model shows a detectable drop from id_test to the mean of the OOD splits.",
        "No detectable effect of in-context examples.",
    ]
    assert "higher" not in " ".join(lines) and "recovers" not in " ".join(lines)
    assert numbers(" ".join(lines)) <= table_numbers(comps)


def test_mixed_states_only_the_supported_effect_and_that_a_frozen_probe_cannot_measure():
    """Random init ahead on one OOD split (supported), a gap elsewhere that spans zero, a drop that spans zero, and
    an in-context probe whose every estimate is exactly zero: unable to measure, never 'no difference found'."""
    comps = [
        ratio("sft", "id_test", (1.0, 0.9, 1.1)), gap("sft", "id_test", (0.0, -0.05, 0.05)),
        ratio("sft", "ood_rule", (1.6, 1.2, 2.2)), gap("sft", "ood_rule", (-0.09, -0.15, -0.03)),
        drop("random", (0.04, -0.01, 0.09)),
        icl("pretrained sft (after)", (0.0, 0.0, 0.0)), icl("random sft (after)", (0.0, 0.0, 0.0)),
        Comparison(ADAPT, "adaptation speed", "pre-trained − random", "sft", "adapt: lc", (0.01, -0.05, 0.07), 32, 2,
                   better="pre-trained", worse="random init"),
    ]  # fmt: skip
    lines = headline(comps)
    assert lines[0] == (
        "After sft, random init recovers 1.00 [0.90, 1.10] of the pre-trained score on id_test and 1.60 [1.20, 2.20] "
        "on ood_rule; pre-trained minus random is -9.0 [-15.0, -3.0] pp on ood_rule (random init higher)."
    )
    assert lines[1] == "No model shows a detectable drop from id_test to the mean of the OOD splits."
    assert lines[2] == ("No detectable effect of adaptation; the in-context probe cannot measure at this scale (every "
                        "estimate +0.0 [+0.0, +0.0] pp).")  # fmt: skip
    assert sentences(lines) <= 3 and numbers(" ".join(lines)) <= table_numbers(comps) | {"+0.0"}
    rows = comparisons_table(comps).rows
    frozen = [r for r in rows if r[0].startswith("in-context")]
    assert len(frozen) == 1 and frozen[0][1] == "every model" and "unable to measure" in frozen[0][-1]


def test_verdicts_follow_the_interval():
    assert gap("sft", "id_test", (0.1, 0.01, 0.2)).verdict() == "pre-trained higher"
    assert gap("sft", "id_test", (-0.1, -0.2, -0.01)).verdict() == "random init higher"
    assert gap("sft", "id_test", (0.1, 0.0, 0.2)).verdict() == "no detectable difference"  # reaching zero
    assert ratio("sft", "id_test", (0.8, 0.6, 1.0)).verdict() == "full recovery not excluded"
    assert ratio("sft", "id_test", (0.8, 0.6, 0.95)).verdict() == "random init below pre-trained"
    assert ratio("sft", "id_test", (float("nan"),) * 3).verdict() == "undefined"
    assert drop("random", (-0.1, -0.2, -0.05)).verdict() == "a gain"


def slope(subject: str, est: tuple[float, float, float], split: str = TEXT_DISTANCE) -> Comparison:
    names = {"better": "pre-trained", "worse": "random init"} if subject == INITS else {}
    quantity = "slope difference" if names else "distance slope"
    return Comparison(SLOPE, quantity, subject, "sft", split, est, 600, 2, unit="log-odds", **names)


def test_a_supported_slope_difference_is_the_third_sentence():
    """Before RL and the probes: the text distance's difference, not the larger structural one (other units), and
    never an arm's own slope however steep."""
    comps = [
        ratio("sft", "id_test", (0.9, 0.8, 1.0)), gap("sft", "id_test", (0.05, 0.01, 0.09)),
        drop("random", (0.30, 0.2, 0.4)),
        slope("pretrained", (-1.0, -1.4, -0.6)), slope("random", (-9.0, -9.9, -8.1)),
        slope(INITS, (3.0, 2.2, 3.8)), slope(INITS, (5.0, 4.0, 6.0), STRUCTURE),
        Comparison(RL, "sft+rl − sft", "random", "sft+rl", "id_test", (0.08, 0.02, 0.14), 200, 2, better="sft+rl",
                   worse="sft"),
    ]  # fmt: skip
    lines = headline(comps)
    assert lines[2] == (
        "Against text distance to the post-training data, the pre-trained minus random slope of accuracy after sft is "
        "+3.00 [+2.20, +3.80] log-odds (pre-trained declines less with distance)."
    )
    assert sentences(lines) <= 3 and numbers(" ".join(lines)) <= table_numbers(comps)
    rows = {(r[0], r[2]): r for r in comparisons_table(comps).rows}
    assert rows[("distance slope, random", TEXT_DISTANCE)][3:] == [
        "-9.00 log-odds", "[-9.90, -8.10]", "600", "2", "falls with distance"]  # fmt: skip
    assert rows[("slope difference, pre-trained − random", STRUCTURE)][-1] == "pre-trained declines less with distance"
    # Without a supported text-distance difference the structural one is stated; without either, RL is.
    text_null = [c for c in comps if c.split != TEXT_DISTANCE or c.subject != INITS] + [slope(INITS, (0.5, -0.3, 1.3))]
    assert headline(text_null)[2].startswith("Against structural distance to the post-training data")
    no_diff = [c for c in comps if c.kind != SLOPE or c.subject != INITS]
    assert headline(no_diff)[2] == "sft+rl − sft changes random's id_test score by +8.0 [+2.0, +14.0] pp."


def test_slope_differences_that_reach_zero_say_so_and_name_no_init():
    comps = [gap("sft", "id_test", (0.02, -0.03, 0.07)), slope("pretrained", (-1.0, -1.5, -0.5)),
             slope("random", (0.2, -0.4, 0.8)), slope(INITS, (-1.2, -2.0, 0.1))]  # fmt: skip
    assert headline(comps)[-1] == "No detectable difference between the inits' slopes of accuracy on distance."
    verdicts = ["falls with distance", "no detectable trend", "no detectable difference"]
    assert [c.verdict() for c in comps[1:]] == verdicts
    assert slope(INITS, (-1.2, -2.0, -0.4)).verdict() == "random init declines less with distance"


def test_after_a_slope_the_fourth_sentence_is_the_learning_to_learn_difference():
    """A supported slope difference takes rule 3, so the inits' question-gain difference in adaptation (nats) is a
    fourth sentence, chosen before a larger accuracy AUC (other units); with no supported probe difference it says
    so, and without a slope rule 3 states the probe and no fourth sentence repeats it."""
    slope_diff = slope(INITS, (3.0, 2.2, 3.8))
    gain = Comparison(ADAPT, "adaptation: question gain (AUC, m=0-160 steps)", INITS, "sft", "adapt: spell_backward",
                      (0.6, 0.2, 1.0), 48, 2, unit="nats", better="pre-trained", worse="random init")  # fmt: skip
    auc = Comparison(ADAPT, "adaptation speed (AUC, m=0-160 steps)", INITS, "sft", "adapt: spell_backward",
                     (0.09, 0.02, 0.16), 48, 2, better="pre-trained", worse="random init")  # fmt: skip
    lines = headline([gap("sft", "id_test", (0.05, 0.01, 0.09)), slope_diff, gain, auc])
    assert len(lines) == 3 and lines[1].startswith("Against text distance")
    assert lines[2] == ("After sft, pre-trained adapts faster to a new task (adapt: spell_backward) in question gain "
                        "(AUC, m=0-160 steps): pre-trained minus random +0.600 [+0.200, +1.000] nats.")  # fmt: skip
    null = replace(gain, est=(0.1, -0.2, 0.4))
    assert headline([slope_diff, null])[-1] == (
        "No learning-to-learn probe that can measure here shows a detectable difference between the inits."
    )
    (only,) = headline([gain])
    assert only.startswith("After sft, pre-trained adapts faster") and numbers(only) <= table_numbers([gain])
