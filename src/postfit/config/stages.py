"""The options of each stage of a study: model, pre-training, tasks, grid, evaluation, report, sandbox (SFT and RL:
postfit.config.training).

The field descriptions are the manual: `postfit options` prints them and docs/study-file.md's option table is generated
from them. Unknown keys are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from postfit.config.recipes import NONE, SFT, check_recipe
from postfit.config.recipes import describe as recipes_in_words
from postfit.config.scaling import check_init

SPLITS = ("id_test", "ood_near", "ood_harder", "ood_family", "ood_format", "ood_rule")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Attention = Literal["sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3"]


class ModelSpec(Strict):
    """The architecture that every variant shares."""

    preset: str | None = Field(
        None, description="Built-in tiny architecture (`nano`, `micro`, `small`); postfit pre-trains it itself."
    )
    name_or_path: str | None = Field(
        None, description="Hugging Face model id or local directory, instead of a preset (needs a cache offline)."
    )
    arch: Literal["qwen3", "llama"] = Field("qwen3", description="Architecture family of a preset.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Dtype of the weights (and optimiser states): `bfloat16` halves the memory of "
        "billion-parameter models, as open-r1's recipes do; training on a GPU uses bf16 autocast either way.",
    )
    attn_implementation: Attention | None = Field(
        None,
        description="transformers' attention kernel (`attn_implementation`); null: its default (sdpa). "
        "`flex_attention` or `flash_attention_2`/`_3` (that package installed) attend within each sequence of a "
        "padding-free batch without computing across them, and turn `sft.padding_free` on.",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template that replaces the tokenizer's own for SFT, RL, evaluation and probes. "
        "Null: the tokenizer's template, or for a base model without one postfit's plain format (`Question: "
        "...\\nAnswer: ...` ending with the model's eos; `postfit.models.PLAIN_TEMPLATE`).",
    )

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str | None) -> str | None:
        from postfit.models import PRESETS

        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; expected one of {sorted(PRESETS)}")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSpec:
        if (self.preset is None) == (self.name_or_path is None):
            raise ValueError("set exactly one of `preset` and `name_or_path`")
        return self


class PretrainConfig(Strict):
    """postfit's own pre-training of a preset (tokenizer and weights), so a pre-trained tiny model exists offline."""

    corpus: str = Field(
        "stdlib",
        description="`stdlib` (source, docstrings and comments of this interpreter's standard library), a local "
        "text file or directory of .txt/.md/.rst/.py files, or `hf:NAME` (a Hugging Face dataset with a `text` "
        "column).",
    )
    tokens: int = Field(1_000_000, gt=0, description="Pre-training token budget (tokens the model is trained on).")
    seq_len: int = Field(256, ge=16, le=4096, description="Tokens per training sequence.")
    batch_size: int = Field(16, gt=0, description="Sequences per optimiser step.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak learning rate (cosine schedule, 5% warm-up).")
    tokenizer_chars: int = Field(
        3_000_000, gt=0, description="Characters of the corpus used to train the byte-level BPE tokenizer."
    )
    checkpoint_steps: int = Field(100, gt=0, description="Save a resumable checkpoint every this many steps.")

    @property
    def corpus_chars(self) -> int:
        """Characters of the corpus read: enough for the tokenizer and the token budget (< 5 characters a token)."""
        return max(self.tokenizer_chars, self.tokens * 5)


class TaskSpec(Strict):
    """One reasoning-gym task family with its generator settings."""

    name: str = Field(description="reasoning-gym dataset name, e.g. `chain_sum`.")
    config: dict = Field(default_factory=dict, description="reasoning-gym config for the in-distribution items.")
    harder: dict | None = Field(
        None, description="Config overrides for the `ood_harder` split (same family; read for train tasks only)."
    )
    near: list[dict] | None = Field(
        None,
        description="Config overrides for the `ood_near` split, each drawing an equal share of its items: the train "
        "task a step or a few away from its training items (longer operands, one more term), so accuracy can be "
        "read against distance between `id_test` and another family (read for train tasks only).",
    )
    rule_shift: Literal["swap", "octal"] | None = Field(
        None,
        description="The `ood_rule` split: new items of this train task, same question text, under a changed rule "
        "the prompt states (`swap`: '+' means subtraction and '-' addition; `octal`: the answer in base 8), scored "
        "under that rule. For `+`/`-` chains (`chain_sum`, `basic_arithmetic`); null: no `ood_rule` split.",
    )

    @model_validator(mode="after")
    def _buildable(self) -> TaskSpec:
        from postfit.tasks import check_task

        check_task(self.name, self.config)
        for override in [self.harder or {}, *(self.near or [])]:
            check_task(self.name, {**self.config, **override})
        if self.rule_shift is not None and self.name not in ("chain_sum", "basic_arithmetic"):
            raise ValueError(f"rule_shift: needs + / - chains (chain_sum or basic_arithmetic), not {self.name!r}")
        return self


