"""What pre-training and SFT share: trainer arguments, resumable checkpoints, atomic final save."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from postfit.distributed import barrier, is_main, world_size
from postfit.errors import UserError
from postfit.io import atomic_dir, write_jsonl
from postfit.train.tracking import report_kwargs
from postfit.ui import progress_callback, stage

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
        **report_kwargs(),  # "none", or report.to around a stage (train/tracking.py)
        disable_tqdm=True,  # postfit.ui.progress_callback replaces tqdm
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
    out = dict(
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
        use_liger_kernel=getattr(opts, "liger", False),
        torch_compile=getattr(opts, "compile", False),
    )
    if not hasattr(opts, "weight_decay"):  # RL has no option of its own: TRL's default, or rl.trainer's
        del out["weight_decay"]
    return out


def trl_config(cls, key: str, kwargs: dict, passed: dict):
    """TRL's config `cls` from postfit's settings `kwargs` and the study's pass-through fields `passed` (`KEY.trainer`,
    checked against TRL's fields and postfit's own when the study was read); TRL's refusal of a value is a UserError
    naming the key."""
    try:
        return cls(**kwargs, **passed)
    except (ValueError, TypeError) as e:
        if not passed:
            raise
        why = f"{type(e).__name__}: {e}"
        raise UserError(f"{key}.trainer: TRL's {cls.__name__} refused these settings ({why})") from None


def require_liger(key: str) -> None:
    """UserError naming `key` and the fix when Liger's kernels cannot run: not installed, or no CUDA device."""
    import importlib.util

    import torch

    if importlib.util.find_spec("liger_kernel") is None:
        raise UserError(f"{key}: liger-kernel is not installed; install the liger extra (pip install -e '.[liger]')")
    if not torch.cuda.is_available():
        raise UserError(f"{key}: Liger's kernels need a CUDA GPU and none is visible; set {key}: false")


def complete_checkpoint(path: Path) -> bool:
    """True for a checkpoint the Trainer finished saving: `Trainer._save_checkpoint` writes trainer_state.json last,
    after the weights, optimizer, scheduler and RNG states, so a whole, parseable one (and weights) marks it done."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return has_weights(path)


def has_weights(path: Path) -> bool:
    return any(Path(path).glob("*.safetensors")) or any(Path(path).glob("pytorch_model*"))


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint under `output_dir`; newer ones that an interruption left half-written are
    removed (by the main process), with a log line, so the Trainer never tries to resume from them."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    prefix = f"{PREFIX_CHECKPOINT_DIR}-"
    steps = {p: p.name[len(prefix) :] for p in Path(output_dir).glob(f"{prefix}*") if p.is_dir()}
    found = {p: int(step) for p, step in steps.items() if step.isdigit()}
    for path in sorted(found, key=found.get, reverse=True):
        if complete_checkpoint(path):
            return str(path)
        log.warning("%s: incomplete checkpoint (its save was interrupted); removed, resuming from an earlier one",
                    path)  # fmt: skip
        if is_main():
            shutil.rmtree(path, ignore_errors=True)
    return None


def discard_checkpoints(checkpoint_dir: Path) -> None:
    """Remove a run's checkpoints once the caller has recorded that training finished (train.json, meta.json): until
    then a kill after the final save resumes from the last checkpoint (no steps left) instead of from scratch."""
    if is_main():
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def train_and_save(trainer, checkpoint_dir: Path, final_dir: Path, log_path: Path, tokenizer, name: str,
                   detail: str) -> dict:  # fmt: skip
    """Train (resuming from the newest complete checkpoint if there is one), then save the final model atomically;
    the checkpoints stay until `discard_checkpoints`. Logged as the stage `name` (postfit.ui.stage)."""
    with stage(name, detail):
        return _train_and_save(
            trainer, checkpoint_dir, final_dir, log_path, tokenizer, f"{name} {final_dir.parent.name}"
        )


def _train_and_save(trainer, checkpoint_dir: Path, final_dir: Path, log_path: Path, tokenizer, label: str) -> dict:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the loss log goes to train_log.jsonl, not stdout
    trainer.add_callback(progress_callback(label))
    timer = step_timer()
    trainer.add_callback(timer)
    resume = last_checkpoint(checkpoint_dir)
    if resume:
        log.info("resuming from %s", resume)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - start
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    gathered = final_dir.with_name(f".{final_dir.name}.gathering.tmp")  # io.remove_temporaries clears a leftover
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
    barrier()
    return {"steps": trainer.state.global_step, "runtime_s": round(runtime, 2), "resumed_from": resume,
            "step_s": timer.steady()}  # fmt: skip


def step_timer():
    """A Trainer callback timing the optimiser steps; `steady()` is the mean time of the later half of the steps
    (s), the rate once start-up costs (compilation, the allocator, the first batches) are over; None below 4 steps.
    A mean over many steps, not single steps: a GPU runs ahead of the Python that queues its work."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def steady(self) -> float | None:
            n, mid = len(self.ends), len(self.ends) // 2
            return round((self.ends[-1] - self.ends[mid]) / (n - 1 - mid), 5) if n >= 4 else None

    return StepTimer()
