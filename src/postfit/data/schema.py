"""The one item schema every data source is normalised to (post-training sets and benchmarks alike).

An item is a plain dict (it goes to jsonl, to `datasets`, and across processes unchanged):

    id          str    unique within its source, stable across runs ("aime24/60", "humaneval/HumanEval/0")
    source      str    the loader's name in postfit's tables ("openr1-math", "aime24", "rg:chain_sum")
    domain      str    "math" | "code" | "procedural" -- picks the verifier (postfit.verify)
    prompt      str    the user turn as the model sees it (answer-format instruction included)
    messages    list   [{"role": ..., "content": ...}] when the source is a conversation (SFT traces), else []
    answer      str | None   reference answer (math, procedural); None for code
    tests       dict | None  code only, one of
                  {"style": "assert", "code": str, "entry_point": str}   HumanEval, MBPP
                  {"style": "stdio", "cases": [{"input": str, "output": str}, ...]}
                  {"style": "functional", "entry_point": str, "cases": [{"input": str, "output": str}, ...]}
                    (LiveCodeBench's functional form: input lines are JSON arguments, output is JSON)
    traces      list[str]  reasoning traces / reference solutions usable as SFT targets (may be empty)
    difficulty  str | None the source's own label ("Level 5", "hard", "2024-I"), verbatim
    split       str    "train" | "test" | a postfit split name
    meta        dict   whatever else the verifier or the report needs (reasoning-gym task/config/metadata,
                       a dataset's correctness flags, the code prefix a completion continues ...)
"""

from __future__ import annotations

DOMAINS = ("math", "code", "procedural")
TEST_STYLES = ("assert", "stdio", "functional")
FIELDS = ("id", "source", "domain", "prompt", "messages", "answer", "tests", "traces", "difficulty", "split", "meta")


def make_item(*, id: str, source: str, domain: str, prompt: str, split: str, answer: str | None = None,
              tests: dict | None = None, messages: list | None = None, traces: list | None = None,
              difficulty: str | None = None, meta: dict | None = None) -> dict:  # fmt: skip
    """A schema-valid item; raises ValueError naming the field that is wrong."""
    if domain not in DOMAINS:
        raise ValueError(f"{source}/{id}: domain must be one of {DOMAINS}, got {domain!r}")
    if domain == "code":
        if not tests or tests.get("style") not in TEST_STYLES:
            raise ValueError(f"{source}/{id}: code items need tests with a style in {TEST_STYLES}")
    elif answer is None or str(answer).strip() == "":
        raise ValueError(f"{source}/{id}: {domain} items need a reference answer")
    return {
        "id": str(id),
        "source": source,
        "domain": domain,
        "prompt": prompt,
        "messages": list(messages or []),
        "answer": None if answer is None else str(answer),
        "tests": tests,
        "traces": list(traces or []),
        "difficulty": None if difficulty is None else str(difficulty),
        "split": split,
        "meta": dict(meta or {}),
    }
