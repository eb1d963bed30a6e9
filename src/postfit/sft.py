"""Supervised fine-tuning through TRL's SFTTrainer: prompt-completion data, completion-only loss."""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.config import SFTOptions
from postfit.training import train_and_save, trl_kwargs

log = logging.getLogger(__name__)


def sft_dataset(items: list[dict]):
    """Conversational prompt-completion rows: TRL applies the tokenizer's chat template to both."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": it["prompt"]}],
                "completion": [{"role": "assistant", "content": it["target"]}],
            }
            for it in items
        ]
    )


def train_sft(model, tokenizer, items: list[dict], opts: SFTOptions, run_dir: Path, seed: int) -> dict:
    """Fine-tune `model` in place on `items`; final weights go to run_dir/model, the loss log to train_log.jsonl."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **trl_kwargs(run_dir / "checkpoints", opts, seed, opts.lr_scheduler),
        max_length=opts.max_length,
        completion_only_loss=True,
        packing=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(items), processing_class=tokenizer)
    return train_and_save(trainer, run_dir / "checkpoints", run_dir / "model", run_dir / "train_log.jsonl", tokenizer)
