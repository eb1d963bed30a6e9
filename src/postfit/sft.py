"""Supervised fine-tuning through TRL's SFTTrainer: prompt-completion data, completion-only loss."""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.config import SFTOptions
from postfit.training import train_and_save, trainer_kwargs

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
    import torch
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **trainer_kwargs(
            run_dir / "checkpoints",
            steps=opts.steps,
            batch_size=opts.batch_size,
            learning_rate=opts.learning_rate,
            scheduler=opts.lr_scheduler,
            warmup_ratio=opts.warmup_ratio,
            checkpoint_steps=opts.checkpoint_steps,
            logging_steps=opts.logging_steps,
            seed=seed,
            weight_decay=opts.weight_decay,
        ),
        max_length=opts.max_length,
        completion_only_loss=True,
        packing=False,
        # TRL's defaults suit billion-parameter models on GPUs; tiny models train faster without them.
        activation_checkpointing=False,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(items), processing_class=tokenizer)
    return train_and_save(trainer, run_dir / "checkpoints", run_dir / "model", run_dir / "train_log.jsonl", tokenizer)
