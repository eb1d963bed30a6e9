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
                       a dataset's correctness flags, the code prefix a completion continues ...). Two keys have a
                       fixed meaning for SFT (postfit.data.traces): "traces_correct", a list aligned with `traces`
                       (True / False / None = not marked), and "messages_correct" (the same for `messages`).

An SFT conversation (non-empty `messages`) may lack a reference answer or tests: some post-training sets
carry none (OpenThoughts' `conversations` form, NuminaMath solutions without a \\boxed{} answer, interactive
Codeforces problems without examples). Such an item trains but cannot be verified.
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
    for i, m in enumerate(messages or []):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"{source}/{id}: messages[{i}] must be {{'role': str, 'content': str}}, got {m!r}")
    conversation = bool(messages)  # an SFT conversation trains even when the source gives nothing to verify
    if tests is not None and tests.get("style") not in TEST_STYLES:
        raise ValueError(f"{source}/{id}: tests need a style in {TEST_STYLES}, got {tests.get('style')!r}")
    if domain == "code":
        if tests is None and not conversation:
            raise ValueError(f"{source}/{id}: code items need tests with a style in {TEST_STYLES}")
    elif (answer is None or str(answer).strip() == "") and not conversation:
        raise ValueError(f"{source}/{id}: {domain} items need a reference answer")
    if answer is not None and str(answer).strip() == "":
        answer = None
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
