"""What pre-training and SFT share: trainer arguments, resumable checkpoints, atomic final save."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from postfit.distributed import barrier, is_main, world_size
from postfit.errors import UserError
from postfit.io import atomic_dir, write_jsonl

log = logging.getLogger(__name__)


def trainer_kwargs(
    output_dir: Path,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    scheduler: str,
    warmup_ratio: float,
    checkpoint_steps: int,
    logging_steps: int,
    seed: int,
    weight_decay: float = 0.0,
) -> dict:
    """Keyword arguments for `TrainingArguments` / TRL configs, identical for every run of a study."""
    return dict(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup_ratio,  # a float < 1 is a ratio of max_steps in transformers 5
        weight_decay=weight_decay,
        logging_steps=logging_steps,
        save_steps=checkpoint_steps,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,  # the rich progress callback replaces tqdm
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )


def per_device_batch(batch_size: int, micro_batch_size: int | None, key: str) -> tuple[int, int]:
    """(sequences per device per pass, gradient accumulation steps) so that one optimiser step sees `batch_size`
    sequences in all, whatever the number of processes: `batch_size` is global, as in a one-process run."""
    n = world_size()
    micro = micro_batch_size or max(1, batch_size // n)
    if batch_size % (micro * n):
        raise UserError(f"{key}.batch_size ({batch_size}) must be a multiple of {key}.micro_batch_size ({micro}) x "
                        f"the {n} processes of this launch")  # fmt: skip
    return micro, batch_size // (micro * n)


def trl_kwargs(output_dir: Path, opts, seed: int, scheduler: str, key: str = "sft") -> dict:
    """`trainer_kwargs` from SFT or RL options (study key `key`), plus the settings every TRL config of postfit
    shares."""
    import torch

    micro, accumulation = per_device_batch(opts.batch_size, getattr(opts, "micro_batch_size", None), key)
    return dict(
        **trainer_kwargs(
            output_dir,
            steps=opts.steps,
            batch_size=micro,
            learning_rate=opts.learning_rate,
            scheduler=scheduler,
            warmup_ratio=opts.warmup_ratio,
            checkpoint_steps=opts.checkpoint_steps,
            logging_steps=opts.logging_steps,
            seed=seed,
            weight_decay=getattr(opts, "weight_decay", 0.0),
        ),
        # Batches larger than memory allows accumulate gradients over micro-batches (GRPO still generates
        # the whole batch per step: TRL's steps_per_generation follows gradient_accumulation_steps).
        gradient_accumulation_steps=accumulation,
        # TRL's default suits billion-parameter models on GPUs; tiny models train faster without it.
        activation_checkpointing=getattr(opts, "gradient_checkpointing", False),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def train_and_save(trainer, checkpoint_dir: Path, final_dir: Path, log_path: Path, tokenizer) -> dict:
    """Train (resuming from the newest checkpoint if there is one), then save the final model atomically."""
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.callbacks import RichProgressCallback

    trainer.remove_callback(PrinterCallback)  # the loss log goes to train_log.jsonl, not stdout
    trainer.add_callback(RichProgressCallback())
    resume = last_checkpoint(checkpoint_dir)
    if resume:
        log.info("resuming from %s", resume)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - start
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    gathered = final_dir.with_name(final_dir.name + ".gathering")
    if sharded:  # every process takes part in gathering sharded weights; Trainer.save_model writes on the main one
        trainer.save_model(str(gathered))
    if is_main():
        write_jsonl(log_path, trainer.state.log_history)
        with atomic_dir(final_dir) as tmp:
            if sharded:
                shutil.copytree(gathered, tmp, dirs_exist_ok=True)
                shutil.rmtree(gathered)
            else:
                trainer.accelerator.unwrap_model(trainer.model).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the final model supersedes them
    barrier()
    return {"steps": trainer.state.global_step, "runtime_s": round(runtime, 2), "resumed_from": resume}
