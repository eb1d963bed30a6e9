"""Batched generation and per-item verdicts: greedy pass@1 and sampled completions for pass@k."""

from __future__ import annotations

import logging
from typing import NamedTuple

from postfit.config import EvalOptions
from postfit.ui import track
from postfit.verify import is_correct, score_batch

log = logging.getLogger(__name__)


class Completion(NamedTuple):
    text: str  # decoded without special tokens
    tokens: int  # new tokens generated, the stop token included
    stopped: bool  # ended on an end-of-turn token (not cut at max_new_tokens)


def generate(model, tokenizer, prompts: list[str] | list[list[dict]], opts: EvalOptions, *, n: int = 1,
             sample: bool = False, seed: int = 0, label: str = "generating") -> list[list[str]]:  # fmt: skip
    """`n` completions per prompt (chat template applied), in the prompts' order; see `generate_completions`."""
    out = generate_completions(model, tokenizer, prompts, opts, n=n, sample=sample, seed=seed, label=label)
    return [[c.text for c in cs] for cs in out]


def generate_completions(model, tokenizer, prompts: list[str] | list[list[dict]], opts: EvalOptions, *,
                         n: int = 1, sample: bool = False, seed: int = 0,
                         label: str = "generating") -> list[list[Completion]]:  # fmt: skip
    """`n` completions per prompt (chat template applied), in the prompts' order, each stopping at the end of its
    turn (every id of `models.end_of_turn_ids`, not only eos).

    A prompt is a user message, or a whole conversation (a list of chat messages: the in-context probe's shots).
    A tokenizer without a chat template (a base model) gets a user message as raw text to continue, with its
    usual special tokens (BOS).
    """
    import torch
    from transformers import GenerationConfig

    from postfit.models import end_of_turn_ids

    stops = end_of_turn_ids(tokenizer, getattr(model, "generation_config", None))
    gen = GenerationConfig(
        max_new_tokens=opts.max_new_tokens,
        do_sample=sample,
        temperature=opts.temperature if sample else None,
        top_p=opts.top_p if sample else None,
        top_k=None,
        num_return_sequences=n,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
    )
    raw = tokenizer.chat_template is None
    if raw and not all(isinstance(p, str) for p in prompts):
        raise ValueError("conversation prompts need a tokenizer with a chat template")
    texts = prompts if raw else [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}] if isinstance(p, str) else p, add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]  # fmt: skip
    # Similar lengths in a batch waste less padding; results go back to the prompts' order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[list[Completion]] = [[] for _ in texts]
    tokenizer.padding_side = "left"
    model.eval()
    torch.manual_seed(seed)
    batches = [order[i : i + opts.batch_size] for i in range(0, len(order), opts.batch_size)]
    with torch.inference_mode():
        for batch in track(batches, label):
            enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=raw)
            enc = enc.to(model.device)
            ids = model.generate(**enc, generation_config=gen)[:, enc["input_ids"].shape[1] :]
            new = tokenizer.batch_decode(ids, skip_special_tokens=True)
            done = []
            for row in ids.tolist():
                # Padding after the stop (other rows ran longer) is not generated text.
                hit = next((t for t, tok in enumerate(row) if tok in stops), None)
                done.append((hit + 1, True) if hit is not None else (len(row), False))
            for j, i in enumerate(batch):
                out[i] = [Completion(new[k], *done[k]) for k in range(j * n, (j + 1) * n)]
    return out


def evaluate_splits(model, tokenizer, splits: dict[str, list[dict]], opts: EvalOptions, seed: int) -> list[dict]:
    """Sample rows (split, item, sample, prompt, completion, completion_tokens, stopped, answer, reference, correct,
    score) for every split; `stopped` is false for a completion cut at `max_new_tokens`.

    `sample` is -1 for the greedy completion, 0..n-1 for the sampled ones.
    """
    rows: list[dict] = []
    for split, items in splits.items():
        prompts = [it["prompt"] for it in items]
        greedy = [c[0] for c in generate_completions(model, tokenizer, prompts, opts, label=f"{split} greedy")]
        runs = [(-1, greedy)]
        if opts.samples:
            sampled = generate_completions(model, tokenizer, prompts, opts, n=opts.samples, sample=True, seed=seed,
                                           label=f"{split} sampled x{opts.samples}")  # fmt: skip
            runs += [(s, [c[s] for c in sampled]) for s in range(opts.samples)]
        # Scored in one batch per split, so code items run in the sandbox in parallel.
        pairs = [(sample, item, c) for sample, completions in runs for item, c in zip(items, completions, strict=True)]
        verdicts = score_batch([item for _, item, _ in pairs], [c.text for *_, c in pairs])
        for (sample, item, completion), (answer, value) in zip(pairs, verdicts, strict=True):
            rows.append(
                {
                    "split": split,
                    "item": item["id"],
                    "sample": sample,
                    "prompt": item["prompt"],
                    "completion": completion.text,
                    "completion_tokens": completion.tokens,
                    "stopped": completion.stopped,
                    "answer": answer,
                    "reference": item["answer"],
                    "correct": is_correct(value),
                    "score": value,
                }
            )
    return rows
