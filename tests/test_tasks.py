"""Splits are reproducible and disjoint; traces and reference answers verify; the answer extractor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from postfit.config import TasksConfig, load_study
from postfit.errors import UserError
from postfit.item import TASKS, Item
from postfit.tasks import RULE_SHIFTS, TRACERS, left_to_right_trace, make_splits
from postfit.verify import extract_answer, is_correct, score


def _tasks() -> TasksConfig:
    """The default study's tasks, with the rule-shift split on."""
    tasks = load_study("default")[0].tasks
    return tasks.model_copy(update={"train": [tasks.train[0].model_copy(update={"rule_shift": "swap"})]})


@pytest.fixture(scope="module")
def splits():
    return make_splits(_tasks())


def test_splits_are_disjoint(splits):
    norm = {name: {" ".join(it.question.split()).lower() for it in items} for name, items in splits.items()}
    # No question of train/rl/id_test/ood_harder/ood_family/ood_rule appears in another of them.
    names = ["train", "rl", "id_test", "ood_harder", "ood_family", "ood_rule"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not norm[a] & norm[b], f"{a} and {b} share questions"
    # ood_format is id_test under another wording: same questions, different prompts, none seen in training.
    assert norm["ood_format"] == norm["id_test"]
    train_prompts = {it.prompt for it in splits["train"]}
    for name in ["id_test", "ood_harder", "ood_family", "ood_format", "ood_rule"]:
        assert not train_prompts & {it.prompt for it in splits[name]}
    ids = [it.id for items in splits.values() for it in items]
    assert len(ids) == len(set(ids))


def test_split_sizes_and_reproducibility(splits):
    tasks = _tasks()
    assert len(splits["train"]) == tasks.train_size
    assert all(len(splits[s]) == tasks.test_size for s in ["id_test", "ood_harder", "ood_family", "ood_format",
                                                           "ood_rule"])  # fmt: skip
    assert make_splits(tasks) == splits


def test_harder_split_is_harder(splits):
    assert {it.meta["metadata"]["num_terms"] for it in splits["id_test"]} <= {2, 3}
    assert {it.meta["metadata"]["num_terms"] for it in splits["ood_harder"]} == {4}
    assert {it.meta["task"] for it in splits["ood_family"]} == {"basic_arithmetic"}


def test_every_reference_answer_and_trace_verifies(splits):
    for name, items in splits.items():
        for it in items:
            assert is_correct(score(it, f"Answer: {it.answer}")[1]), (name, it)
            assert not is_correct(score(it, f"Answer: {int(it.answer) + 1}")[1])
            if name not in ("train", "ood_rule") and it.meta["task"] in TRACERS:  # a trace ends in the answer
                trace = TRACERS[it.meta["task"]](it)
                assert trace is not None and is_correct(score(it, trace)[1])
    for it in splits["train"]:
        assert is_correct(score(it, it.target)[1])


def test_rule_shift_split_is_scored_under_the_stated_rule_only(splits):
    """ood_rule: the train task's surface (its question text), the changed rule stated in the prompt, and a
    verifier that takes the answer under that rule and refuses the one computed with the original rule."""
    rule = RULE_SHIFTS["swap"][0]
    items = splits["ood_rule"]
    assert {it.meta["task"] for it in items} == {it.meta["task"] for it in splits["train"]}
    for it in items:
        original = it.meta["original_answer"]
        assert it.prompt.startswith(rule) and it.question in it.prompt
        assert it.answer != original
        assert is_correct(score(it, f"Answer: {it.answer}")[1])
        assert not is_correct(score(it, f"Answer: {original}")[1])
        assert not is_correct(score(it, TRACERS[it.meta["task"]](replace(it, answer=original)))[1])


def _chain(expression: str, answer: str) -> Item:
    """A procedural item of a `+`/`-` chain, with just what the rule shifts and tracers read."""
    return Item(
        id="t",
        source=TASKS,
        domain="procedural",
        prompt=f"{expression} =",
        split="test",
        answer=answer,
        meta={"metadata": {"expression": expression}},
        question=f"{expression} =",
    )


@pytest.mark.parametrize(("shift", "expression", "original", "shifted"),
                         [("swap", "12 + 7 - 4", "15", "9"), ("swap", "3 - 8", "-5", "11"),
                          ("octal", "12 + 7 - 4", "15", "17"), ("octal", "3 - 13", "-10", "-12")])  # fmt: skip
def test_rule_shift_literals(shift, expression, original, shifted):
    assert RULE_SHIFTS[shift][1](_chain(expression, original)) == shifted
    assert RULE_SHIFTS[shift][1](_chain("2 * 7", original)) is None


def test_rule_shift_needs_a_chain_task():
    with pytest.raises(ValueError, match="rule_shift: needs"):
        TasksConfig.model_validate({"train": [{"name": "leg_counting", "rule_shift": "swap"}]})


def test_trace_literal():
    assert left_to_right_trace(_chain("12 + 7 - 4", "15")) == "12 + 7 = 19; 19 - 4 = 15. Answer: 15"
    assert left_to_right_trace(_chain("2 * 7", "14")) is None
    assert left_to_right_trace(_chain("( 1 + 2 )", "3")) is None


def test_too_few_distinct_items_is_a_user_error():
    one_digit_sums = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    tasks = TasksConfig.model_validate(
        {"train": [{"name": "chain_sum", "config": one_digit_sums}], "train_size": 500, "test_size": 10}
    )
    with pytest.raises(UserError, match=r"tasks.train\[0\]: task 'chain_sum' .* yields only"):
        make_splits(tasks)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("12 + 7 = 19. Answer: 19", "19"),
        ("Answer: 19.", "19"),
        ("Answer:   -3  ", "-3"),
        ("Answer: 1\nwait\nAnswer: 2", "2"),
        ("the answer is 19", None),
        ("Answer:", None),
        ("Answer: \n", None),
        ("", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected
