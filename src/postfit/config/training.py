"""The options of the training stages of a study: SFT and RL (GRPO), with what they share for memory and speed.

The field descriptions are the manual, as for every block (postfit.config.stages). Any other field of TRL's
SFTConfig / GRPOConfig passes through `sft.trainer` / `rl.trainer`, checked against TRL's own dataclass; a field
postfit sets from its own options (`POSTFIT_SETS`) is an error naming the option to set instead, so one setting
never has two homes. `rl.rewards` adds reward functions (`module:function`) beside the verifier's.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from postfit.config.stages import Strict

_HUB = "postfit (trained models stay in the study directory; push one yourself)"
_EVAL = "postfit (its own evaluation: eval.*, rl.eval_steps)"
_BF16 = "postfit (bf16 autocast where the GPU has it; model.dtype for the weights)"
_SHARED = {
    "output_dir": "postfit (the run's checkpoints/ folder)", "max_steps": "{k}.steps",
    "per_device_train_batch_size": "{k}.batch_size and {k}.micro_batch_size",
    "gradient_accumulation_steps": "{k}.batch_size and {k}.micro_batch_size", "learning_rate": "{k}.learning_rate",
    "warmup_steps": "{k}.warmup_ratio", "warmup_ratio": "{k}.warmup_ratio", "logging_steps": "{k}.logging_steps",
    "logging_strategy": "{k}.logging_steps", "save_steps": "{k}.checkpoint_steps",
    "save_strategy": "{k}.checkpoint_steps", "save_total_limit": "postfit (the one checkpoint a run resumes from)",
    "resume_from_checkpoint": "postfit (a run resumes from its own newest complete checkpoint)",
    "report_to": "report.to", "run_name": "report.to (the run's name)", "project": "report.to (the study's name)",
    "logging_dir": "report.to (DIR/tensorboard)", "disable_tqdm": "postfit (its own progress display)",
    "seed": "grid.seeds", "data_seed": "grid.seeds",
    "dataloader_num_workers": "postfit (0: batches made in the training process)",
    "dataloader_pin_memory": "postfit (off)", "activation_checkpointing": "{k}.gradient_checkpointing",
    "gradient_checkpointing": "{k}.gradient_checkpointing", "use_liger_kernel": "{k}.liger",
    "torch_compile": "{k}.compile", "bf16": _BF16,
    **dict.fromkeys(("push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo",
                     "hub_always_push", "hub_revision"), _HUB),
    **dict.fromkeys(("do_eval", "eval_strategy", "eval_steps", "eval_on_start", "per_device_eval_batch_size"), _EVAL),
}  # fmt: skip
# TRL config field -> the postfit option (or postfit itself, and why) that sets it: `{k}.trainer` refuses these.
POSTFIT_SETS: dict[str, dict[str, str]] = {
    "sft": {**{f: w.format(k="sft") for f, w in _SHARED.items()}, "lr_scheduler_type": "sft.lr_scheduler",
            "weight_decay": "sft.weight_decay", "max_length": "sft.max_length",
            "completion_only_loss": "postfit (the loss covers the reply)", "packing": "postfit (no packing)",
            "padding_free": "sft.padding_free"},
    "rl": {**{f: w.format(k="rl") for f, w in _SHARED.items()},
           "lr_scheduler_type": "postfit (constant after rl.warmup_ratio)", "num_generations": "rl.num_generations",
           "max_completion_length": "rl.max_completion_length", "temperature": "rl.temperature", "beta": "rl.beta",
           "epsilon": "rl.epsilon", "loss_type": "rl.loss_type", "reward_weights": "rl.rewards and rl.format_weight",
           "use_transformers_continuous_batching": "rl.rollouts",
           **dict.fromkeys(("generation_batch_size", "steps_per_generation"),
                           "rl.batch_size and rl.micro_batch_size (a step generates its whole batch)"),
           **dict.fromkeys(("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size",
                            "vllm_server_host", "vllm_server_port"), "rl.vllm")},
}  # fmt: skip


def trl_config_class(key: str) -> type:
    """TRL's SFTConfig (key "sft") or GRPOConfig (key "rl")."""
    import trl

    return trl.SFTConfig if key == "sft" else trl.GRPOConfig