class TasksConfig(Strict):
    """Procedural tasks and their splits: train, id_test, ood_near, ood_harder, ood_family, ood_format, ood_rule."""

    train: list[TaskSpec] = Field(min_length=1, description="Task families used for post-training (and id_test).")
    ood_family: list[TaskSpec] = Field(
        default_factory=list, description="Related families never trained on (the `ood_family` split)."
    )
    train_size: int = Field(2000, gt=0, description="Post-training examples (split evenly over train tasks).")
    rl_size: int = Field(
        0,
        ge=0,
        description="RL prompts of the train families disjoint from every other split (the `rl` split); "
        "0: RL reuses the SFT items, which an SFT model may have memorised (little reward signal).",
    )
    test_size: int = Field(200, gt=0, description="Items per evaluation split.")
    target: Literal["trace", "answer"] = Field(
        "trace", description="SFT target: a short step-by-step `trace` ending in the answer, or `answer` only."
    )
    seed: int = Field(1234, description="Data seed: every run of the study sees the same items.")

    @model_validator(mode="after")
    def _traceable(self) -> TasksConfig:
        from postfit.tasks import TRACERS

        if self.target == "trace":
            missing = [t.name for t in self.train if t.name not in TRACERS]
            if missing:
                raise ValueError(
                    f"target `trace` needs a step writer for {missing}; traces exist for {sorted(TRACERS)}, "
                    "or use target: answer"
                )
        return self

    def eval_splits(self) -> list[str]:
        """The evaluation splits these tasks make, in SPLITS order: id_test and ood_format always, the others
        where the tasks ask for them."""
        made = {
            "ood_near": any(t.near for t in self.train),
            "ood_harder": any(t.harder is not None for t in self.train),
            "ood_family": bool(self.ood_family),
            "ood_rule": any(t.rule_shift is not None for t in self.train),
        }
        return [s for s in SPLITS if made.get(s, True)]


