"""Post-training sets (SFT / RL data) by name, each a hub location plus a row -> item mapping.

`load_source(name_or_path)` takes a name from SOURCES or a local .jsonl / .json / .parquet file of items.
Prompts follow postfit.data.prompts (math: \\boxed{} answer); the dataset's own conversation is kept
verbatim in `messages`, its reasoning traces in `traces`, and its correctness marks in meta
("traces_correct", "messages_correct"), which postfit.data.traces uses to filter.
"""

from __future__ import annotations

from postfit.data.hub import HubSpec, hub_dataset, is_local_file, map_rows, read_items
from postfit.data.prompts import gsm8k_answer, gsm8k_trace, last_boxed, math_prompt, stdio_prompt
from postfit.data.traces import to_messages
from postfit.errors import UserError
from postfit.item import Item, make_item

# OpenThoughts' code questions (from APPS, TACO, CodeContests, Codeforces) all open with this request.
OPENTHOUGHTS_CODE_MARK = "Generate an executable Python function"


def _last_reply(messages: list[dict]) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), None)


def openr1_math(row: dict, *, source: str, index: int, split: str) -> Item:
    generations = list(row["generations"] or [])
    marks = [bool(x) for x in row["correctness_math_verify"] or []]
    messages = to_messages(row["messages"] or [])
    reply = _last_reply(messages)
    # `messages` holds one of the generations; its mark is that generation's math-verify verdict.
    at = generations.index(reply) if reply in generations else None
    return make_item(
        id=f"{source}/{row['uuid']}",
        source=source,
        domain="math",
        prompt=math_prompt(row["problem"]),
        split=split,
        answer=row["answer"],
        messages=messages,
        traces=generations,
        meta={
            "traces_correct": marks,
            "messages_correct": marks[at] if at is not None and at < len(marks) else None,
            "correctness_llama": row.get("correctness_llama"),
            "is_reasoning_complete": row.get("is_reasoning_complete"),
            "finish_reasons": row.get("finish_reasons"),
            "problem_type": row.get("problem_type"),
            "question_type": row.get("question_type"),
            "origin": row.get("source"),
            "reference_solution": row.get("solution"),
        },
    )


def openthoughts(row: dict, *, source: str, index: int, split: str) -> Item:
    messages = to_messages(row["conversations"], system=row.get("system"))
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    reply = _last_reply(messages) or ""
    code = OPENTHOUGHTS_CODE_MARK in user
    solution = reply.split("<|begin_of_solution|>")[-1]
    return make_item(
        id=f"{source}/{index}",
        source=source,
        domain="code" if code else "math",
        prompt=user,
        split=split,
        answer=None if code else last_boxed(solution),
        messages=messages,
        traces=[reply] if reply else [],
        # The conversations form carries no domain column: it is read off the prompt (science and puzzle
        # questions also ask for \boxed{} and count as math here).
        meta={"domain_from": "prompt"},
    )


def numina_cot(row: dict, *, source: str, index: int, split: str) -> Item:
    return make_item(
        id=f"{source}/{index}",
        source=source,
        domain="math",
        prompt=math_prompt(row["problem"]),
        split=split,
        answer=last_boxed(row["solution"]),
        messages=to_messages(row["messages"] or []),
        traces=[row["solution"]],
        meta={"origin": row["source"]},
    )


def gsm8k(row: dict, *, source: str, index: int, split: str) -> Item:
    return make_item(
        id=f"{source}/{split}/{index}",
        source=source,
        domain="math",
        prompt=math_prompt(row["question"]),
        split=split,
        answer=gsm8k_answer(row["answer"]),
        traces=[gsm8k_trace(row["answer"])],
        meta={"reference_solution": row["answer"]},
    )


def codeforces_cots(row: dict, *, source: str, index: int, split: str) -> Item:
    examples = [{"input": e["input"], "output": e["output"]} for e in row.get("examples") or []]
    return make_item(
        id=f"{source}/{index}",
        source=source,
        domain="code",
        prompt=row["prompt"] or stdio_prompt(row["description"]),
        split=split,
        tests={"style": "stdio", "cases": examples} if examples else None,
        messages=to_messages(row["messages"] or []),
        traces=[row["generation"]],
        meta={
            "problem_id": row["id"],
            "title": row.get("title"),
            "contest_id": row.get("contest_id"),
            "time_limit": row.get("time_limit"),
            "memory_limit": row.get("memory_limit"),
            "finish_reason": row.get("finish_reason"),
            "tests_are_examples": True,  # only the statement's examples; the official tests are in open-r1/codeforces
        },
    )


SOURCES: dict[str, HubSpec] = {
    "openr1-math": HubSpec(
        "open-r1/OpenR1-Math-220k", "default", "train", "math", openr1_math,
        "problem -> prompt; answer; messages; generations -> traces; correctness_math_verify -> meta.traces_correct",
    ),
    "openthoughts": HubSpec(
        "open-thoughts/OpenThoughts-114k", "default", "train", "math / code", openthoughts,
        "system + conversations -> messages; user turn -> prompt; last \\boxed{} of the solution -> answer",
    ),
    "numina-cot": HubSpec(
        "AI-MO/NuminaMath-CoT", None, "train", "math", numina_cot,
        "problem -> prompt; last \\boxed{} of solution -> answer; solution -> traces; messages",
    ),
    "gsm8k-train": HubSpec(
        "openai/gsm8k", "main", "train", "math", gsm8k,
        "question -> prompt; text after #### -> answer; rationale with a boxed answer -> traces",
    ),
    "codeforces-cots": HubSpec(
        "open-r1/codeforces-cots", "solutions_py", "train", "code", codeforces_cots,
        "prompt; messages; generation -> traces; examples -> stdio tests",
    ),
}  # fmt: skip


def load_source(name_or_path: str, *, split: str = "train", limit: int | None = None, skip: int = 0) -> list[Item]:
    """Items of a post-training set (a SOURCES name) or of a local item file: `limit` rows in order from row `skip`."""
    if is_local_file(name_or_path):
        return read_items(name_or_path, limit=limit, skip=skip)
    spec = SOURCES.get(name_or_path)
    if spec is None:
        raise UserError(
            f"unknown data source {name_or_path!r}: expected one of {', '.join(SOURCES)} "
            "or a .jsonl / .json / .parquet file of items"
        )
    ds = hub_dataset(spec.path, spec.config, split)
    stop = len(ds) if limit is None else min(skip + limit, len(ds))
    if skip or limit is not None:
        ds = ds.select(range(min(skip, len(ds)), stop))
    return map_rows(name_or_path, spec, ds, split=split, limit=limit, start=skip)