def clash(key: str, name: str) -> str:
    """Why `KEY.trainer.NAME` is refused: the postfit option that sets TRL's field, or postfit's own reason."""
    by = POSTFIT_SETS[key][name]
    return f"{key}.trainer.{name}: set by {by}; " + ("remove it" if by.startswith("postfit") else "set that instead")


def check_trainer(fields: dict[str, Any], key: str) -> dict[str, Any]:
    """`fields` if each is a field of TRL's config class that postfit leaves to the user; ValueError naming each
    unknown field and the TRL version, or each field postfit sets and the option that sets it."""
    if not fields:
        return fields
    import trl

    cls = trl_config_class(key)
    known = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    errors = []
    for name, value in fields.items():
        if name in known and isinstance(value, str) and "float" in known[name]:
            fields[name] = _number(value)  # YAML (1.1) reads 1e-5 as a string; TRL's field is a float
        if name not in known:
            close = difflib.get_close_matches(name, known, 1)
            errors.append(f"unknown field {name!r} of TRL {trl.__version__}'s {cls.__name__}"
                          + (f" (did you mean {close[0]!r}?)" if close else ""))  # fmt: skip
        elif name in POSTFIT_SETS[key]:
            errors.append(clash(key, name))
    if errors:
        raise ValueError("; ".join(errors))
    return fields


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def import_reward(spec: str) -> Callable:
    """The function `module:function` names, imported from the working directory or sys.path; ValueError saying
    why it cannot be."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"expected module:function (e.g. my_rewards:length_penalty), got {spec!r}")
    if os.getcwd() not in sys.path:  # `postfit` as a console script does not put the working directory first
        sys.path.append(os.getcwd())
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, SyntaxError) as e:
        raise ValueError(f"cannot import {spec!r} ({type(e).__name__}: {e})") from None
    if not callable(fn):
        raise ValueError(f"{spec!r} is not a function")
    return fn


class RewardSpec(Strict):
    """A reward function beside the verifier's, called as TRL calls rewards."""

    function: str = Field(
        description="`module:function`, importable from the working directory or PYTHONPATH, called with TRL's "
        "reward signature `f(prompts, completions, completion_ids, **columns) -> list[float | None]`; the columns "
        "are `item` (the postfit item, JSON) and `answer` (its reference answer). Logged as `rewards/<function "
        "name>/mean`."
    )
    weight: float = Field(1.0, description="Its weight in the summed reward (TRL's `reward_weights`; the "
                          "verifier's reward weighs 1).")  # fmt: skip

    @field_validator("function")
    @classmethod
    def _importable(cls, v: str) -> str:
        import_reward(v)
        return v


class MemoryOptions(Strict):
    """What SFT and RL share for fitting large models in memory."""

    micro_batch_size: int | None = Field(
        None,
        gt=0,
        description="Sequences per forward/backward pass; `batch_size` must be a multiple (the rest is "
        "gradient accumulation; GRPO still generates the whole batch each step). null: the whole batch at once.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, ~30% slower): long sequences."
    )
    liger: bool = Field(
        False,
        description="Liger's Triton kernels (TRL's `use_liger_kernel`: fused RMSNorm, RoPE, SwiGLU and a linear + "
        "cross-entropy that never holds the logits); CUDA and the `liger` extra.",
    )
    compile: bool = Field(False, description="`torch.compile` the model for training (transformers' `torch_compile`).")

    @model_validator(mode="after")
    def _micro_divides(self) -> MemoryOptions:
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size "
                             f"({self.micro_batch_size})")  # fmt: skip
        return self


class SFTOptions(MemoryOptions):
    """Supervised fine-tuning through TRL's SFTTrainer (completion-only loss, the model's chat template)."""

    steps: int = Field(600, gt=0, description="Optimiser steps.")
    batch_size: int = Field(32, gt=0, description="Examples per optimiser step.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field("cosine", description="LR schedule.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_length: int = Field(256, ge=16, description="Longest training sequence in tokens (longer ones truncated).")
    checkpoint_steps: int = Field(100, gt=0, description="Save a resumable checkpoint every this many steps.")
    logging_steps: int = Field(10, gt=0, description="Log the training loss every this many steps.")
    padding_free: bool | None = Field(
        None,
        description="Each batch as one row of its sequences laid end to end, with position ids restarting per "
        "sequence and attention kept inside each (TRL's `padding_free`): no compute on padding, the same loss as "
        "padded rows (to float rounding). null: on where `model.attn_implementation` attends per sequence "
        "(flash, flex); with sdpa or eager attention a batch-long row costs more than its padding saves.",
    )
    trainer: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other field of TRL's SFTConfig, passed as it is (e.g. `max_grad_norm: 0.2`, "
        "`neftune_noise_alpha: 5`); an unknown field, or one that a postfit option sets, is an error naming it. "
        "In the fingerprint.",
    )

    @field_validator("trainer")
    @classmethod
    def _trl_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_trainer(v, "sft")


