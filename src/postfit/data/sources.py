"""Post-training sets (SFT / RL data): presets by name, any hub dataset, local files and dataset folders.

`load_source(source)` takes a preset name from SOURCES (a hub location and its row mapping), a hub dataset id
(org/name, read with `datasets.load_dataset`), or a local .jsonl / .json / .parquet file or dataset folder; rows
are postfit items, TRL's formats or mapped by a `Columns` (postfit.data.formats). A preset's mapping is a `Columns`
where one says everything (OpenR1-Math, NuminaMath); three need a function for what a column mapping cannot say
(GSM8K's '####' answers, OpenThoughts' per-row domain, Codeforces' example tests). Prompts follow
postfit.data.prompts (math: \\boxed{} answer); the dataset's own conversation is kept verbatim in `messages`, its
reasoning traces in `traces`, and its correctness marks in meta ("traces_correct", "messages_correct"), which
postfit.data.traces uses to filter.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from postfit.data.formats import Columns, columns_item, detect_columns, source_kind
from postfit.data.hub import HubSpec, file_rows, hub_dataset, items_from_rows, local_dataset, map_rows
from postfit.data.prompts import gsm8k_answer, gsm8k_trace, last_boxed, math_prompt, stdio_prompt
from postfit.data.traces import to_messages
from postfit.errors import UserError
from postfit.item import Item, make_item

# OpenThoughts' code questions (from APPS, TACO, CodeContests, Codeforces) all open with this request.
OPENTHOUGHTS_CODE_MARK = "Generate an executable Python function"


def _last_reply(messages: list[dict]) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), None)


# OpenR1-Math's `messages` hold one of its `generations`, whose math-verify mark applies to them (formats.py).
OPENR1_MATH = Columns(
    id="uuid", question="problem", answer="answer", messages="messages", reasoning="generations",
    correct="correctness_math_verify",
    meta={"correctness_llama": "correctness_llama", "is_reasoning_complete": "is_reasoning_complete",
          "finish_reasons": "finish_reasons", "problem_type": "problem_type", "question_type": "question_type",
          "origin": "source", "reference_solution": "solution"},
)  # fmt: skip
NUMINA_COT = Columns(question="problem", reasoning="solution", messages="messages", meta={"origin": "source"})


def mapped_by(columns: Columns):
    """A HubSpec's `map_row` that reads rows with a column mapping."""
    return partial(columns_item, columns)


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
        "open-r1/OpenR1-Math-220k", "default", "train", "math", mapped_by(OPENR1_MATH),
        "problem -> prompt; answer; messages; generations -> traces; correctness_math_verify -> meta.traces_correct",
        OPENR1_MATH,
    ),
    "openthoughts": HubSpec(
        "open-thoughts/OpenThoughts-114k", "default", "train", "math / code", openthoughts,
        "system + conversations -> messages; user turn -> prompt; last \\boxed{} of the solution -> answer",
    ),
    "numina-cot": HubSpec(
        "AI-MO/NuminaMath-CoT", None, "train", "math", mapped_by(NUMINA_COT),
        "problem -> prompt; last \\boxed{} of solution -> answer; solution -> traces; messages", NUMINA_COT,
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


def load_source(source: str, *, split: str = "train", limit: int | None = None, skip: int = 0,
                subset: str | None = None, columns: Columns | None = None) -> list[Item]:  # fmt: skip
    """Items of `source` (a preset, a hub dataset id, or a local file or dataset folder): `limit` rows in order from
    row `skip`. `subset` is the dataset's configuration (a preset's own by default); `columns` maps its rows
    (by default a preset's own mapping, else `detect_columns`)."""
    kind = source_kind(source, SOURCES)
    if kind is None:
        raise UserError(f"unknown data source {source!r}: expected one of {', '.join(SOURCES)}, a hub dataset id "
                        "(org/name), or a local .jsonl / .json / .parquet file or dataset folder")  # fmt: skip
    preset = SOURCES.get(source) if kind == "preset" else None
    if preset is not None:
        rows = hub_dataset(preset.path, subset or preset.config, split)
    elif kind == "hub":
        rows = hub_dataset(source, subset, split)
    elif Path(source).expanduser().is_dir():
        rows = local_dataset(source, subset, split)
    else:
        if subset is not None:
            raise UserError(f"{source}: `subset` names a configuration of a hub dataset or dataset folder; a file has "
                            "none (remove it)")  # fmt: skip
        rows = file_rows(source)
    rows = _window(rows, skip, limit)
    if preset is not None and columns is None:
        return map_rows(source, preset, rows, split=split, start=skip)
    return _mapped(source, rows, split, skip, columns)


def _window(rows, skip: int, limit: int | None):
    """Rows [skip, skip + limit) of a `datasets.Dataset` (selected, not read) or of a list of (location, row)."""
    stop = len(rows) if limit is None else min(skip + limit, len(rows))
    if isinstance(rows, list):
        return rows[skip:stop]
    return rows.select(range(min(skip, len(rows)), stop)) if skip or limit is not None else rows


def _mapped(source: str, rows, split: str, skip: int, columns: Columns | None) -> list[Item]:
    """Items of rows that are not a preset's: postfit items, or mapped by `columns` (given, or found by name)."""
    if len(rows) == 0:  # `skip` past the end
        return []
    located = isinstance(rows, list)  # a local file's (location, row) pairs
    if located and not isinstance(rows[0][1], dict):
        raise UserError(f"{rows[0][0]}: expected an object of columns, got {type(rows[0][1]).__name__}")
    names = list(rows[0][1]) if located else rows.column_names
    try:
        columns = columns or detect_columns(names)
    except ValueError as e:
        raise UserError(f"{source}: {e}") from None
    if columns is None:
        return items_from_rows(rows if located else ((f"{source}[row {i}]", r) for i, r in enumerate(rows, skip)))
    mapped = {v for k, v in columns if k != "meta" and v is not None}
    if missing := sorted(mapped - set(names)):
        raise UserError(f"{source}: no column {missing[0]!r} (columns: {', '.join(names)}); fix `columns`")
    name = Path(source).name if Path(source).expanduser().exists() else source
    spec = HubSpec(source, None, split, "math", mapped_by(columns), columns.describe(), columns)
    return map_rows(name, spec, (r for _, r in rows) if located else rows, split=split, start=skip)
