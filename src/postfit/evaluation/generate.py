"""Batched generation and per-item verdicts: greedy pass@1 and sampled completions for pass@k."""

from __future__ import annotations

import logging

from postfit.config import EvalOptions
from postfit.data.lighteval import protocol_of
from postfit.distributed import shard_map, world_size
from postfit.evaluation.prompts import Completion, prompt_texts
from postfit.evaluation.static import decode_static, sampler
from postfit.item import Item
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

    from postfit.models import end_of_turn_ids

    stops = end_of_turn_ids(tokenizer, getattr(model, "generation_config", None))
    texts, raw = prompt_texts(tokenizer, prompts)
    # Similar lengths in a batch waste less padding; results go back to the prompts' order. Batches are dealt to
    # the processes of a launch and each is seeded by its number, so one process or eight give the same completions.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    loop = decode_static if opts.cuda_graphs and model.device.type == "cuda" else decode
    tokenizer.padding_side = "left"
    model.eval()

    def run(b: int, batch: list[int]) -> list[list[Completion]]:
        torch.manual_seed(seed + b)
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=raw)
        enc = enc.to(model.device)
        rows = loop(model, enc["input_ids"], enc["attention_mask"], opts, stops, n=n, sample=sample)
        new = tokenizer.batch_decode(rows, skip_special_tokens=True)
        done = [(len(row), bool(row) and row[-1] in stops) for row in rows]
        return [[Completion(new[k], *done[k]) for k in range(j * n, (j + 1) * n)] for j in range(len(batch))]

    results = shard_map(run, order, chunk=opts.batch_size, progress=lambda it: track(it, label))
    out: list[list[Completion]] = [[] for _ in texts]
    for i, completions in zip(order, results, strict=True):
        out[i] = completions
    return out


def decode(model, input_ids, attention_mask, opts: EvalOptions, stops: list[int], *, n: int = 1,
           sample: bool = False) -> list[list[int]]:  # fmt: skip
    """New token ids of `n` continuations per row of a left-padded batch (row-major: a row's `n` together), each
    ending at its first id in `stops` (included) or at `opts.max_new_tokens`.

    `model.generate`'s greedy search or sampling (temperature, top-p: transformers' own warpers) with a KV cache,
    and two changes that make it faster on small models and change no greedy result: a row leaves the batch and its
    cache as soon as it stops (generate runs every row to the longest), and the prompt is encoded once for its `n`
    continuations. Sampled continuations draw from the same distributions, but not the same random numbers as
    `generate` (fewer rows per draw).
    """
    import torch

    pick = sampler(opts, sample)
    stop = torch.tensor(sorted(set(stops)), device=input_ids.device)
    cache = growing_cache(model.config, opts.max_new_tokens)
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                       cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1].float()  # fmt: skip
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits, attention_mask = logits.repeat_interleave(n, 0), attention_mask.repeat_interleave(n, 0)
        alive = torch.arange(logits.shape[0], device=input_ids.device)  # row number of each row still running
        out: list[list[int]] = [[] for _ in range(logits.shape[0])]
        for step in range(opts.max_new_tokens):
            token = pick(logits)
            for row, tok in zip(alive.tolist(), token.tolist(), strict=True):
                out[row].append(tok)
            running = ~torch.isin(token, stop)
            if step + 1 == opts.max_new_tokens or not running.any():
                break
            if not running.all():
                keep = running.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                alive, token, attention_mask = alive[keep], token[keep], attention_mask[keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(alive), 1)], dim=1)
            logits = model(input_ids=token[:, None], attention_mask=attention_mask,
                           position_ids=attention_mask.sum(-1, keepdim=True) - 1, cache=cache,
                           use_cache=True).logits[:, -1].float()  # fmt: skip
    return out


