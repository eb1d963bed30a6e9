"""`postfit plan`: what a study will cost, from its file alone (no weights, no data are loaded); the CLI then runs
`postfit run`'s checks (study/checks.py) and says whether run would refuse the study here (`Plan.refused`).

Runs are the study's own grid (`study.grid_runs`), so any grid axis shows up here. Token counts come
from the config (steps x batch x lengths): upper bounds wherever a length is a maximum (SFT sequences,
sampled completions). FLOPs use the usual dense-transformer estimate: 6·N·D to train on D tokens
(forward and backward), 2·N·D to generate or score D tokens (forward only). Attention's extra cost at
long context and prompt tokens during generation are left out, so long-context stages are
underestimated by that part.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from postfit.config import Study
from postfit.config.recipes import RECIPES, RL, SFT

# Published shapes (each model's config.json on the Hub), used when no config.json is cached. The
# `-Base` and post-trained checkpoints of one size share the architecture. Qwen3 uses head_dim 128
# and ties its embeddings up to 4B.
_QWEN3 = dict(model_type="qwen3", head_dim=128, num_key_value_heads=8, vocab_size=151936,
              max_position_embeddings=32768)  # fmt: skip
KNOWN_ARCHITECTURES: dict[str, dict] = {
    "Qwen/Qwen3-0.6B": dict(_QWEN3, hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                            intermediate_size=3072, tie_word_embeddings=True),
    "Qwen/Qwen3-1.7B": dict(_QWEN3, hidden_size=2048, num_hidden_layers=28, num_attention_heads=16,
                            intermediate_size=6144, tie_word_embeddings=True),
    "Qwen/Qwen3-4B": dict(_QWEN3, hidden_size=2560, num_hidden_layers=36, num_attention_heads=32,
                          intermediate_size=9728, tie_word_embeddings=True),
    "Qwen/Qwen3-8B": dict(_QWEN3, hidden_size=4096, num_hidden_layers=36, num_attention_heads=32,
                          intermediate_size=12288, tie_word_embeddings=False),
}  # fmt: skip

# Test-set sizes as published, for the token bounds only (the loaders read the data itself): the splits
# postfit.data.benchmarks loads (MBPP `full` test; LiveCodeBench `v4_v5`, the 268 problems of 2024-08 to 2025-01).
BENCHMARK_SIZES: dict[str, int] = {
    "gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "humaneval": 164, "mbpp": 500,
    "livecodebench": 268,
}  # fmt: skip

TRAIN, FORWARD = 6, 2  # FLOPs per parameter per token

# Training state per parameter in bf16 mixed precision: bf16 weights and gradients, fp32 master weights and Adam
# moments (4 + 4 + 4). Each shipped launch config (configs/accelerate/) divides some of them over the GPUs.
STATE_BYTES = {"weights": 2, "gradients": 2, "optimizer": 12}
SHARDED = {
    "ddp": (),
    "zero2": ("gradients", "optimizer"),
    "zero3": ("weights", "gradients", "optimizer"),
    "fsdp": ("weights", "gradients", "optimizer"),  # full sharding (reshard after forward), as fsdp.yaml sets
}
PEAK_FLOPS, MFU = 989e12, 0.40  # H100 SXM bf16 dense peak; a typical fraction reached (nanochat d20: ~47%)


def memory_per_gpu(n_params: int, gpus: int) -> dict[str, int]:
    """Bytes of weights + gradients + optimiser states on each of `gpus` GPUs, per shipped launch config
    (activations, KV caches and a reference model not included)."""
    return {name: sum(b * n_params // (gpus if part in parts else 1) for part, b in STATE_BYTES.items())
            for name, parts in SHARDED.items()}  # fmt: skip


def gpu_hours(flops: int, mfu: float = MFU) -> float:
    """GPU-hours to do `flops` at `mfu` of an H100's bf16 peak (the same on 1 GPU or 8)."""
    return flops / (PEAK_FLOPS * mfu) / 3600


@dataclass
class Stage:
    """One kind of work: `runs` times `tokens_each` tokens, each costing `flops_per_param` x N FLOPs."""

    name: str
    runs: int
    tokens_each: int
    flops_per_param: int
    upper_bound: bool
    note: str

    @property
    def tokens(self) -> int:
        return self.runs * self.tokens_each

    def flops(self, n_params: int | None) -> int | None:
        return None if n_params is None else self.flops_per_param * n_params * self.tokens


