"""Supervised fine-tuning through TRL's SFTTrainer: prompt-completion data, completion-only loss."""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.config import SFTOptions
from postfit.config.data import SFTData
from postfit.errors import UserError
from postfit.item import Item
from postfit.layout import RunDir
from postfit.train.common import train_and_save, trl_config, trl_kwargs

log = logging.getLogger(__name__)


def sft_dataset(items: list[Item]):
    """Conversational prompt-completion rows: TRL applies the tokenizer's chat template to both."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": it.prompt}],
                "completion": [{"role": "assistant", "content": it.target}],
            }
            for it in items
        ]
    )


def traces_dataset(items: list[Item], tokenizer, opts: SFTOptions, source: SFTData):
    """Schema items' conversations, pre-tokenised with the model's chat template (postfit.data.traces).

    Returns the dataset and the counts of what the length policy and the correctness filter did.
    """
    from datasets import Dataset

    from postfit.data.traces import sft_examples

    rows, counts = sft_examples(items, tokenizer, max_length=opts.max_length, policy=source.overlong,
                                only_correct=source.verified_only)  # fmt: skip
    log.info("data.sft (%s): %s", source.source, counts)
    if not rows:
        raise UserError(f"data.sft.source: no example of {source.source!r} is left for training ({counts}); "
                        "raise sft.max_length, use overlong: truncate, or set verified_only: false")  # fmt: skip
    keys = ("input_ids", "completion_mask")
    return Dataset.from_list([{k: r[k] for k in keys} for r in rows]), counts


def plain_loss_trainer():
    """TRL's SFTTrainer with transformers' own causal-LM loss (`Trainer.compute_loss`: the model's forward with
    `labels`, divided by the batch's trained tokens).

    TRL 1.16 computes the loss through its fused LM head, in tiles, with the per-token entropy and top-1 accuracy
    for its metrics: the same loss (to float rounding) at about a third of a small model's step on a CPU
    (bench/run.py's `sft` measure: 1.2x faster without it). Those two metrics are not logged; the loss is.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class PlainLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {**inputs, "use_cache": False}
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return PlainLossSFTTrainer


def probe_trainer(model, tokenizer, dataset, work_dir: Path, steps: int, batch_size: int, learning_rate: float,
                  seed: int, max_length: int):  # fmt: skip
    """A short SFT of `model` in place for a probe (adaptation, the context probe's control): constant learning rate,
    no warm-up, no checkpoint, completion-only loss, and no loss printed (a probe's loss is not a result)."""
    from types import SimpleNamespace

    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig

    opts = SimpleNamespace(steps=steps, batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=0.0,
                           checkpoint_steps=steps + 1, logging_steps=max(1, steps // 10))  # fmt: skip
    args = SFTConfig(**trl_kwargs(work_dir, opts, seed, "constant"), max_length=max_length,
                     completion_only_loss=True, packing=False, save_strategy="no")  # fmt: skip
    trainer = plain_loss_trainer()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    return trainer


PER_SEQUENCE_ATTENTION = ("flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")


def padding_free(opts: SFTOptions, model) -> bool:
    """`sft.padding_free`, or where it is null, whether the model's attention works per sequence of a packed row
    (flash's varlen kernels, flex's block mask): sdpa and eager attend over the whole row, masked, which costs more
    than the padding saves (bench/gpu_check.py's `sft` stage: 8x slower on a CPU)."""
    if opts.padding_free is not None:
        return opts.padding_free
    return model.config._attn_implementation in PER_SEQUENCE_ATTENTION


def padding_free_collator(tokenizer):
    """TRL's collator in its padding-free form: a batch is one row of its sequences end to end, with position ids
    restarting at each (attention stays inside a sequence: flash-attention's varlen kernels where installed, else
    the block-diagonal mask transformers builds from the position ids), and the first token of each unlabelled.

    Set on a trainer built padded (not through `SFTConfig(padding_free=True)`): TRL then prepares, truncates to
    `max_length` and filters the data exactly as for padded rows, which it refuses to do for padding-free ones.
    """
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)


def sft_config(opts: SFTOptions, checkpoints: Path, seed: int):
    """The SFTConfig of an SFT run: postfit's options, then `sft.trainer`'s fields."""
    from trl import SFTConfig

    kwargs = dict(**trl_kwargs(checkpoints, opts, seed, opts.lr_scheduler), max_length=opts.max_length,
                  completion_only_loss=True, packing=False)  # fmt: skip
    return trl_config(SFTConfig, "sft", kwargs, opts.trainer)


def train_sft(model, tokenizer, items: list[Item], opts: SFTOptions, run_dir: Path, seed: int,
              source: SFTData | None = None) -> dict:  # fmt: skip
    """Fine-tune `model` in place on `items`; final weights go to run_dir/model, the loss log to train_log.jsonl.

    `items` are procedural items with a `target`, or with `source` (the study's `data.sft`) schema items.
    """
    out = RunDir(run_dir)
    args = sft_config(opts, out.checkpoints, seed)
    dataset, counts = traces_dataset(items, tokenizer, opts, source) if source else (sft_dataset(items), None)
    trainer = plain_loss_trainer()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    if padding_free(opts, model):
        trainer.data_collator = padding_free_collator(tokenizer)
    stats = train_and_save(trainer, out.checkpoints, out.model, out.train_log, tokenizer, "sft",
                           f"{out.name}, {opts.steps} steps on {len(items)} items")  # fmt: skip
    return {**stats, "sft_data": counts} if counts else stats
