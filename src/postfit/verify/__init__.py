"""The one verifier that evaluation and the GRPO reward call: `score(item, completion)`, dispatched on the
item's domain (postfit.item): procedural -> reasoning-gym's own scorer, math -> math-verify
(verify/math.py; items of the lighteval protocol: verify/lighteval.py, math-verify as lighteval configures it), code
-> the sandbox (verify/code.py). What each scores is extracted in postfit.verify.extract.
"""

from __future__ import annotations

from postfit.item import Item
from postfit.tasks import scorer
from postfit.verify.extract import extract_answer

__all__ = ["extract_answer", "is_correct", "score", "score_batch"]


def _reasoning_gym(item: Item, completion: str) -> tuple[str | None, float]:
    """reasoning-gym's score of the 'Answer:' line, by the task, config and metadata in the item's `meta`."""
    answer = extract_answer(completion)
    if answer is None:
        return None, 0.0
    question = item.question or item.meta.get("question") or item.prompt
    entry = {"question": question, "answer": item.answer, "metadata": item.meta["metadata"]}
    return answer, float(scorer(item.meta["task"], item.meta["config"])(answer, entry))


def _math(item: Item, completion: str) -> tuple[str | None, float]:
    if item.meta.get("protocol") == "lighteval":  # a benchmark item prompted and scored as lighteval does
        from postfit.verify.lighteval import score as lighteval_score

        return lighteval_score(item, completion)
    from postfit.verify.math import score as math_score

    return math_score(item, completion)


def _code(item: Item, completion: str) -> tuple[str | None, float]:
    from postfit.verify.code import score as code_score

    return code_score(item, completion)


VERIFIERS = {"procedural": _reasoning_gym, "math": _math, "code": _code}


def score(item: Item, completion: str) -> tuple[str | None, float]:
    """(extracted answer, score in [0, 1]) for one completion of one item; the answer of a code item is the
    program that was run."""
    if item.domain not in VERIFIERS:
        raise ValueError(f"item {item.id!r}: unknown domain {item.domain!r}; expected one of {sorted(VERIFIERS)}")
    return VERIFIERS[item.domain](item, completion)


def score_batch(items: list[Item], completions: list[str], workers: int | None = None) -> list[tuple]:
    """`score` for many (item, completion) pairs, in order; code items run in the sandbox in parallel."""
    out: list[tuple | None] = [None] * len(items)
    code = [i for i, it in enumerate(items) if it.domain == "code"]
    if code:
        from postfit.verify.code import score_batch as code_batch

        for i, result in zip(code, code_batch([items[i] for i in code], [completions[i] for i in code],
                                              workers=workers), strict=True):  # fmt: skip
            out[i] = result
    for i, (item, completion) in enumerate(zip(items, completions, strict=True)):
        if out[i] is None:
            out[i] = score(item, completion)
    return out


def is_correct(value: float) -> bool:
    """Partial credit (some reasoning-gym tasks give it) does not count as solved."""
    return value >= 1.0
