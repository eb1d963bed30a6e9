"""Procedural reasoning tasks from reasoning-gym, cut into disjoint ID and OOD splits.

Splits: `train` and `id_test` (the training families and settings), `rl` (optional RL prompts of the
training families, never seen in SFT), `ood_harder` (same family, harder settings), `ood_family`
(related families never trained on), `ood_format` (the id_test items under another prompt wording),
`ood_rule` (new items of a training family, same surface, under a changed rule the prompt states: see
`RULE_SHIFTS`). No question appears in two of train/rl/id_test/ood_harder/ood_family/ood_rule; every item is
generated from a fixed seed, so every run sees the same data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from functools import cache, lru_cache

from postfit.errors import UserError
from postfit.item import TASKS, Item

# The one answer convention: the last "Answer: ..." line of a completion (see verify/__init__.py).
ANSWER_PREFIX = "Answer:"
PROMPT_TEMPLATES = {
    "id": "{question}\nGive the final answer as 'Answer: <answer>'.",
    "ood_format": "Solve the problem below and end your reply with 'Answer: <answer>'.\nProblem: {question}",
    "ood_rule": "{rule}\n{question}\nGive the final answer as 'Answer: <answer>'.",
}

_TERM = re.compile(r"^-?\d+$")


def _terms(item: Item) -> tuple[list[int], list[str]] | None:
    """(numbers, operators) of a `+`/`-` chain without parentheses ('12 + 7 - 4'), else None."""
    tokens = item.meta["metadata"].get("expression", "").split()
    if len(tokens) < 3 or len(tokens) % 2 == 0 or not all(_TERM.match(t) for t in tokens[::2]):
        return None
    if not all(op in "+-" for op in tokens[1::2]):
        return None
    return [int(t) for t in tokens[::2]], tokens[1::2]


def _chain(numbers: list[int], ops: list[str]) -> int:
    acc = numbers[0]
    for op, n in zip(ops, numbers[1:], strict=True):
        acc = acc + n if op == "+" else acc - n
    return acc


def _swapped(item: Item) -> str | None:
    parsed = _terms(item)
    return None if parsed is None else str(_chain(parsed[0], ["-" if op == "+" else "+" for op in parsed[1]]))


def _octal(item: Item) -> str | None:
    parsed = _terms(item)
    if parsed is None:
        return None
    value = _chain(*parsed)
    return f"{'-' if value < 0 else ''}{abs(value):o}"


def left_to_right_trace(item: Item) -> str | None:
    """'12 + 7 - 4' -> '12 + 7 = 19; 19 - 4 = 15. Answer: 15' (only + and -, no parentheses)."""
    parsed = _terms(item)
    if parsed is None:
        return None
    acc, steps = parsed[0][0], []
    for op, term in zip(parsed[1], parsed[0][1:], strict=True):
        new = acc + term if op == "+" else acc - term
        steps.append(f"{acc} {op} {term} = {new}")
        acc = new
    if str(acc) != str(item.answer).strip():
        return None  # the trace must end in the reference answer, or it teaches a wrong one
    return f"{'; '.join(steps)}. {ANSWER_PREFIX} {item.answer}"


# Rule shifts for the `ood_rule` split: (the rule as the prompt states it, the answer under it). The question's
# text is unchanged; items whose answer is the same under both rules are left out, so the split separates them.
RULE_SHIFTS: dict[str, tuple[str, Callable[[Item], str | None]]] = {
    "swap": ("In this problem '+' means subtraction and '-' means addition.", _swapped),
    "octal": ("In this problem the answer is written in base 8 (for example, ten is written 12).", _octal),
}


# Task families whose items a solver can write out step by step (SFT target `trace`).
TRACERS: dict[str, Callable[[Item], str | None]] = {
    "chain_sum": left_to_right_trace,
    "basic_arithmetic": left_to_right_trace,
}


def chain_terms(item: Item) -> tuple[str, ...] | None:
    """'12 + 7 - 4' -> ('12', '+7', '-4'): the terms of a `+`/`-` chain, each operand with the operator before it,
    so one changed operand (or operator) changes one term (postfit.analysis.distance's structural distance)."""
    parsed = _terms(item)
    if parsed is None:
        return None
    numbers, ops = parsed
    return (str(numbers[0]), *(f"{op}{n}" for op, n in zip(ops, numbers[1:], strict=True)))


# Task families with a structure: the terms the structural distance compares. Others have none (None).
STRUCTURES: dict[str, Callable[[Item], tuple | None]] = {
    "chain_sum": chain_terms,
}


def structure_terms(item: Item) -> tuple | None:
    """The item's terms (`STRUCTURES`), or None for items without a structure (other tasks, real data)."""
    terms = STRUCTURES.get(item.meta.get("task")) if item.domain == "procedural" else None
    return None if terms is None else terms(item)


@cache
def dataset_names() -> frozenset[str]:
    from reasoning_gym.factory import DATASETS

    return frozenset(DATASETS)


def _create(name: str, config: dict, size: int, seed: int):
    import reasoning_gym

    return reasoning_gym.create_dataset(name, size=size, seed=seed, **config)


def check_task(name: str, config: dict) -> None:
    """Raise ValueError (shown with the key's path) if reasoning-gym cannot build this task."""
    if name not in dataset_names():
        raise ValueError(f"unknown reasoning-gym task {name!r}")
    try:
        _create(name, config, size=1, seed=0)
    except (TypeError, ValueError, AssertionError) as e:
        raise ValueError(f"reasoning-gym rejects config {config} for {name!r}: {e}") from None


@lru_cache(maxsize=64)
def scorer(name: str, config_json: str):
    """reasoning-gym's own `score_answer` for a task built with this config."""
    import json

    return _create(name, json.loads(config_json), size=1, seed=0).score_answer


def normalise_question(question: str) -> str:
    return " ".join(question.split()).lower()


def _item_id(split: str, name: str, question: str) -> str:
    return f"{split}/{name}/{hashlib.sha1(question.encode()).hexdigest()[:10]}"


def generate_items(name: str, config: dict, n: int, seed: int, seen: set[str], split: str, key: str) -> list[Item]:
    """n items of one task whose questions are not in `seen` (which is updated), in the `id` prompt wording."""
    import json

    out: list[Item] = []
    for attempt in range(5):  # duplicates are common in small settings: draw more until n are distinct
        ds = _create(name, config, size=max(2 * n, 50), seed=seed + 7919 * attempt)
        for entry in ds:
            q = normalise_question(entry["question"])
            if q in seen:
                continue
            seen.add(q)
            meta = {
                "task": name,
                "config": json.dumps(config, sort_keys=True),
                "metadata": json.loads(json.dumps(entry["metadata"], default=str)),
            }
            prompt = PROMPT_TEMPLATES["id"].format(question=entry["question"])
            out.append(
                Item(
                    id=_item_id(split, name, entry["question"]),
                    source=TASKS,
                    domain="procedural",
                    prompt=prompt,
                    split=split,
                    answer=str(entry["answer"]),
                    meta=meta,
                    question=entry["question"],
                )
            )
            if len(out) == n:
                return out
    raise UserError(
        f"{key}: task {name!r} with config {config} yields only {len(out)} new distinct items for split {split!r} "
        f"(asked {n}); widen its settings or lower tasks.train_size / tasks.test_size"
    )


def split_seed(base: int, *parts: str) -> int:
    return base + int(hashlib.sha1("/".join(parts).encode()).hexdigest()[:6], 16)


def _share(total: int, k: int, i: int) -> int:
    return total // k + (1 if i < total % k else 0)


def make_splits(tasks) -> dict[str, list[Item]]:
    """All splits of a `TasksConfig`, each item with its prompt and (for train) its SFT target."""
    train = [(f"tasks.train[{i}]", t.name, t.config) for i, t in enumerate(tasks.train)]
    harder = [(f"tasks.train[{i}].harder", t.name, {**t.config, **t.harder})
              for i, t in enumerate(tasks.train) if t.harder is not None]  # fmt: skip
    near = [(f"tasks.train[{i}].near[{j}]", t.name, {**t.config, **o})
            for i, t in enumerate(tasks.train) for j, o in enumerate(t.near or [])]  # fmt: skip
    family = [(f"tasks.ood_family[{i}]", t.name, t.config) for i, t in enumerate(tasks.ood_family)]
    rules = [(f"tasks.train[{i}].rule_shift", t.name, t.config)
             for i, t in enumerate(tasks.train) if t.rule_shift is not None]  # fmt: skip
    shifts = {t.name: t.rule_shift for t in tasks.train}
    # Test splits are drawn first, so growing train_size never changes the evaluation items.
    plan = [("id_test", train, tasks.test_size), ("ood_harder", harder, tasks.test_size),
            ("ood_family", family, tasks.test_size), ("ood_rule", rules, tasks.test_size),
            ("ood_near", near, tasks.test_size), ("train", train, tasks.train_size),
            ("rl", train, tasks.rl_size)]  # fmt: skip
    seen: set[str] = set()
    splits: dict[str, list[Item]] = {}
    for split, specs, total in plan:
        items: list[Item] = []
        for j, (key, name, config) in enumerate(specs):
            n = _share(total, len(specs), j)
            seed = split_seed(tasks.seed, split, name)
            if split == "ood_rule":
                items += _rule_items(generate_items(name, config, 3 * n, seed, seen, split, key), shifts[name], n, key)
            elif n:
                items += generate_items(name, config, n, seed, seen, split, key)
        if items:
            splits[split] = items
    splits["ood_format"] = [
        replace(item, id=item.id.replace("id_test/", "ood_format/", 1), split="ood_format",
                prompt=PROMPT_TEMPLATES["ood_format"].format(question=item.question))
        for item in splits["id_test"]
    ]  # fmt: skip
    splits["train"] = [replace(item, target=sft_target(item, tasks.target)) for item in splits["train"]]
    return splits


def _rule_items(drawn: list[Item], shift: str, n: int, key: str) -> list[Item]:
    """The first `n` of `drawn` whose answer under the rule `shift` differs from the original's, re-labelled."""
    rule, answer = RULE_SHIFTS[shift]
    out = []
    for item in drawn:
        shifted = answer(item)
        if shifted is not None and shifted != item.answer:
            prompt = PROMPT_TEMPLATES["ood_rule"].format(rule=rule, question=item.question)
            meta = {**item.meta, "original_answer": item.answer, "rule_shift": shift}
            out.append(replace(item, answer=shifted, prompt=prompt, meta=meta))
    if len(out) < n:
        raise UserError(f"{key}: only {len(out)} of {len(drawn)} items of this task have a + / - chain whose answer "
                        f"changes under rule {shift!r} (asked {n}); widen the task's settings")  # fmt: skip
    return out[:n]


def sft_target(item: Item, kind: str) -> str:
    if kind == "answer":
        return f"{ANSWER_PREFIX} {item.answer}"
    trace = TRACERS[item.meta["task"]](item)
    if trace is None:
        raise UserError(
            f"tasks.target: no step-by-step trace for {item.meta['task']} item {item.question!r} "
            "(traces cover + and - without parentheses); use target: answer or restrict the task's operators"
        )
    return trace
