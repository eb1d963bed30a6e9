"""Forgetting: what post-training did to a model on its pre-training corpus, scored on the blocks pre-training never
saw (base/heldout.jsonl, made by train/pretrain.py). Per block: the final model's mean next-token cross-entropy, and
the mean KL(p_start || p_final) of its next-token distribution from the model the run started from, in nats per
token; the report (report/forgetting.py) pools the rows.
"""

from __future__ import annotations

from pathlib import Path

from postfit.io import read_jsonl


def read_blocks(path: Path) -> list[list[int]]:
    """The held-out blocks' token ids, in block order."""
    return [row["input_ids"] for row in sorted(read_jsonl(path), key=lambda r: r["block"])]


def _log_probs(model, ids):
    """log p(next token) at every position that has a next token, in float32: (batch, len - 1, vocab)."""
    return model(input_ids=ids.to(model.device)).logits[:, :-1].float().log_softmax(-1)


def forgetting_rows(model, blocks: list[list[int]], start=None, batch_size: int = 8) -> list[dict]:
    """One row per block: {"block", "tokens" (positions scored), "loss", "kl"}. With `start` None the model is its
    own starting model (a `none` run): its KL is 0 by construction and is not computed."""
    import torch

    rows: list[dict] = []
    models = [m for m in (model, start) if m is not None]
    for m in models:
        m.eval()
    with torch.inference_mode():
        for i in range(0, len(blocks), batch_size):
            ids = torch.tensor(blocks[i : i + batch_size])
            logp = _log_probs(model, ids)
            target = ids[:, 1:].to(logp.device)
            loss = -logp.gather(-1, target[..., None]).squeeze(-1).mean(-1)
            if start is None:
                kl = torch.zeros_like(loss)
            else:  # sum over the vocabulary of p_start (log p_start - log p_final), then the mean over positions
                ref = _log_probs(start, ids).to(logp.device)
                kl = torch.nn.functional.kl_div(logp, ref, log_target=True, reduction="none").sum(-1).mean(-1)
            rows += [{"block": i + j, "tokens": int(target.shape[1]), "loss": float(loss[j]), "kl": float(kl[j])}
                     for j in range(ids.shape[0])]  # fmt: skip
    return rows
