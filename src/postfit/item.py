"""The one item type every stage reads: post-training sets, benchmarks and a study's own procedural tasks alike.

An item is an `Item`, whose fields are

    id          str    unique within its source, stable across runs ("aime24/60", "humaneval/HumanEval/0")
    source      str    the loader's name in postfit's tables ("openr1-math", "aime24", "rg:chain_sum"), or TASKS
                       for the items of a study's `tasks` block (postfit.tasks)
    domain      str    "math" | "code" | "procedural" -- picks the verifier (postfit.verify)
    prompt      str    the user turn as the model sees it (answer-format instruction included)
    split       str    "train" | "test" | a postfit split name
    answer      str | None   reference answer (math, procedural); None for code
    tests       dict | None  code only, one of
                  {"style": "assert", "code": str, "entry_point": str}   HumanEval, MBPP
                  {"style": "stdio", "cases": [{"input": str, "output": str}, ...]}
                  {"style": "functional", "entry_point": str, "cases": [{"input": str, "output": str}, ...]}
                    (LiveCodeBench's functional form: input lines are JSON arguments, output is JSON)
    messages    list   [{"role": ..., "content": ...}] when the source is a conversation (SFT traces), else []
    traces      list[str]  reasoning traces / reference solutions usable as SFT targets (may be empty)
    difficulty  str | None the source's own label ("Level 5", "hard", "2024-I"), verbatim
    meta        dict   whatever else the verifier or the report needs. A procedural item's "task", "config" (JSON,
                       sorted keys) and "metadata" are reasoning-gym's, which its scorer reads; an ood_rule item adds
                       "original_answer" and "rule_shift". Two keys have a fixed meaning for SFT (postfit.data.traces):
                       "traces_correct", a list aligned with `traces` (True / False / None = not marked), and
                       "messages_correct" (the same for `messages`).
    question    str | None the text the contamination checks compare: a procedural question, else (a study's real
                       data, postfit.study.data) the prompt; None for items no study has split yet
    target      str | None a procedural training item's SFT completion (postfit.tasks.sft_target)

An SFT conversation (non-empty `messages`) may lack a reference answer or tests: some post-training sets
carry none (OpenThoughts' `conversations` form, NuminaMath solutions without a \\boxed{} answer, interactive
Codeforces problems without examples). Such an item trains but cannot be verified.

On disk, in `datasets` columns and across processes an item is JSON (`to_json`, `Item.from_json`), in one of two
layouts that study directories have always held: FIELDS in that order (then "question" when set), or, for the
items of a study's `tasks` block, the flat layout id, split, question, answer, prompt, target (training items
only) and the keys of `meta` side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAINS = ("math", "code", "procedural")
TEST_STYLES = ("assert", "stdio", "functional")
FIELDS = ("id", "source", "domain", "prompt", "messages", "answer", "tests", "traces", "difficulty", "split", "meta")
TASKS = "tasks"  # the source of a study's procedural items (postfit.tasks), which keep the flat layout
_FLAT = ("id", "split", "question", "answer", "prompt", "target")  # the flat layout's fields; its other keys are meta


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    source: str
    domain: str
    prompt: str
    split: str
    answer: str | None = None
    tests: dict | None = None
    messages: list = field(default_factory=list)
    traces: list = field(default_factory=list)
    difficulty: str | None = None
    meta: dict = field(default_factory=dict)
    question: str | None = None
    target: str | None = None

    @classmethod
    def from_json(cls, d: dict) -> Item:
        """The item that `to_json` wrote, in either layout (only the schema layout has a "domain")."""
        if "domain" in d:
            return cls(**{k: d[k] for k in (*FIELDS, "question") if k in d})
        meta = {k: v for k, v in d.items() if k not in _FLAT}
        return cls(source=TASKS, domain="procedural", meta=meta, **{k: d[k] for k in _FLAT if k in d})

    def to_json(self) -> dict:
        """The item's JSON object, as study directories and item files hold it (see the module docstring)."""
        if self.source == TASKS:
            out = {"id": self.id, "split": self.split, "question": self.question, "answer": self.answer,
                   "prompt": self.prompt, **self.meta}  # fmt: skip
            return out if self.target is None else {**out, "target": self.target}
        out = {f: getattr(self, f) for f in FIELDS}
        return out if self.question is None else {**out, "question": self.question}


def make_item(*, id: str, source: str, domain: str, prompt: str, split: str, answer: str | None = None,
              tests: dict | None = None, messages: list | None = None, traces: list | None = None,
              difficulty: str | None = None, meta: dict | None = None) -> Item:  # fmt: skip
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
    return Item(
        id=str(id),
        source=source,
        domain=domain,
        prompt=prompt,
        messages=list(messages or []),
        answer=None if answer is None else str(answer),
        tests=tests,
        traces=list(traces or []),
        difficulty=None if difficulty is None else str(difficulty),
        split=split,
        meta=dict(meta or {}),
    )