@dataclass
class Plan:
    study: str
    source: str
    requires_gpu: bool
    model: str
    params: int | None
    params_from: str
    axes: dict[str, int]
    runs: list[str]
    stages: list[Stage] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # work whose size the file alone does not fix
    data: list[str] = field(default_factory=list)  # the rows of each real data source, and whether they overlap
    gpus: int = 8  # the GPUs the memory lines divide by (`postfit plan --gpus`)
    refused: str | None = None  # why `postfit run` would refuse the study here (study/checks.py), if it would

    @property
    def total_flops(self) -> int | None:
        return None if self.params is None else sum(s.flops(self.params) for s in self.stages)

    def to_json(self) -> dict:
        stages = [{**dataclasses.asdict(s), "tokens": s.tokens, "flops": s.flops(self.params)} for s in self.stages]
        out = {**dataclasses.asdict(self), "stages": stages, "total_flops": self.total_flops}
        if self.requires_gpu and self.params is not None:
            out["memory_per_gpu"] = memory_per_gpu(self.params, self.gpus)
            out["gpu_hours"] = {"mfu": MFU, "peak_flops": PEAK_FLOPS, "hours": gpu_hours(self.total_flops)}
        return out


def _meta_count(config) -> int:
    """Parameters of a config's model built on the meta device: shapes only, no memory, no weights."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied embeddings count once


def parameter_count(study: Study) -> tuple[int | None, str]:
    """(N, where it came from): a preset's config, a local or cached config.json, the table above, or unknown."""
    from transformers import AutoConfig, LlamaConfig, Qwen3Config

    from postfit.models import PRESETS

    spec = study.model
    if spec.preset is not None:
        # postfit's BPE tokenizer is trained to the preset's vocab size, so this is the config pretrain.py builds.
        cls = {"qwen3": Qwen3Config, "llama": LlamaConfig}[spec.arch]
        config = cls(**PRESETS[spec.preset], tie_word_embeddings=True, max_position_embeddings=study.pretrain.seq_len)
        return _meta_count(config), f"preset {spec.preset} ({spec.arch})"
    name = spec.name_or_path
    local = Path(name) / "config.json"
    if local.is_file():
        return _meta_count(AutoConfig.from_pretrained(str(local.parent))), f"{local}"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return _meta_count(AutoConfig.from_pretrained(cached)), f"cached {cached}"
    known = KNOWN_ARCHITECTURES.get(name.removesuffix("-Base"))
    if known is not None:
        values = dict(known)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        return _meta_count(config), f"postfit's table of published configs: {name.removesuffix('-Base')}"
    return None, "unknown N: no config.json cached and not in postfit's table of known architectures"


