"""open-r1 recipes as postfit study files (`postfit import-recipe FILE`).

An open-r1 recipe is one YAML file of TRL's field names (ModelConfig, ScriptArguments, SFTConfig or GRPOConfig)
and a few of open-r1's own (`system_prompt`, `reward_funcs`, ...). The study it becomes compares the recipe's model
pre-trained and randomly initialised after the recipe's one trainer (`sft` or `rl`): the model, dataset and the
settings postfit has options for go to those options; every other field of TRL's config class goes to
`sft.trainer` / `rl.trainer` as it is; what has no postfit meaning is left out and named, with the reason, in the
notes the command prints on stderr. The study is validated before it is returned.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from postfit.config.training import POSTFIT_SETS, trl_config_class
from postfit.errors import UserError

# recipe field -> postfit option under `sft.` / `rl.`, for both trainers and for each one
_BOTH = {"learning_rate": "learning_rate", "warmup_ratio": "warmup_ratio", "logging_steps": "logging_steps",
         "save_steps": "checkpoint_steps", "gradient_checkpointing": "gradient_checkpointing",
         "use_liger_kernel": "liger", "use_liger": "liger"}  # fmt: skip
_SFT = {**_BOTH, "max_length": "max_length", "max_seq_length": "max_length", "weight_decay": "weight_decay",
        "lr_scheduler_type": "lr_scheduler"}  # fmt: skip
_RL = {**_BOTH, "num_generations": "num_generations", "max_completion_length": "max_completion_length",
       "temperature": "temperature", "beta": "beta", "epsilon": "epsilon", "loss_type": "loss_type"}  # fmt: skip
_VLLM = {"vllm_mode": "mode", "vllm_gpu_memory_utilization": "gpu_memory_utilization",
         "vllm_tensor_parallel_size": "tensor_parallel_size", "vllm_server_host": "server_host",
         "vllm_server_port": "server_port"}  # fmt: skip
# Read elsewhere in `import_recipe` (model, data, batch, steps, seed, vLLM, rewards).
_READ = {"model_name_or_path", "chat_template", "torch_dtype", "dtype", "attn_implementation", "dataset_name",
         "dataset_config", "dataset_configs", "dataset_train_split", "dataset_prompt_column", "max_steps",
         "per_device_train_batch_size", "gradient_accumulation_steps", "num_processes", "seed", "use_vllm",
         "reward_funcs", "reward_weights", "lr_scheduler_kwargs", *_VLLM}  # fmt: skip
_WHY = {
    "num_train_epochs": "postfit trains a fixed number of optimiser steps: set {k}.steps (rows x epochs / batch)",
    "system_prompt": "postfit asks for a \\boxed{{}} answer in the user turn and has no system prompt",
    "model_revision": "model.name_or_path takes no revision; pin it with a local snapshot directory",
    "output_dir": "the study's directory holds every run", "overwrite_output_dir": "runs resume, never overwrite",
    "report_to": "trackers are report.to (tensorboard, trackio, wandb)",
    "bf16": "postfit trains with bf16 autocast wherever the GPU has it (model.dtype: the weights)",
}  # fmt: skip


def _kind(recipe: dict, path: Path) -> str:
    """'rl' for a GRPO recipe (a field only GRPOConfig has, or reward functions), else 'sft'."""
    import trl

    sft = {f.name for f in dataclasses.fields(trl.SFTConfig)}
    grpo_only = {f.name for f in dataclasses.fields(trl.GRPOConfig)} - sft
    return "rl" if "grpo" in path.parts or set(recipe) & (grpo_only | {"reward_funcs"}) else "sft"


def _model(recipe: dict, notes: list[str]) -> dict:
    from postfit.config.stages import ModelSpec

    if not recipe.get("model_name_or_path"):
        raise UserError("model_name_or_path: the recipe names no model")
    model = {"name_or_path": recipe["model_name_or_path"]}
    dtype = recipe.get("torch_dtype", recipe.get("dtype"))
    if dtype in ("float32", "bfloat16"):
        model["dtype"] = dtype
    elif dtype is not None:
        notes.append(f"torch_dtype: {dtype} left out (model.dtype is float32 or bfloat16)")
    attn = recipe.get("attn_implementation")
    if attn is not None:
        try:
            model["attn_implementation"] = ModelSpec(name_or_path="x", attn_implementation=attn).attn_implementation
        except ValueError:
            notes.append(f"attn_implementation: {attn} left out (not one postfit offers)")
    if recipe.get("chat_template"):
        model["chat_template"] = recipe["chat_template"]
    return model


def _data(recipe: dict, kind: str, notes: list[str]) -> dict:
    from postfit.data.sources import SOURCES

    name = recipe.get("dataset_name")
    if not name:
        raise UserError("dataset_name: the recipe names no dataset (a `dataset_mixture` has no postfit equivalent)")
    subset = recipe.get("dataset_config") or (recipe.get("dataset_configs") or [None])[0]
    preset = next((p for p, s in SOURCES.items() if s.path == name and subset in (None, s.config)), None)
    block = {"source": preset or name}
    if subset and not preset:
        block["subset"] = subset
    if recipe.get("dataset_train_split", "train") != "train":
        block["split"] = recipe["dataset_train_split"]
    if kind == "rl" and not preset:
        # open-r1's GRPO asks the prompt column and rewards against `solution` (math-verify finds its answer)
        column = recipe.get("dataset_prompt_column", "prompt")
        block["columns"] = {"prompt" if column == "prompt" else "question": column, "answer": "solution"}
        notes.append(f"data.rl.columns: {block['columns']} (open-r1's prompt column and the `solution` column its "
                     "accuracy reward reads); check the dataset's columns")  # fmt: skip
    return block


def _batch(recipe: dict, kind: str, options: dict, notes: list[str]) -> None:
    micro = recipe.get("per_device_train_batch_size")
    if micro is None:
        return
    procs = recipe.get("num_processes", 1)
    batch = micro * recipe.get("gradient_accumulation_steps", 1) * procs
    group = options.get("num_generations", 8)
    if kind == "rl" and batch % group:
        batch += group - batch % group
        notes.append(f"rl.batch_size rounded up to {batch}, a multiple of num_generations ({group})")
    options["batch_size"] = batch
    if batch % micro == 0 and batch > micro:
        options["micro_batch_size"] = micro
    notes.append(
        f"{kind}.batch_size: {batch} = per_device_train_batch_size x gradient_accumulation_steps x "
        f"{procs} process(es) (num_processes); postfit's batch is global, so check the recipe's GPU count"
    )


def _options(recipe: dict, kind: str, notes: list[str]) -> dict:
    from postfit.config.training import RLOptions, SFTOptions

    table, model = (_SFT, SFTOptions) if kind == "sft" else (_RL, RLOptions)
    options = {table[k]: v for k, v in recipe.items() if k in table}
    for key, field in (("lr_scheduler", "lr_scheduler_type"), ("loss_type", "loss_type")):
        allowed = getattr(model.model_fields.get(key), "annotation", None)
        if key in options and options[key] not in getattr(allowed, "__args__", (options[key],)):
            choices = ", ".join(allowed.__args__)
            notes.append(f"{field}: left out, {options.pop(key)} is none of postfit's {kind}.{key} ({choices})")
    if kwargs := recipe.get("lr_scheduler_kwargs"):
        if "lr_scheduler" in options:
            options["trainer"] = {"lr_scheduler_kwargs": kwargs}
        else:
            notes.append("lr_scheduler_kwargs: left out with lr_scheduler_type")
    if (recipe.get("max_steps") or -1) > 0:
        options["steps"] = recipe["max_steps"]
    if recipe.get("use_vllm") and kind == "rl":
        options["vllm"] = {v: recipe[k] for k, v in _VLLM.items() if k in recipe}
    elif recipe.get("use_vllm"):
        notes.append("use_vllm: left out, SFT generates nothing")
    _batch(recipe, kind, options, notes)
    if kind == "rl":
        _rewards(recipe, notes)
    return options


def _rewards(recipe: dict, notes: list[str]) -> None:
    funcs = [f for f in recipe.get("reward_funcs") or [] if f != "accuracy"]
    if funcs:
        notes.append(f"reward_funcs: {', '.join(funcs)} left out (open-r1's registry names); postfit's verifier "
                     "replaces `accuracy`; add others as rl.rewards entries (module:function, e.g. "
                     "open_r1.rewards:format_reward where open-r1 is installed) and rl.format_weight")  # fmt: skip
    if recipe.get("reward_weights"):
        notes.append("reward_weights left out (rl.rewards[].weight; the verifier's reward weighs 1)")


def import_recipe(path: str | Path) -> tuple[dict, list[str]]:
    """(study file as a dict, notes naming what has no postfit meaning) of the open-r1 recipe at `path`."""
    import trl

    from postfit.config.study import parse_study

    path = Path(path)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}: cannot read the recipe ({type(e).__name__}: {e})") from None
    if not isinstance(recipe, dict):
        raise UserError(f"{path}: a recipe is a mapping of TRL's field names, got {type(recipe).__name__}")
    kind = _kind(recipe, path)
    notes = [f"{path}: {'a GRPO' if kind == 'rl' else 'an SFT'} recipe -> grid.recipes [{kind}]"]
    options = _options(recipe, kind, notes)
    cls = trl_config_class(kind)
    fields = {f.name for f in dataclasses.fields(cls)}
    passed = dict(options.pop("trainer", {}))
    for key, value in recipe.items():
        if key in _READ or key in (_SFT if kind == "sft" else _RL):
            continue
        if key in _WHY:
            notes.append(f"{key}: left out, {_WHY[key].format(k=kind)}")
        elif key in fields and key not in POSTFIT_SETS[kind]:
            passed[key] = value
        elif key in fields:
            notes.append(f"{key}: left out, set by {POSTFIT_SETS[kind][key]}")
        else:
            where = f"TRL {trl.__version__}'s {cls.__name__}"
            notes.append(f"{key}: left out, no postfit meaning (not a field of {where})")
    if passed:
        options["trainer"] = passed
    study = {
        "name": "-".join([*path.parent.parts[-2:], path.stem]).replace("/", "-") or "recipe",
        "description": f"Imported from the open-r1 recipe {path.name} by postfit import-recipe.",
        "model": _model(recipe, notes),
        "requires_gpu": True,
        "data": {kind: _data(recipe, kind, notes)},
        "grid": {"inits": ["pretrained", "random"], "recipes": [kind], "seeds": [recipe.get("seed", 0)]},
        kind: options,
        "eval": {"benchmarks": ["math500", "aime24"]},
    }
    notes.append("eval.benchmarks: math500, aime24 (the recipe names none; open-r1 reports these and others)")
    parse_study(study, f"the study made from {path}")
    return study, notes
