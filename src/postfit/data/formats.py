"""Any dataset's rows as items: TRL's formats, a problem/solution pair mapped column by column, or postfit's items.

The formats, as TRL names them, and the column mapping (`Columns`) each one is read with:

    conversational        messages: [{role, content}, ...]          Columns(messages="messages")
    ShareGPT              conversations: [{from, value}, ...]       Columns(messages="conversations")
    prompt-completion     prompt, completion (text or turns)        Columns(prompt="prompt", completion="completion")
    prompt-only (RL)      prompt (+ an answer column)               Columns(prompt="prompt", answer=...)
    problem / solution    any names, mapped in the study file       Columns(question="problem", reasoning="solution")

`detect_columns` picks the mapping from the column names where no `columns` block is given (an `answer` column is
read as the final answer); rows in postfit's own item schema (postfit.item) are read as items.

The final answer an item is verified with: the `answer` column (its last \\boxed{} where it has one, else its
text: a short answer or a full solution both work), else the last \\boxed{} of the reasoning or reply (the
extraction the verifier uses, postfit.verify.extract), else none. An item without one trains SFT (its conversation)
but gives GRPO nothing to reward: study/data.py leaves it out of RL and says which column to map when none has one.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from postfit.item import Item, make_item

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
ITEM_COLUMNS = {"id", "source", "domain", "prompt"}  # rows with these are postfit items (postfit.item.FIELDS)
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # org/name, as the hub spells a repo id


class Columns(BaseModel):
    """Which column of a dataset's rows holds what (TRL's formats, or a problem/solution pair); null: none.

    An item's prompt is `question` followed by postfit's math instruction (a \\boxed{} answer), else `prompt` as
    it is, else the last user turn of `messages`. Its reply (the SFT target) is the last assistant turn of
    `messages`, else `completion`, else `reasoning`. Its final answer: see the module docstring.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: str | None = Field(None, description="A conversation: a list of {role, content} turns (TRL's "
                                 "conversational format) or ShareGPT's {from, value}.")  # fmt: skip
    prompt: str | None = Field(None, description="The prompt as it is, text or a list of turns (TRL's `prompt`).")
    completion: str | None = Field(None, description="The reply, text or a list of turns (TRL's `completion`).")
    question: str | None = Field(None, description="A problem statement, asked with postfit's math instruction.")
    reasoning: str | None = Field(None, description="The worked solution or reasoning trace (text, or a list of "
                                  "traces), the SFT target where there is no reply.")  # fmt: skip
    answer: str | None = Field(None, description="The final answer the verifier compares with (its last "
                               "\\boxed{} where it has one, else its text).")  # fmt: skip
    system: str | None = Field(None, description="A system prompt put before `messages`.")
    id: str | None = Field(None, description="A row id (null: the row's index).")
    correct: str | None = Field(None, description="Correctness marks of `reasoning` (a bool, or a list aligned "
                                "with its traces); `verified_only` drops the traces marked false.")  # fmt: skip
    meta: dict[str, str] = Field(default_factory=dict, description="Item meta key -> column, copied as it is "
                                 "(null where a row lacks it).")  # fmt: skip

    def describe(self) -> str:
        """'question <- problem, reasoning <- solution' (docs/datasets.md's table is written from it)."""
        pairs = [f"{k} <- {v}" for k, v in self if k != "meta" and v is not None]
        return ", ".join(pairs + [f"meta.{k} <- {v}" for k, v in self.meta.items()])


def source_kind(name: str, presets: dict) -> str | None:
    """'preset', 'local' (a file or folder on this machine), 'hub' (an org/name id) or None (nothing it can be)."""
    if name in presets:
        return "preset"
    path = Path(name).expanduser()
    if path.suffix in LOCAL_SUFFIXES or path.exists() or name.startswith((".", "/", "~")):
        return "local"
    return "hub" if _HUB_ID.fullmatch(name) else None