def growing_cache(config, room: int):
    """A `DynamicCache` whose layers keep keys and values in buffers with `room` free positions after the prompt:
    each new token is written in place, where `DynamicCache` copies the whole cache (torch.cat) at every step. The
    attention reads the same values either way, so outputs are identical. Other layer kinds (sliding windows) stay
    as they are."""
    import torch
    from transformers import DynamicCache, DynamicLayer

    class GrowingLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.keys = self._k = key_states[:, :, :0]
                self.values = self._v = value_states[:, :, :0]
            used, new = self.keys.shape[-2], key_states.shape[-2]
            if used + new > self._k.shape[-2]:  # the prompt, or more tokens than `room`: a new buffer
                free = lambda x: x.new_empty([*x.shape[:2], room, x.shape[3]])  # noqa: E731
                self._k = torch.cat([self.keys, key_states, free(key_states)], -2)
                self._v = torch.cat([self.values, value_states, free(value_states)], -2)
            else:
                self._k[:, :, used : used + new] = key_states
                self._v[:, :, used : used + new] = value_states
            self.keys, self.values = self._k[:, :, : used + new], self._v[:, :, : used + new]
            return self.keys, self.values

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                used = self.keys.shape[-2]
                self._k, self._v = self._k.repeat_interleave(repeats, 0), self._v.repeat_interleave(repeats, 0)
                self.keys, self.values = self._k[:, :, :used], self._v[:, :, :used]

        def batch_select_indices(self, indices) -> None:
            if self.get_seq_length() > 0:
                used = self.keys.shape[-2]
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, :used], self._v[:, :, :used]

    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def evaluate_splits(model, tokenizer, splits: dict[str, list[Item]], opts: EvalOptions, seed: int,
                    model_path: str | None = None) -> list[dict]:  # fmt: skip
    """Sample rows (split, item, sample, prompt, completion, completion_tokens, stopped, answer, reference, correct,
    score, protocol) for every split; `stopped` is false for a completion cut at `max_new_tokens`.

    `sample` is -1 for the greedy completion, 0..n-1 for the sampled ones (n: `opts.samples_for(split)`); a split
    of the lighteval protocol has only sampled ones. With `opts.backend == "vllm"` the completions come from vLLM on
    `model_path` (the model's saved weights), else from `model` in memory.
    """
    if opts.backend == "vllm":
        from postfit.evaluation.vllm import vllm_generator

        gen = vllm_generator(model, model_path, tokenizer, opts, seed)
    else:

        def gen(prompts, n=1, sample=False, label=""):
            return generate_completions(model, tokenizer, prompts, opts, n=n, sample=sample, seed=seed, label=label)

    rows: list[dict] = []
    for split, items in splits.items():
        prompts = [it.prompt for it in items]
        runs = []  # the lighteval protocol samples only: its pass@1 is their mean
        if not opts.lighteval_split(split):
            runs.append((-1, [c[0] for c in gen(prompts, label=f"{split} greedy")]))
        if n := opts.samples_for(split):
            sampled = gen(prompts, n=n, sample=True, label=f"{split} sampled x{n}")
            runs += [(s, [c[s] for c in sampled]) for s in range(n)]
        # Scored in one batch per split (per process of a launch), so code items run in the sandbox in parallel.
        pairs = [(sample, item, c) for sample, completions in runs for item, c in zip(items, completions, strict=True)]
        chunk = -(-len(pairs) // world_size()) or 1
        verdicts = shard_map(lambda _, part: score_batch([it for _, it, _ in part], [c.text for *_, c in part]),
                             pairs, chunk=chunk)  # fmt: skip
        for (sample, item, completion), (answer, value) in zip(pairs, verdicts, strict=True):
            rows.append(
                {
                    "split": split,
                    "item": item.id,
                    "sample": sample,
                    "prompt": item.prompt,
                    "completion": completion.text,
                    "completion_tokens": completion.tokens,
                    "stopped": completion.stopped,
                    "answer": answer,
                    "reference": item.answer,
                    "correct": is_correct(value),
                    "score": value,
                    "protocol": protocol_of(item),
                }
            )
    return rows