class GridConfig(Strict):
    """The runs of the study: every combination of init x recipe x seed."""

    inits: list[str] = Field(
        ["pretrained", "random"],
        min_length=1,
        description="Initialisations of the same architecture: "
        "`pretrained`, `random`, or `pretrained@TOKENS` (presets: the checkpoint of postfit's own pre-training "
        "after TOKENS tokens; random counts as 0 tokens).",
    )
    recipes: list[str] = Field(
        [NONE, SFT],
        min_length=1,
        description=f"Post-training recipes (config/recipes.py): {recipes_in_words()}",
    )
    seeds: list[int] = Field([0], min_length=1, description="Run seeds (random init, data order, sampling).")
    posttrain_examples: list[int] | None = Field(
        None,
        description="Data-scaling axis: post-train on the first N training items for each N listed (same "
        "steps, so fewer items means more epochs); null: all of them.",
    )

    @field_validator("inits")
    @classmethod
    def _known_inits(cls, v: list[str]) -> list[str]:
        return [check_init(name) for name in v]

    @field_validator("recipes")
    @classmethod
    def _known_recipes(cls, v: list[str]) -> list[str]:
        return [check_recipe(name) for name in v]

    @field_validator("posttrain_examples")
    @classmethod
    def _positive_unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 1 or len(set(v)) != len(v)):
            raise ValueError(f"expected distinct positive numbers of examples, got {v}")
        return v

    @field_validator("inits", "recipes", "seeds")
    @classmethod
    def _unique(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate entries in {v}")
        return v


class EvalOptions(Strict):
    """Evaluation of every run on every split: greedy pass@1 and sampled pass@k (postfit's protocol), or lighteval's
    pass@1 averaged over n samples (`protocol: lighteval`)."""

    protocol: Literal["postfit", "lighteval"] = Field(
        "postfit",
        description="How benchmarks are prompted and scored. `postfit`: postfit's prompts and verifier, greedy "
        "pass@1 and sampled pass@k. `lighteval`: open-r1's settings, so scores compare with published ones: "
        "lighteval's prompts (math500, aime24, aime25), `samples` completions per item (default: lighteval's n, "
        "4 for MATH-500, 64 for AIME) at temperature 0.6, top-p 0.95, up to 32768 new tokens unless set here, pass@1 "
        "= their mean correctness, answers read by math-verify as lighteval configures it (docs/datasets.md). A "
        "study's own task splits keep postfit's protocol; every sample and result row names its protocol.",
    )

    batch_size: int = Field(64, gt=0, description="Prompts per generate() call.")
    max_new_tokens: int = Field(48, gt=0, description="Longest completion in tokens.")
    samples: int | None = Field(
        4,
        ge=0,
        description="Sampled completions per item for pass@k (0: greedy only). Null, the default under "
        "`protocol: lighteval`: lighteval's n for each benchmark.",
    )
    samples_by_split: dict[str, int] = Field(
        default_factory=dict,
        description="Sampled completions per item on the splits named here, instead of `samples` (e.g. "
        "`{id_test: 8, ood_near: 8}`): a long pass@k curve where it pays (the report's pass@k crossover section "
        "needs 4 or more), `samples` elsewhere. Keys: evaluation splits or `eval.benchmarks` names.",
    )
    k: list[int] = Field(
        [4], description="k values for the unbiased pass@k estimator (each <= the most samples any split draws)."
    )
    temperature: float = Field(0.8, gt=0, description="Sampling temperature for pass@k.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling for pass@k.")
    benchmarks: list[str] = Field(
        default_factory=list,
        description="Benchmarks evaluated for every run, each a split of its own (`aime24`, "
        "`math500`, `humaneval`, `rg:TASK`, ...; `postfit.data.benchmarks.benchmark_names()` lists them).",
    )
    benchmark_limit: int | None = Field(None, gt=0, description="Items per benchmark at most (null: all of them).")
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="Evaluation generation: `hf` (the transformers model in memory, postfit's batched decode loop: "
        "`generate`'s greedy search and sampling, finished rows leaving the batch; on every process of a launch) or "
        "`vllm` (vLLM's offline `LLM.generate` on the run's saved model, the same stop tokens, samples and seed; "
        "CUDA and the `gpu` extra). RL's held-out curve always uses `hf`.",
    )
    cuda_graphs: bool = Field(
        True,
        description="On a CUDA device, `hf` decodes with a static KV cache and replays each step as a CUDA graph "
        "(the same greedy tokens, several times faster for small models); false, or on a CPU: the growing cache.",
    )

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, v: list[str]) -> list[str]:
        from postfit.config.data import check_benchmark

        if len(set(v)) != len(v):
            raise ValueError(f"duplicate entries in {v}")
        return [check_benchmark(name) for name in v]

    @field_validator("samples_by_split")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        if negative := {split: n for split, n in v.items() if n < 0}:
            raise ValueError(f"{negative}: a number of samples is >= 0 (0: greedy only on that split)")
        return v

    @model_validator(mode="after")
    def _protocol_defaults(self) -> EvalOptions:
        """Under the lighteval protocol the options not set are open-r1's, and only lighteval's benchmarks apply."""
        from postfit.data.lighteval import LIGHTEVAL, OPEN_R1, check_lighteval

        if self.protocol != LIGHTEVAL:
            if self.samples is None:
                raise ValueError("samples: null (lighteval's n per benchmark) needs protocol: lighteval")
            return self
        for key, value in {**OPEN_R1, "samples": None, "k": []}.items():
            if key not in self.model_fields_set:
                setattr(self, key, value)
        for name in self.benchmarks:
            check_lighteval(name)
        if self.samples == 0:
            raise ValueError("samples: the lighteval protocol scores sampled completions; expected 1 or more")
        return self

    @model_validator(mode="after")
    def _k_le_samples(self) -> EvalOptions:
        from postfit.data.lighteval import LIGHTEVAL, TASKS

        if self.protocol == LIGHTEVAL:  # every benchmark's n must allow each k
            most = min(self.samples_for(split) for split in (self.benchmarks or list(TASKS)))
        else:
            most = max([self.samples, *self.samples_by_split.values()])
        bad = [k for k in self.k if k < 1 or k > most]
        if bad and not self.samples_by_split:
            raise ValueError(f"k values {bad} must lie in 1..samples ({most})")
        if bad:
            raise ValueError(f"k values {bad} must lie in 1..{most}, the most samples any split draws (samples, "
                             "samples_by_split); pass@k is reported on the splits that draw at least k")  # fmt: skip
        return self

    def samples_for(self, split: str) -> int:
        """Sampled completions per item of `split`: its `samples_by_split`, else `samples`, or when that is null
        (lighteval protocol) lighteval's n for the benchmark (postfit.data.lighteval.TASKS; other splits: the
        postfit default)."""
        from postfit.data.lighteval import TASKS

        if split in self.samples_by_split:
            return self.samples_by_split[split]
        if self.samples is not None:
            return self.samples
        return TASKS[split].n if split in TASKS else type(self).model_fields["samples"].default

    def lighteval_split(self, split: str) -> bool:
        """Whether `split` is generated and scored under the lighteval protocol (sampled only, no greedy)."""
        from postfit.data.lighteval import LIGHTEVAL, TASKS

        return self.protocol == LIGHTEVAL and split in TASKS


