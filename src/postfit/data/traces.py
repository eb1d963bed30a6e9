"""Long reasoning traces as SFT examples: the model's own chat template, a length policy, a correctness filter.

Where the conversations come from (`use`):
  "messages"  the item's `messages` (OpenR1's `messages`, OpenThoughts' `conversations`, NuminaMath's `messages`)
  "traces"    one conversation per trace: the item's prompt as the user turn, the trace as the reply
              (OpenR1's `generations`, GSM8K's rationale, Codeforces' `generation`)
  "auto"      messages when the item has them, traces otherwise

Correctness: where the dataset marks a trace (meta "traces_correct" / "messages_correct", e.g. OpenR1's
`correctness_math_verify`), `only_correct` keeps the traces marked True and drops those marked False; unmarked
traces are kept and counted (among the kept) as `unmarked`, so a study can report how much of its data nobody verified.

Length: each example is tokenised with `tokenizer.apply_chat_template` (the model's template, whatever the
model); the loss covers the final assistant turn. Over `max_length` tokens, policy "drop" removes the example,
"truncate" keeps its first `max_length` tokens (an example whose prompt alone fills `max_length` is dropped,
since it would train on nothing). Output rows have `input_ids` and `completion_mask`, the pre-tokenised form
TRL's SFTTrainer takes with `completion_only_loss=True`.
"""

from __future__ import annotations

from postfit.item import Item

ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
POLICIES = ("drop", "truncate")
USES = ("auto", "messages", "traces")
COUNT_KEYS = ("items", "candidates", "filtered_incorrect", "unmarked", "kept", "truncated", "dropped")


def to_messages(conversation: list[dict], system: str | None = None) -> list[dict]:
    """ShareGPT-style turns ({'from': 'human'|'user'|'gpt'|'assistant', 'value': ...}) or role/content turns
    -> role/content messages, with an optional system turn first."""
    out = [{"role": "system", "content": system}] if system else []
    for i, turn in enumerate(conversation):
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if role not in ROLE_NAMES or not isinstance(content, str):
            raise ValueError(f"turn {i}: expected a role in {sorted(ROLE_NAMES)} and text content, got {turn!r}")
        out.append({"role": ROLE_NAMES[role], "content": content})
    return out


def _candidates(item: Item, use: str) -> list[tuple[list[dict], bool | None]]:
    """(messages, marked correctness) for each conversation this item contributes."""
    if use == "messages" or (use == "auto" and item.messages):
        return [(item.messages, item.meta.get("messages_correct"))] if item.messages else []
    marks = list(item.meta.get("traces_correct") or [])
    marks += [None] * (len(item.traces) - len(marks))
    return [
        ([{"role": "user", "content": item.prompt}, {"role": "assistant", "content": trace}], mark)
        for trace, mark in zip(item.traces, marks, strict=False)
    ]


def _ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def tokenize_conversation(tokenizer, messages: list[dict]) -> tuple[list[int], int]:
    """(token ids of the whole conversation, number of leading prompt tokens) in the tokenizer's own template."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise ValueError("a conversation for SFT needs an assistant turn")
    full = _ids(tokenizer, messages[: last + 1])
    prompt = _ids(tokenizer, messages[:last], add_generation_prompt=True)
    n = 0  # the prompt's tokens are a prefix of the full conversation's in a well-formed template
    while n < min(len(prompt), len(full)) and prompt[n] == full[n]:
        n += 1
    return full, n


def sft_examples(
    items: list[Item],
    tokenizer,
    *,
    max_length: int,
    policy: str = "drop",
    only_correct: bool = True,
    use: str = "auto",
) -> tuple[list[dict], dict[str, int]]:
    """Pre-tokenised SFT rows {'id', 'input_ids', 'completion_mask'} and the counts of what happened to them."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["items"] = len(items)
    rows = []
    for item in items:
        for k, (messages, mark) in enumerate(_candidates(item, use)):
            counts["candidates"] += 1
            if only_correct and mark is False:
                counts["filtered_incorrect"] += 1
                continue
            ids, n_prompt = tokenize_conversation(tokenizer, messages)
            if len(ids) > max_length:
                if policy == "drop" or n_prompt >= max_length:
                    counts["dropped"] += 1
                    continue
                ids = ids[:max_length]
                counts["truncated"] += 1
            counts["kept"] += 1
            counts["unmarked"] += mark is None
            rows.append({"id": f"{item.id}#{k}", "input_ids": ids,
                         "completion_mask": [0] * n_prompt + [1] * (len(ids) - n_prompt)})  # fmt: skip
    return rows, counts