def detect_columns(names: list[str]) -> Columns | None:
    """The mapping of TRL's formats from a dataset's column names; None for rows in postfit's item schema.
    ValueError naming the columns where no format fits."""
    have = set(names)
    if ITEM_COLUMNS <= have:
        return None
    answer = "answer" if "answer" in have else None
    if "messages" in have:
        return Columns(messages="messages", answer=answer)
    if "conversations" in have:
        return Columns(messages="conversations", system="system" if "system" in have else None, answer=answer)
    if "prompt" in have:
        return Columns(prompt="prompt", completion="completion" if "completion" in have else None, answer=answer)
    raise ValueError(
        f"no column in a format postfit reads (columns: {sorted(have)}); expected `messages`, `conversations` or "
        "`prompt` (with `completion`), postfit's items, or a `columns` mapping, e.g. columns: {question: problem, "
        "reasoning: solution, answer: answer}"
    )


def _turns(value, role: str) -> list[dict]:
    """A text becomes one turn of `role`; a list of turns is read as a conversation (postfit.data.traces)."""
    from postfit.data.traces import to_messages

    if value is None:
        return []
    return [{"role": role, "content": value}] if isinstance(value, str) else to_messages(list(value))


def _last(messages: list[dict], role: str) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == role), None)


def _answer(value) -> str | None:
    """An answer column's value: its last \\boxed{} where it has one (a full solution), else its text."""
    from postfit.data.prompts import last_boxed, number_text

    if value is None:
        return None
    text = number_text(value)
    return last_boxed(text) or text or None


def _traces(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(t) for t in value]


def columns_item(columns: Columns, row: dict, *, source: str, index: int, split: str) -> Item:
    """The math item of one row under `columns` (see the class); KeyError naming a mapped column the row lacks,
    ValueError for a row with no prompt, or with neither a reply nor an answer."""
    from postfit.data.prompts import last_boxed, math_prompt
    from postfit.data.traces import to_messages

    c = columns
    system = row[c.system] if c.system else None
    messages = to_messages(list(row[c.messages] or []), system=system) if c.messages else []
    prompt_turns = _turns(row[c.prompt], "user") if c.prompt else []
    if messages and _last(messages, "assistant") is None:  # a conversation without a reply is a prompt (RL)
        prompt_turns, messages = messages, []
    prompt = math_prompt(str(row[c.question])) if c.question else _last(prompt_turns or messages, "user")
    if prompt is None:
        raise ValueError(f"no prompt: map `question`, `prompt` or `messages` (columns: {sorted(row)})")
    completion = _turns(row[c.completion], "assistant") if c.completion else []
    reply = _last(messages or completion, "assistant")
    traces = _traces(row[c.reasoning]) if c.reasoning else ([reply] if reply else [])
    if not messages and (completion or len(traces) == 1):
        # TRL's prompt-completion rows, or one worked solution: the conversation is the prompt, then the reply
        user = prompt_turns if prompt_turns and not c.question else [{"role": "user", "content": prompt}]
        messages = user + (completion or [{"role": "assistant", "content": traces[0]}])
    answer = _answer(row[c.answer]) if c.answer else (last_boxed(traces[0]) if traces else None)
    if answer is None and not messages:
        raise ValueError(f"no final answer and no reply: map the column that holds the answer (`columns.answer`; "
                         f"columns: {sorted(row)})")  # fmt: skip
    meta = {key: row.get(col) for key, col in c.meta.items()}
    if c.correct:
        marks = row[c.correct]
        marks = [bool(marks)] * len(traces) if isinstance(marks, bool) else [bool(m) for m in marks or []]
        # messages hold one of the traces (OpenR1's `messages` is one of its `generations`): its mark applies
        at = traces.index(reply) if reply in traces else len(marks)
        meta |= {"traces_correct": marks, "messages_correct": marks[at] if at < len(marks) else None}
    key = row[c.id] if c.id else (index if split == "train" else f"{split}/{index}")
    return make_item(id=f"{source}/{key}", source=source, domain="math", prompt=prompt,
                     split=split, answer=answer, messages=messages, traces=traces, meta=meta)  # fmt: skip