class ReportOptions(Strict):
    """Statistics of the report, and where training curves are sent."""

    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for confidence intervals.")
    ci: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    to: list[Literal["tensorboard", "trackio", "wandb"]] = Field(
        [],
        description="Trackers every training stage reports to (the Trainer's `report_to`; run names = postfit "
        "run names; TensorBoard files in DIR/tensorboard). Not in the fingerprint.",
    )


class SandboxOptions(Strict):
    """How model-written code (code items of the data or the benchmarks) is run."""

    allow_weak: bool = Field(
        False,
        description="Run code even where the sandbox lacks a required layer (its network, PID or mount namespace; "
        'README "Code sandbox"). Unsafe; the report then names the missing layers. Without it such a study '
        "exits 2 before training.",
    )


class ResourcesOptions(Strict):
    """How many local workers run a study, and what each task asks the scheduler for under `postfit run --executor
    ray|slurm` (README "Running a grid on Ray / Slurm"). Where a study runs is not what it computes: this block is
    not in the fingerprint."""

    workers: int = Field(1, ge=1, description="`postfit run` processes the local executor starts on this machine, "
                         "sharing the output directory (runs are locked), each with cores // workers torch threads: "
                         "small models run faster as several one-thread processes than as one that splits each "
                         "small matrix product.")  # fmt: skip
    cpus_per_run: int = Field(1, ge=1, description="CPU cores per task (a run, or the data and base models); also "
                              "its torch threads.")  # fmt: skip
    gpus_per_run: int = Field(0, ge=0, description="GPUs per task; above 1 the run is started through `accelerate "
                              "launch` with one process per GPU.")  # fmt: skip
    accelerate_config: str | None = Field(
        None, description="accelerate config for runs with gpus_per_run > 1 (e.g. configs/accelerate/zero2.yaml); "
        "default: accelerate's multi-GPU DDP."
    )  # fmt: skip
    partition: str | None = Field(None, description="Slurm partition (default: the cluster's).")
    time_min: int = Field(24 * 60, ge=1, description="Slurm time limit per job, in minutes.")
    mem_gb: float | None = Field(None, gt=0, description="Slurm memory per job (default: the cluster's).")
    max_parallel: int | None = Field(
        None, ge=1, description="Slurm jobs in flight at once (default: all; without `sbatch`, where jobs run as "
        "local processes: cores // cpus_per_run)."
    )  # fmt: skip
