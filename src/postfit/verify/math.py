"""Math answers: equivalence by Hugging Face's math-verify (sympy), after extraction in postfit.verify.extract.

The completion's final answer (last \\boxed{} or final-answer line, see `extract.math_answer`) and the reference
are both parsed with `math_verify.parse` as LaTeX, then compared with `math_verify.verify` (numeric, symbolic,
set, interval and equation equality). Before parsing, a few plain-text notations that LaTeX would misread are
rewritten (`1.5e3`, `pi`, `oo` / `inf`, a trailing unit word), so "Answer: 1.5e3" equals "1.5 \\times 10^{3}".
"""

from __future__ import annotations

import re
import threading

from postfit.item import Item
from postfit.verify.extract import math_answer

# math-verify bounds parsing and comparison with signal.alarm, which only works in the main thread;
# elsewhere (reward functions in a thread pool) it runs without a time bound.
TIMEOUT_S = 5

_SCI = re.compile(r"(?<![\w\\.])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_PI = re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])")
_INF = re.compile(r"(?<![\\A-Za-z])(?:infinity|inf|oo)(?![A-Za-z])")
_MATH_WORDS = {"pi", "sqrt", "inf", "infinity", "oo", "and", "or", "i", "e"}
_TRAILING_WORDS = re.compile(r"^(.*\d)\s+((?:[A-Za-z]{2,}\.?\s*)+)$")
_DELIMITED = re.compile(r"\$|\\\(|\\\[|\\boxed")


def timeout_s() -> int | None:
    """math-verify's time bound here: TIMEOUT_S in the main thread, none elsewhere (see TIMEOUT_S)."""
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def normalise(text: str) -> str:
    """Plain-text notations rewritten as LaTeX, so one parser reads both."""
    text = text.strip()
    if "\\" not in text and "$" not in text:
        m = _TRAILING_WORDS.match(text)
        if m and not set(m.group(2).lower().replace(".", " ").split()) & _MATH_WORDS:
            text = m.group(1)  # "12 dollars" -> "12" (math-verify drops \text{} units and common unit words itself)
        text = _SCI.sub(r"\1\\times 10^{\2}", text)
    text = _PI.sub(r"\\pi", text)
    return _INF.sub(r"\\infty", text)


def parse_answer(text: str) -> list:
    """math-verify's parse of one answer: LaTeX in math delimiters as is, anything else read as boxed LaTeX."""
    from math_verify import parse

    text = normalise(text)
    if not _DELIMITED.search(text):
        text = "\\boxed{" + text + "}"
    return parse(text, parsing_timeout=timeout_s())


def equivalent(reference: str, answer: str) -> bool:
    """math-verify's verdict on an extracted answer against the reference (order matters: gold first)."""
    from math_verify import verify

    gold, pred = parse_answer(reference), parse_answer(answer)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=timeout_s()))


def score(item: Item, completion: str) -> tuple[str | None, float]:
    """(extracted final answer, 1.0 if it equals the reference else 0.0)."""
    if item.answer is None:
        raise ValueError(f"{item.id}: a math item without a reference answer cannot be verified")
    answer = math_answer(completion)
    if answer is None:
        return None, 0.0
    return answer, 1.0 if equivalent(item.answer, answer) else 0.0
