"""Batched generation and per-item verdicts: greedy pass@1 and sampled completions for pass@k."""

from __future__ import annotations

import logging

from postfit.config import EvalOptions
from postfit.distributed import shard_map, world_size
from postfit.evaluation.prompts import Completion, prompt_texts
from postfit.ui import track
from postfit.verify import is_correct, score_batch

log = logging.getLogger(__name__)


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
    texts, raw = prompt_texts(tokenizer, prompts)
    # Similar lengths in a batch waste less padding; results go back to the prompts' order. Batches are dealt to
    # the processes of a launch and each is seeded by its number, so one process or eight give the same completions.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    tokenizer.padding_side = "left"
    model.eval()
    stop_ids = set(stops)

    def run(b: int, batch: list[int]) -> list[list[Completion]]:
        torch.manual_seed(seed + b)
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=raw)
        enc = enc.to(model.device)
        with torch.inference_mode():
            ids = model.generate(**enc, generation_config=gen)[:, enc["input_ids"].shape[1] :]
        new = tokenizer.batch_decode(ids, skip_special_tokens=True)
        done = []
        for row in ids.tolist():
            # Padding after the stop (other rows ran longer) is not generated text.
            hit = next((t for t, tok in enumerate(row) if tok in stop_ids), None)
            done.append((hit + 1, True) if hit is not None else (len(row), False))
        return [[Completion(new[k], *done[k]) for k in range(j * n, (j + 1) * n)] for j in range(len(batch))]

    results = shard_map(run, order, chunk=opts.batch_size, progress=lambda it: track(it, label))
    out: list[list[Completion]] = [[] for _ in texts]
    for i, completions in zip(order, results, strict=True):
        out[i] = completions
    return out


def evaluate_splits(model, tokenizer, splits: dict[str, list[dict]], opts: EvalOptions, seed: int,
                    model_path: str | None = None) -> list[dict]:  # fmt: skip
    """Sample rows (split, item, sample, prompt, completion, completion_tokens, stopped, answer, reference, correct,
    score) for every split; `stopped` is false for a completion cut at `max_new_tokens`.

    `sample` is -1 for the greedy completion, 0..n-1 for the sampled ones. With `opts.backend == "vllm"` the
    completions come from vLLM on `model_path` (the model's saved weights), else from `model` in memory.
    """
    if opts.backend == "vllm":
        from postfit.evaluation.vllm import vllm_generator

        gen = vllm_generator(model, model_path, tokenizer, opts, seed)
    else:

        def gen(prompts, n=1, sample=False, label=""):
            return generate_completions(model, tokenizer, prompts, opts, n=n, sample=sample, seed=seed, label=label)

    rows: list[dict] = []
    for split, items in splits.items():
        prompts = [it["prompt"] for it in items]
        greedy = [c[0] for c in gen(prompts, label=f"{split} greedy")]
        runs = [(-1, greedy)]
        if opts.samples:
            sampled = gen(prompts, n=opts.samples, sample=True, label=f"{split} sampled x{opts.samples}")
            runs += [(s, [c[s] for c in sampled]) for s in range(opts.samples)]
        # Scored in one batch per split (per process of a launch), so code items run in the sandbox in parallel.
        pairs = [(sample, item, c) for sample, completions in runs for item, c in zip(items, completions, strict=True)]
        chunk = -(-len(pairs) // world_size()) or 1
        verdicts = shard_map(lambda _, part: score_batch([it for _, it, _ in part], [c.text for *_, c in part]),
                             pairs, chunk=chunk)  # fmt: skip
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
