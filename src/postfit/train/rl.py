"""RL with verifiable rewards: TRL's GRPOTrainer, rewarded by the same verifier that evaluation uses.

Besides the trainer's own log (reward, reward_std, frac_reward_zero_std, completion lengths, KL), each
RL run records where its time goes (generating vs updating, tokens generated per second) and, every
`rl.eval_steps`, greedy accuracy on a fixed held-out subset of id_test, with those samples stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from postfit.config import EvalOptions, RLOptions
from postfit.distributed import is_main
from postfit.io import write_jsonl
from postfit.item import Item
from postfit.layout import RunDir
from postfit.train.common import train_and_save, trl_config, trl_kwargs
from postfit.verify import extract_answer, score_batch
from postfit.verify.extract import code_block, math_answer

log = logging.getLogger(__name__)


def _text(completion) -> str:
    """TRL passes conversational completions as message lists, plain ones as strings."""
    return completion[-1]["content"] if isinstance(completion, list) else completion


def correctness_reward(completions: list, item: list[str], **_) -> list[float]:
    """The evaluation verifier's score of each completion (postfit.verify: procedural, math or code items)."""
    # score_batch is score() item by item, except that code items run in the sandbox in parallel.
    scored = score_batch([Item.from_json(json.loads(it)) for it in item], [_text(c) for c in completions])
    return [value for _, value in scored]


def _follows_format(item: Item | None, text: str) -> bool:
    """The item's answer convention: a last `Answer: ...` line (procedural, or no item), a `\\boxed{}` or
    final-answer line (math), a ```python block, or for a completion-style item (HumanEval) any code at all (code)."""
    domain = "procedural" if item is None else item.domain
    if domain == "math":
        return math_answer(text) is not None
    if domain == "code":
        return code_block(text) is not None or bool(item.meta.get("code_prefix") and text.strip())
    lines = text.strip().splitlines()
    return bool(lines) and extract_answer(lines[-1]) is not None


def format_reward(completions: list, item: list[str] | None = None, **_) -> list[float]:
    """1 when the completion is in its item's answer format (`_follows_format`), else 0."""
    items = [Item.from_json(json.loads(it)) for it in item] if item is not None else [None] * len(completions)
    return [1.0 if _follows_format(it, _text(c)) else 0.0 for it, c in zip(items, completions, strict=True)]


def rl_dataset(items: list[Item]):
    """Conversational prompts plus the item itself (JSON) and its reference answer, which the reward functions
    receive as columns."""
    from datasets import Dataset

    # Everything the verifier may read, not the SFT conversations, traces and targets, which can be tens of
    # thousands of characters per item.
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": it.prompt}],
                "item": json.dumps(replace(it, messages=[], traces=[], target=None).to_json()),
                "answer": it.answer,  # for rl.rewards' functions, as open-r1's read `solution`
            }
            for it in items
        ]
    )


def _trainer_class(rollouts: str = "generate"):
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that measures generation time and generated tokens (the rest of a step is the update), and
        with `rollouts: static` samples its completions with postfit's static-cache decoder."""

        gen_seconds = 0.0
        gen_tokens = 0

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **kwargs):
            if rollouts != "static" or self.use_vllm or images is not None or multimodal_fields:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, **kwargs)
            return static_rollouts(self, prompt_ids), None

        def _generate(self, prompts):
            start = time.perf_counter()
            out = super()._generate(prompts)
            self.gen_seconds += time.perf_counter() - start
            self.gen_tokens += sum(len(ids) for ids in out[1])  # out[1]: completion token ids per completion
            return out

    return TimedGRPOTrainer


def static_rollouts(trainer, prompt_ids: list[list[int]]) -> list[list[int]]:
    """The completions TRL's `model.generate` path would sample (its temperature and top-p; top-k and min-p are off
    in postfit's GRPO), ending at the first of its eos ids, from postfit's static-cache decoder: the prompts left
    padded into one batch, each step replayed as a CUDA graph on a GPU."""
    import torch
    from trl.models import unwrap_model_for_generation
    from trl.trainer.utils import pad

    from postfit.evaluation.static import decode_static

    rows = [torch.tensor(ids) for ids in prompt_ids]
    ids = pad(rows, padding_value=trainer._tokenizer.pad_token_id, padding_side="left")
    mask = pad([torch.ones_like(r) for r in rows], padding_value=0, padding_side="left")
    opts = EvalOptions(max_new_tokens=trainer.max_completion_length, temperature=trainer.temperature,
                       top_p=trainer.top_p)  # fmt: skip
    device = trainer.accelerator.device
    with (
        unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                    gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                    gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs) as model,
        torch.no_grad(),
    ):  # fmt: skip
        return decode_static(model, ids.to(device), mask.to(device), opts, trainer.eos_token_ids, sample=True)


