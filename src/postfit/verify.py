"""Answer extraction and scoring: the one verifier that evaluation (and later RL rewards) call."""

from __future__ import annotations

import re

from postfit.tasks import ANSWER_PREFIX, scorer

_ANSWER = re.compile(rf"{re.escape(ANSWER_PREFIX)}[ \t]*([^\n]*)")


def extract_answer(completion: str) -> str | None:
    """The text after the last 'Answer:' in the completion, without a trailing period; None if absent or empty."""
    matches = _ANSWER.findall(completion)
    if not matches:
        return None
    answer = matches[-1].strip().removesuffix(".").strip()
    return answer or None


def score(item: dict, completion: str) -> tuple[str | None, float]:
    """(extracted answer, reasoning-gym's score in [0, 1]) for one completion of one item."""
    answer = extract_answer(completion)
    if answer is None:
        return None, 0.0
    entry = {"question": item["question"], "answer": item["answer"], "metadata": item["metadata"]}
    return answer, float(scorer(item["task"], item["config"])(answer, entry))


def is_correct(value: float) -> bool:
    """Partial credit (some reasoning-gym tasks give it) does not count as solved."""
    return value >= 1.0
