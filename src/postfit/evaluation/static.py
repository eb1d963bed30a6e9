"""Decoding with a static KV cache, each step replayed as a CUDA graph: `generate.decode`'s results without its
per-step Python and kernel-launch cost on a GPU.

A decoding step of a small model is bound by launching kernels, not by the GPU: hundreds of kernels of a few
microseconds each. Here the batch keeps its shape from the first new token to the last (transformers'
`StaticCache`, a 4D attention mask updated in place), so the step is captured once per batch with
`torch.cuda.CUDAGraph` and replayed: one launch a step. Rows that stop keep decoding until every row has stopped
and are cut at their first stop afterwards (checked every `CHECK_EVERY` steps, not at each one, to keep the GPU
ahead of Python). No `torch.compile`: capturing costs one step, where compiling a model costs minutes and is
redone for every model a study loads.
"""

from __future__ import annotations

import logging

from postfit.config import EvalOptions

log = logging.getLogger(__name__)

CHECK_EVERY = 8  # steps between checks whether every row has stopped (each check waits for the GPU)


def decode_static(model, input_ids, attention_mask, opts, stops: list[int], *, n: int = 1, sample: bool = False,
                  graph: bool | None = None) -> list[list[int]]:  # fmt: skip
    """`generate.decode`'s contract (new ids of `n` continuations per row of a left-padded batch, row-major, each
    ending at its first id in `stops` or at `opts.max_new_tokens`) with a static cache; `graph` (default: on CUDA)
    replays each step as a CUDA graph. Greedy ids equal `decode`'s; sampling draws from the same distributions."""
    import torch
    from transformers import StaticCache

    graph = input_ids.is_cuda if graph is None else graph
    ids, pad = input_ids.repeat_interleave(n, 0), attention_mask.repeat_interleave(n, 0).bool()
    rows, prompt = ids.shape
    new = opts.max_new_tokens
    length = prompt + new
    dev, dtype = ids.device, model.dtype
    cache = StaticCache(config=model.config, max_cache_len=length)
    # Additive 4D masks (0: attend, dtype min: not), what every attention implementation of transformers accepts
    # as prepared. A key is visible to a query when it is not padding and not later than the query.
    keys = torch.arange(length, device=dev)
    visible = torch.cat([pad, pad.new_ones(rows, new)], 1)[:, None, None, :]
    prefill = visible & (keys <= torch.arange(prompt, device=dev)[:, None])
    blocked = torch.finfo(dtype).min
    mask = torch.zeros(prefill.shape, dtype=dtype, device=dev).masked_fill_(~prefill, blocked)
    positions = (pad.long().cumsum(-1) - 1).clamp(min=0)
    pick = sampler(opts, sample)
    stop = torch.tensor(sorted(set(stops)), device=dev)
    out = torch.zeros(rows, new, dtype=torch.long, device=dev)
    done = torch.zeros(rows, dtype=torch.bool, device=dev)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                       logits_to_keep=1).logits[:, -1].float()  # fmt: skip
        # The step's inputs live in fixed buffers: the graph reads them where it was captured.
        token = ids.new_zeros(rows, 1)
        position = positions[:, -1:] + 1
        step_mask = prefill[:, :, -1:].logical_not().to(dtype).mul_(blocked)  # the prompt's keys, no padding
        captured = None

        def forward():
            return model(input_ids=token, attention_mask=step_mask, position_ids=position, cache=cache,
                         use_cache=True).logits[:, -1].float()  # fmt: skip

        for step in range(new):
            token[:, 0] = pick(logits)
            out[:, step] = token[:, 0]
            done |= torch.isin(token[:, 0], stop)
            if step + 1 == new or ((step + 1) % CHECK_EVERY == 0 and bool(done.all())):
                break
            step_mask[..., prompt + step] = 0  # the token just chosen is now a key
            if step:
                position += 1
            if not graph:
                logits = forward()
            elif captured is None:  # the first step runs eagerly (warming up cuBLAS and the allocator), then capture
                logits = forward()
                captured = torch.cuda.CUDAGraph()
                try:
                    with torch.cuda.graph(captured):  # records the step without running it
                        graph_logits = forward()
                except RuntimeError as e:  # a model whose step cannot be captured still decodes, step by step
                    log.warning("decoding without CUDA graphs: capturing %s's step failed (%s)",
                                type(model).__name__, e)  # fmt: skip
                    graph = False
            else:
                captured.replay()
                logits = graph_logits
    return [_until_stop(row, set(stops)) for row in out.tolist()]


def sampler(opts: EvalOptions, sample: bool):
    """pick(logits) -> one token id per row: the argmax, or a draw at `opts.temperature` / `opts.top_p` (transformers'
    own warpers)."""
    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    if not sample:
        return lambda logits: logits.argmax(-1)
    warp = LogitsProcessorList()
    warp += [TemperatureLogitsWarper(opts.temperature)] if opts.temperature != 1.0 else []
    warp += [TopPLogitsWarper(opts.top_p)] if opts.top_p < 1.0 else []
    return lambda logits: torch.multinomial(torch.softmax(warp(None, logits), dim=-1), num_samples=1).squeeze(1)


def _until_stop(row: list[int], stops: set[int]) -> list[int]:
    for i, tok in enumerate(row):
        if tok in stops:
            return row[: i + 1]
    return row