class VLLMOptions(Strict):
    """GRPO rollouts generated by vLLM through TRL (`use_vllm`); CUDA only, with the `gpu` extra installed."""

    mode: Literal["colocate", "server"] = Field(
        "colocate",
        description="`colocate`: vLLM shares each training GPU (TRL's default; reported 1.3-1.7x faster than server "
        "mode on 8xH100); `server`: a separate `trl vllm-serve` process on GPUs of its own.",
    )
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="Fraction of each GPU's memory vLLM may take (colocate mode)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one vLLM engine spans (colocate mode).")
    server_host: str = Field("127.0.0.1", description="Host of `trl vllm-serve` (server mode; not fingerprinted).")
    server_port: int = Field(8000, gt=0, description="Port of `trl vllm-serve` (server mode; not fingerprinted).")


class RLOptions(MemoryOptions):
    """RL with verifiable rewards through TRL's GRPOTrainer; the reward is the evaluation verifier's score."""

    steps: int = Field(100, gt=0, description="Optimiser steps.")
    batch_size: int = Field(32, gt=0, description="Completions per step (prompts per step x num_generations).")
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the GRPO group size).")
    learning_rate: float = Field(2e-4, gt=0, description="Learning rate (constant after warm-up).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps spent warming up.")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting model (0: no reference model).")
    epsilon: float = Field(0.2, gt=0, description="Clipping range of the policy ratio.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field("dapo", description="TRL's GRPO loss variant.")
    max_completion_length: int = Field(56, gt=0, description="Longest sampled completion in tokens.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    vllm: VLLMOptions | None = Field(None, description="Generate the rollouts with vLLM (GPU); null: transformers.")
    rollouts: Literal["generate", "static", "continuous_batching"] = Field(
        "generate",
        description="Without vLLM, how the rollouts are generated: `generate` (TRL's `model.generate`), `static` "
        "(postfit's static-cache decoder, evaluation's loop: CUDA graphs on a GPU) or `continuous_batching` "
        "(transformers' paged continuous batching, TRL's `use_transformers_continuous_batching`).",
    )
    format_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of a format reward: 1 when a completion is in its item's answer format (a last "
        "`Answer: ...` line for procedural items, a `\\boxed{}` or final-answer line for math, a code block for "
        "code); 0 turns it off.",
    )
    rewards: list[RewardSpec] = Field(
        default_factory=list, description="Reward functions added to the verifier's (and the format reward)."
    )
    trainer: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other field of TRL's GRPOConfig, passed as it is (e.g. `mask_truncated_completions: "
        "true`, `top_p: 0.95`); an unknown field, or one that a postfit option sets, is an error naming it. In the "
        "fingerprint.",
    )
    eval_steps: int = Field(25, gt=0, description="Greedy held-out id_test accuracy every this many steps.")
    heldout_items: int = Field(64, gt=0, description="id_test items used for that held-out curve.")
    checkpoint_steps: int = Field(50, gt=0, description="Save a resumable checkpoint every this many steps.")
    logging_steps: int = Field(5, gt=0, description="Log reward, lengths and zero-variance groups every N steps.")

    @field_validator("trainer")
    @classmethod
    def _trl_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_trainer(v, "rl")

    @model_validator(mode="after")
    def _reward_names_differ(self) -> RLOptions:
        names = ["correctness_reward", "format_reward"] + [r.function.rpartition(":")[2] for r in self.rewards]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"rewards: two reward functions named {twice[0]!r} (TRL logs each as "
                             "rewards/<name>; correctness_reward and format_reward are postfit's)")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _groups_fit(self) -> RLOptions:
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations})")  # fmt: skip
        return self