def pretrain_tokens(study: Study) -> int:
    """Tokens postfit's pre-training trains on: whole batches of whole sequences within the budget (pretrain.py)."""
    cfg = study.pretrain
    blocks = max(1, cfg.tokens // cfg.seq_len)
    return max(1, blocks // cfg.batch_size) * cfg.batch_size * cfg.seq_len


def _procedural_items(study: Study) -> dict[str, int]:
    """Items per procedural evaluation split: test_size each."""
    tasks = study.tasks
    return {split: tasks.test_size for split in tasks.eval_splits()} if tasks is not None else {}


def _benchmark_items(study: Study, unknown: list[str]) -> dict[str, int]:
    """Items per benchmark of `eval.benchmarks`: the published size (BENCHMARK_SIZES), capped by
    eval.benchmark_limit."""
    from postfit.data.benchmarks import RG_PREFIX, RG_SIZE

    out = {}
    for name in study.eval.benchmarks:
        size = RG_SIZE if name.startswith(RG_PREFIX) else BENCHMARK_SIZES.get(name)
        limit = study.eval.benchmark_limit
        if size is None and limit is None:
            unknown.append(f"evaluation on {name}: its size is not fixed by the study (set eval.benchmark_limit)")
            continue
        out[name] = min(x for x in (size, limit) if x is not None)
    return out


def _heldout_evaluations(steps: int, every: int) -> int:
    """Held-out evaluations during RL: at step 0, every `every` steps and at the last step (rl.py's callback)."""
    return 1 + steps // every + (1 if steps % every else 0)


def data_rows(study: Study) -> list[str]:
    """The rows each real-data block reads (from the file alone: no data is loaded) and whether SFT and RL rows of
    one source are disjoint."""
    from postfit.config.data import describe_rows

    blocks = [(key, b) for key, b in (("data.sft", study.data.sft), ("data.rl", study.data.rl)) if b is not None]
    lines = [f"{key}: {b.source} ({b.split}) rows {describe_rows(b.rows())}" for key, b in blocks]
    if len(blocks) == 2 and (study.data.sft.source, study.data.sft.split) == (study.data.rl.source,
                                                                              study.data.rl.split):  # fmt: skip
        why = study.data.row_overlap()
        lines.append("data.sft and data.rl rows: " + ("overlap; contamination.drop leaves the repeats out of RL"
                                                      if why else "disjoint"))  # fmt: skip
    return lines


def make_plan(study: Study, source: str, gpus: int = 8) -> Plan:
    from postfit.config.grid import grid_runs

    runs = grid_runs(study)
    axes = {k: len(v) for k, v in study.grid if isinstance(v, list)}
    n, n_from = parameter_count(study)
    plan = Plan(study.name, source, study.requires_gpu, study.model.preset or study.model.name_or_path, n, n_from,
                axes, [r.name for r in runs], gpus=gpus)  # fmt: skip
    if study.model.preset is not None and any(r.init.startswith("pretrained") for r in runs):
        plan.stages.append(Stage("pre-train", 1, pretrain_tokens(study), TRAIN, False,
                                 "once per study: steps x pretrain.batch_size x pretrain.seq_len"))  # fmt: skip
    # Every run trains its recipe's trainer once; a run another continues is trained once, for all of them.
    trained = {r for run in runs for r in run.chain if RECIPES[r.recipe].trains}
    sft_runs = [r for r in trained if RECIPES[r.recipe].trainer == SFT]
    if sft_runs:
        s = study.sft
        what = "sft.steps x sft.batch_size x sft.max_length (a run that continues another reuses its model)"
        plan.stages.append(Stage("SFT", len(sft_runs), s.steps * s.batch_size * s.max_length, TRAIN, True, what))
    rl_runs = [r for r in trained if RECIPES[r.recipe].trainer == RL]
    if rl_runs:
        r, k = study.rl, len(rl_runs)
        gen = r.steps * r.batch_size * r.max_completion_length
        what = "rl.steps x rl.batch_size x rl.max_completion_length"
        plan.stages.append(Stage("RL generation", k, gen, FORWARD, True, what + " (completions; prompts not counted)"))
        plan.stages.append(Stage("RL update", k, gen, TRAIN, True, "the same completion tokens, trained on"))
        if r.beta > 0:
            what = "rl.beta > 0: the reference model scores them"
            plan.stages.append(Stage("RL reference", k, gen, FORWARD, True, what))
        held = _heldout_evaluations(r.steps, r.eval_steps) * r.heldout_items * study.eval.max_new_tokens
        plan.stages.append(Stage("RL held-out eval", k, held, FORWARD, True,
                                 "evaluations x rl.heldout_items x eval.max_new_tokens (greedy)"))  # fmt: skip
    plan.data = data_rows(study)
    items = {**_procedural_items(study), **_benchmark_items(study, plan.unknown)}
    # 1 greedy + the split's samples each; lighteval's benchmarks: their n samples only
    completions = sum(n * (study.eval.samples_for(split) + (0 if study.eval.lighteval_split(split) else 1))
                      for split, n in items.items())  # fmt: skip
    what = (f"{sum(items.values())} items x (1 greedy + eval.samples, or the split's eval.samples_by_split) x "
            "eval.max_new_tokens")  # fmt: skip
    if study.eval.protocol == "lighteval":
        what += " (lighteval's benchmarks: n samples, no greedy)"
    plan.stages.append(Stage("evaluation", len(runs), completions * study.eval.max_new_tokens, FORWARD, True, what))
    plan.stages += _probe_stages(study, len(runs))
    return plan


def _probe_stages(study: Study, runs: int) -> list[Stage]:
    """The probes (on every run's final model, probes.py), their positive control (once) and forgetting (every run
    of a preset: the held-out corpus blocks, through the final model and the one it started from). Prompts of
    generated or scored text are not counted."""
    from postfit.context_probe import CONTROL_MAX_LENGTH
    from postfit.probes import ADAPT_MAX_LENGTH
    from postfit.train.pretrain import HELDOUT_BLOCKS

    p, out = study.probes, []
    if p.icl is not None:
        n = len(p.icl.tasks) * p.icl.items * len(p.icl.k)
        out.append(Stage("probe: icl", runs, n * p.icl.max_new_tokens, FORWARD, True,
                         "tasks x probes.icl.items x len(k) x max_new_tokens (completions)"))  # fmt: skip
    if (c := p.context) is not None:
        n = len(c.families) * c.items * len(c.k) * c.max_new_tokens
        what = "families x probes.context.items x len(k) x max_new_tokens (completions)"
        out.append(Stage("probe: context", runs + (c.control is not None), n, FORWARD, True,
                         what + (", the control's included" if c.control else "")))  # fmt: skip
        if c.control is not None:
            out.append(Stage("probe control", 1, c.control.steps * c.control.batch_size * CONTROL_MAX_LENGTH, TRAIN,
                             True, f"once per study: control.steps x control.batch_size x {CONTROL_MAX_LENGTH} (its "
                             "max length)"))  # fmt: skip
    if (a := p.adapt) is not None:
        out.append(Stage("probe: adapt SFT", runs, max(a.steps) * a.batch_size * ADAPT_MAX_LENGTH, TRAIN, True,
                         f"max(probes.adapt.steps) x batch_size x {ADAPT_MAX_LENGTH} (its max length)"))  # fmt: skip
        out.append(
            Stage(
                "probe: adapt eval",
                runs,
                len(a.steps) * a.test_size * a.max_new_tokens,
                FORWARD,
                True,
                "len(steps) x test_size x max_new_tokens (completions; the answers' scoring not counted)",
            )
        )
    if study.model.preset is not None:
        out.append(Stage("forgetting", runs, 2 * HELDOUT_BLOCKS * study.pretrain.seq_len, FORWARD, True,
                         "2 models x the held-out corpus blocks (at most 32) x pretrain.seq_len"))  # fmt: skip
    return out


def _sci(x: int | None) -> str:
    return "unknown N" if x is None else f"{x:.3e}"


def render(plan: Plan) -> str:
    """The plan as plain text: runs, then one line per stage with its tokens, FLOPs and where they come from."""
    n = "unknown N" if plan.params is None else f"{plan.params:,}"
    lines = [
        f"study {plan.study} ({plan.source}): "
        + ("valid file, but `postfit run` refuses it here (the error below)" if plan.refused else "valid")
        + ("; needs a GPU (requires_gpu)" if plan.requires_gpu else ""),
        f"model {plan.model}: N = {n} parameters ({plan.params_from})",
        f"{len(plan.runs)} runs = " + " x ".join(f"{v} {k}" for k, v in plan.axes.items()) + ":",
        *(f"  {name}" for name in plan.runs),
        "",
        f"{'stage':<18}{'runs':>5}  {'tokens per run':>17}  {'tokens':>19}  {'FLOPs':>11}  how",
    ]
    for s in plan.stages:
        le = "<=" if s.upper_bound else "  "
        formula = "6·N·D" if s.flops_per_param == TRAIN else "2·N·D"
        lines.append(f"{s.name:<18}{s.runs:>5}  {le}{s.tokens_each:>15,}  {le}{s.tokens:>17,}  "
                     f"{_sci(s.flops(plan.params)):>11}  {formula}: {s.note}")  # fmt: skip
    lines.append(f"{'total':<18}{'':>5}  {'':>17}  {'':>19}  {_sci(plan.total_flops):>11}")
    lines += [f"not counted: {u}" for u in plan.unknown]
    lines += plan.data
    if plan.requires_gpu and plan.params is not None:
        gib = {k: v / 2**30 for k, v in memory_per_gpu(plan.params, plan.gpus).items()}
        lines += [
            f"memory per GPU on {plan.gpus} GPUs for weights + gradients + Adam states (2 + 2 + 12 bytes per "
            "parameter; activations and KV caches not included): "
            + ", ".join(f"{k} {v:.1f} GiB" for k, v in gib.items())
            + " (configs/accelerate/)",
            f"GPU time: {gpu_hours(plan.total_flops):,.1f} GPU-hours at {MFU:.0%} MFU of an H100's "
            f"{PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 peak (the total FLOPs above; as many GPUs, as many times faster)",
        ]
    lines += [
        "",
        "FLOPs: 6·N·D to train on D tokens (forward + backward), 2·N·D to generate or score D tokens (forward",
        "only); N = parameters. '<=' marks upper bounds (every sequence at its maximum length). Attention's",
        "extra cost at long context and prompt tokens during generation are not included.",
    ]
    return "\n".join(lines)


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2)
