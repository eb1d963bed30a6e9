"""What both generation backends share: the text a prompt is given to the model as, and a completion's record."""

from __future__ import annotations

from typing import NamedTuple


class Completion(NamedTuple):
    text: str  # decoded without special tokens
    tokens: int  # new tokens generated, the stop token included
    stopped: bool  # ended on an end-of-turn token (not cut at max_new_tokens)


def prompt_texts(tokenizer, prompts: list[str] | list[list[dict]]) -> tuple[list[str], bool]:
    """(the text each prompt is given to the model as, whether it is raw text without a chat template)."""
    raw = tokenizer.chat_template is None
    if raw and not all(isinstance(p, str) for p in prompts):
        raise ValueError("conversation prompts need a tokenizer with a chat template")
    texts = prompts if raw else [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}] if isinstance(p, str) else p, add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]  # fmt: skip
    return texts, raw