def _heldout_callback(tokenizer, items: list[Item], opts: EvalOptions, every: int, rows: list[dict], timer: dict):
    from transformers import TrainerCallback

    from postfit.evaluation.generate import evaluate_splits

    class HeldOut(TrainerCallback):
        """Greedy pass@1 on held-out id_test items during RL (the trainer's reward is on training prompts)."""

        def _evaluate(self, model, step: int) -> None:
            start = time.perf_counter()
            greedy = opts.model_copy(update={"samples": 0, "samples_by_split": {}})
            for row in evaluate_splits(model, tokenizer, {"id_test": items}, greedy, seed=0):
                rows.append({**row, "step": step})
            model.train()
            timer["heldout_s"] += time.perf_counter() - start

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self._evaluate(model, 0)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                self._evaluate(model, state.global_step)

    return HeldOut()


def vllm_kwargs(opts: RLOptions) -> dict:
    """TRL's GRPOConfig options for `rl.vllm` (none without it: rollouts from transformers `generate`)."""
    v = opts.vllm
    if v is None:
        return {}
    return {
        "use_vllm": True,
        "vllm_mode": v.mode,
        "vllm_gpu_memory_utilization": v.gpu_memory_utilization,
        "vllm_tensor_parallel_size": v.tensor_parallel_size,
        "vllm_server_host": v.server_host,
        "vllm_server_port": v.server_port,
    }


def reward_functions(opts: RLOptions) -> list[tuple[Callable, float]]:
    """(function, weight) of every reward: the verifier's, the format reward where `rl.format_weight` is set, then
    `rl.rewards` (imported; they were checked when the study was read)."""
    from postfit.config.training import import_reward

    out = [(correctness_reward, 1.0)] + ([(format_reward, opts.format_weight)] if opts.format_weight else [])
    return out + [(import_reward(r.function), r.weight) for r in opts.rewards]


def grpo_config(opts: RLOptions, checkpoints: Path, seed: int):
    """The GRPOConfig of an RL run: postfit's options, then `rl.trainer`'s fields."""
    from trl import GRPOConfig

    weights = [w for _, w in reward_functions(opts)]
    kwargs = dict(
        **trl_kwargs(checkpoints, opts, seed, "constant_with_warmup", key="rl"),
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        beta=opts.beta,
        epsilon=opts.epsilon,
        loss_type=opts.loss_type,
        reward_weights=weights if len(weights) > 1 else None,
        use_transformers_continuous_batching=opts.rollouts == "continuous_batching",
        **vllm_kwargs(opts),
    )
    return trl_config(GRPOConfig, "rl", kwargs, opts.trainer)


def train_rl(model, tokenizer, items: list[Item], heldout: list[Item], opts: RLOptions, eval_opts: EvalOptions,
             run_dir: Path, seed: int) -> dict:  # fmt: skip
    """GRPO on `items` in place; final weights to run_dir/model, logs to train_log.jsonl and heldout.jsonl."""
    out = RunDir(run_dir)
    args = grpo_config(opts, out.checkpoints, seed)
    trainer = _trainer_class(opts.rollouts)(
        model=model,
        reward_funcs=[f for f, _ in reward_functions(opts)],
        args=args,
        train_dataset=rl_dataset(items),
        processing_class=tokenizer,
    )
    heldout_rows: list[dict] = []
    timer = {"heldout_s": 0.0}
    trainer.add_callback(_heldout_callback(tokenizer, heldout, eval_opts, opts.eval_steps, heldout_rows, timer))
    stats = train_and_save(trainer, out.checkpoints, out.model, out.train_log, tokenizer, "grpo",
                           f"{out.name}, {opts.steps} steps on {len(items)} prompts")  # fmt: skip
    if is_main():
        write_jsonl(out.heldout, heldout_rows)
    train_s = stats["runtime_s"] - timer["heldout_s"]
    stats.update(
        generate_s=round(trainer.gen_seconds, 2),
        update_s=round(train_s - trainer.gen_seconds, 2),
        heldout_eval_s=round(timer["heldout_s"], 2),
        generated_tokens=trainer.gen_tokens,
        generated_tokens_per_s=round(trainer.gen_tokens / max(trainer.gen_seconds, 1e-9), 1),
    )
    return stats
