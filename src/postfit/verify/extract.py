"""Answer extraction, in one place: what part of a completion each verifier scores.

- procedural: the text after the last `Answer:` (the prompts of postfit's own tasks ask for that line).
- math: the final answer a completion commits to: the content of the last `\\boxed{...}`, or of the last
  final-answer line ("Answer: ...", "The final answer is ...", GSM8K's "#### ..."), whichever comes last.
- code: the program to run: the last fenced Python block, or the raw completion when it continues a code
  prefix given in the prompt (HumanEval), cut at the stop sequences HumanEval's authors used.
"""

from __future__ import annotations

import re

from postfit.tasks import ANSWER_PREFIX

_ANSWER = re.compile(rf"{re.escape(ANSWER_PREFIX)}[ \t]*([^\n]*)")


def extract_answer(completion: str) -> str | None:
    """The text after the last 'Answer:' in the completion, without a trailing period; None if absent or empty."""
    matches = _ANSWER.findall(completion)
    if not matches:
        return None
    answer = matches[-1].strip().removesuffix(".").strip()
    return answer or None


# ---------------------------------------------------------------- math
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Final-answer lines, case-insensitive. "The final answer is $x$. I hope it is correct." is the Minerva format
# that many math models were trained on; "####" is GSM8K's.
_FINAL_LINE = re.compile(r"(?i:final\s+answer\s*(?:is|:)|answer\s*(?:is|:)|^####)[ \t]*([^\n]*)", re.MULTILINE)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_LEAD = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)  # "Answer: The answer is x"


def _braced(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start - 1] == '{'; None when it never closes."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def last_boxed(text: str) -> tuple[int, str] | None:
    """(position, content) of the last complete \\boxed{...}; unclosed ones are ignored."""
    found = None
    for m in _BOXED.finditer(text):
        content = _braced(text, m.end())
        if content is not None and content.strip():
            found = (m.start(), content.strip())
    return found


def _final_line(text: str) -> tuple[int, str] | None:
    found = None
    for m in _FINAL_LINE.finditer(text):
        span = m.group(1)
        while _LEAD.match(span):
            span = _LEAD.sub("", span, count=1)
        span = _HOPE.sub("", span).strip().removesuffix(".").strip()
        if span and _BOXED.search(span) is None:  # a boxed answer on the line is taken by last_boxed
            found = (m.start(), span)
    return found


def math_answer(completion: str) -> str | None:
    """The last committed final answer: a \\boxed{} content or a final-answer line, whichever comes later.

    Nothing else counts: a completion without either has no answer (a bare number somewhere in the
    reasoning is not an answer).
    """
    candidates = [c for c in (last_boxed(completion), _final_line(completion)) if c is not None]
    if not candidates:
        return None
    return max(candidates)[1]


# ---------------------------------------------------------------- code
_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
# Where a raw continuation of a function ends (Chen et al. 2021, the HumanEval paper): the next top-level block.
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def code_block(completion: str) -> str | None:
    """The last fenced code block tagged python (or untagged); None if there is none."""
    blocks = _FENCE.findall(completion)
    return blocks[-1][1] if blocks else None


def truncate_continuation(completion: str) -> str:
    """A raw function-body continuation, cut at the first stop sequence."""
    cut = min((i for i in (completion.find(s) for s in STOP_SEQUENCES) if i >= 0), default=len(completion))
    return completion[:cut]


def program(completion: str, prefix: str | None) -> str:
    """The program to run for a completion.

    With a `prefix` (the item's code the completion continues, HumanEval's prompt): prefix + the fenced block if
    the model wrote one (a full definition after the prefix's stub replaces it), else prefix + the raw
    continuation. Without one: the fenced block, else the raw completion (some models answer with bare code).
    """
    block = code_block(completion)
    if prefix is None:
        return block if block is not None else completion
    if block is not None:
        return prefix.rstrip("\n") + "\n    pass\n\n" + block if _stub_needs_body(prefix) else prefix + "\n" + block
    return prefix + truncate_continuation(completion)


def _stub_needs_body(prefix: str) -> bool:
    """True when the prefix ends in a `def ...:` line with no body at all (no docstring either)."""
    lines = [line for line in prefix.rstrip().splitlines() if line.strip()]
    return bool(lines) and lines[-1].lstrip().startswith("def ") and lines[-1].rstrip().endswith(":")
