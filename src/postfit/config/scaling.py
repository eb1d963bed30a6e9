"""Study-file blocks for the analyses the argument calls for (part of the study schema in config.py).

`probes:` measures learning to learn on every run's final model (the `none` runs are the models before
post-training): in-context learning on families never trained on, and adaptation to a new task by a few SFT
steps. `contamination:` sets the overlap check between training sources and evaluation items. The data-scaling
(`grid.posttrain_examples`) and pre-training-budget (`grid.inits: [pretrained@TOKENS]`) axes live in the grid;
`check_scaling` validates them against the rest of the study.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postfit.config.recipes import NONE

INIT_PATTERN = re.compile(r"^(pretrained|random|pretrained@(\d+))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_init(name: str) -> str:
    if not INIT_PATTERN.match(name):
        raise ValueError(f"unknown init {name!r}; expected `pretrained`, `random` or `pretrained@TOKENS` (a "
                         "checkpoint of postfit's own pre-training after TOKENS tokens, presets only)")  # fmt: skip
    return name


def init_tokens(name: str) -> int | None:
    """Pre-training tokens of an init name: 0 for random, TOKENS for pretrained@TOKENS, None for full pretrained."""
    if name == "random":
        return 0
    m = INIT_PATTERN.match(name)
    return int(m.group(2)) if m and m.group(2) else None


class ProbeTask(_Strict):
    """A reasoning-gym family used only by a probe."""

    name: str = Field(description="reasoning-gym dataset name, e.g. `gcd`.")
    config: dict = Field(default_factory=dict, description="reasoning-gym config of its items.")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from postfit.tasks import dataset_names

        if v not in dataset_names():
            raise ValueError(f"unknown reasoning-gym task {v!r}")
        return v


class ICLProbe(_Strict):
    """In-context learning: accuracy on families never post-trained on, with k solved examples before the query.

    Shots are earlier chat turns (user: the example's prompt, assistant: `Answer: <answer>`), drawn from a pool
    disjoint from the queries; a shot whose answer the verifier would accept for the query is never used, so
    copying a shot cannot score. The k-shot prompt extends the (k-1)-shot one, so the k-curve is paired.
    """

    tasks: list[ProbeTask] = Field(min_length=1, description="Held-out families (never in tasks.train/ood_family).")
    k: list[int] = Field([0, 1, 2, 4, 8, 16], min_length=1, description="Numbers of solved examples in the prompt.")
    items: int = Field(50, gt=0, description="Query items per family.")
    pool: int = Field(200, gt=0, description="Items per family that shots are drawn from (disjoint from queries).")
    max_new_tokens: int = Field(16, gt=0, description="Longest completion in tokens (answers are short).")

    @field_validator("k")
    @classmethod
    def _k_valid(cls, v: list[int]) -> list[int]:
        if any(k < 0 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"k values must be distinct and >= 0, got {v}")
        return sorted(v)


class AdaptProbe(_Strict):
    """Adaptation: greedy accuracy on a new task after m SFT steps on it, and the question gain (the right answer's
    log-likelihood after its own question minus after another test item's, nats), the same optimiser for every model.

    The learning rate is constant (no warm-up, no decay), so the model after m steps is the one a run of exactly m
    steps would give: one run of max(steps) steps evaluated at each m.
    """

    task: ProbeTask = Field(description="The new task (never in tasks.train, tasks.ood_family or the ICL probe).")
    steps: list[int] = Field([0, 10, 50, 200], min_length=1, description="SFT steps m after which to evaluate.")
    train_size: int = Field(500, gt=0, description="Training items of the new task.")
    test_size: int = Field(50, gt=1, description="Evaluation items of the new task (the question gain pairs each "
                           "with another).")  # fmt: skip
    batch_size: int = Field(16, gt=0, description="Examples per step.")
    learning_rate: float = Field(1e-3, gt=0, description="Constant learning rate (AdamW).")
    max_new_tokens: int = Field(16, gt=0, description="Longest completion in tokens.")
    threshold: float = Field(0.5, gt=0, le=1, description="Accuracy whose first probed m the report gives per model "
                             "(steps to threshold).")  # fmt: skip
    gain_threshold: float = Field(0.5, gt=0, description="Question gain in nats whose first probed m the report "
                                  "gives per model (steps to threshold).")  # fmt: skip

    @field_validator("steps")
    @classmethod
    def _steps_valid(cls, v: list[int]) -> list[int]:
        if any(m < 0 for m in v) or len(set(v)) != len(v):
            raise ValueError(f"steps must be distinct and >= 0, got {v}")
        return sorted(v)


class ContextControl(_Strict):
    """The context probe's positive control: a base model of the study fine-tuned on the probe's own families (other
    draws than the probe's), then probed; the probe can measure only where it shows a gain."""

    init: Literal["pretrained", "random"] = Field(
        "pretrained", description="The base it starts from (an init of grid.inits); a random init of nano needs "
        "far more steps to copy from its context (measured: none after 300).")  # fmt: skip
    steps: int = Field(300, gt=0, description="SFT steps of the control model.")
    batch_size: int = Field(16, gt=0, description="Examples per step.")
    learning_rate: float = Field(3e-3, gt=0, description="Constant learning rate (AdamW).")


class ContextProbe(_Strict):
    """In-context learning where only the prompt holds the answer: postfit's own families (`recall`: values of
    fresh keys; `operator`: a # b = a + b + c with a fresh c; `affine`: a $ b = 10a + c with a fresh digit c), each
    query with its own k solved examples as earlier chat turns. Greedy accuracy and the answer's log-likelihood,
    k = 0 against the largest k, beside a positive control (postfit/context_probe.py)."""

    families: list[Literal["recall", "operator", "affine"]] = Field(
        ["recall", "affine"], min_length=1, description="Context-determined families (`operator` needs addition: "
        "no nano control learns it).")  # fmt: skip
    k: list[int] = Field([0, 1, 2, 4, 8], min_length=2, description="Numbers of solved examples (0-10).")
    items: int = Field(64, gt=0, description="Queries per family (each at every k).")
    max_new_tokens: int = Field(8, gt=0, description="Longest completion in tokens.")
    control: ContextControl | None = Field(
        default_factory=ContextControl, description="Positive control (null: none; the report then says so)."
    )
    seed: int = Field(2718, description="Seed of the queries and their shots.")

    @field_validator("k")
    @classmethod
    def _k_valid(cls, v: list[int]) -> list[int]:
        if any(k < 0 or k > 10 for k in v) or len(set(v)) != len(v) or 0 not in v:
            raise ValueError(f"k values must be distinct, in 0..10 (recall has ten values), and include 0, got {v}")
        return sorted(v)


class ProbesConfig(_Strict):
    """Learning-to-learn probes, run on every run's final model; the `none` runs are the models before training."""

    icl: ICLProbe | None = Field(None, description="In-context k-shot probe on reasoning-gym families (null: off).")
    context: ContextProbe | None = Field(None, description="In-context probe on context-determined families.")
    adapt: AdaptProbe | None = Field(None, description="Few-step adaptation probe (null: off).")
    seed: int = Field(4321, description="Data seed of the probe items and shot orders.")

    @property
    def enabled(self) -> bool:
        return self.icl is not None or self.adapt is not None or self.context is not None


class ContaminationOptions(_Strict):
    """Overlap between every training source and every evaluation split, and what to do about it."""

    n: int = Field(13, ge=1, description="Word n-gram length of the overlap check (n words or punctuation marks).")
    drop: bool = Field(
        False,
        description="Leave evaluation items that overlap a training source out of evaluation, and RL prompts "
        "that repeat an SFT question out of RL; the report lists their ids. Without it, RL prompts that repeat SFT "
        "or evaluation items stop the study before training (exit 2).",
    )


def check_scaling(study) -> None:
    """Cross-field checks of the scaling axes and probes (ValueError, shown with the study's key paths)."""
    tokens = [(i, init_tokens(i)) for i in study.grid.inits if init_tokens(i)]
    if tokens and study.model.preset is None:
        raise ValueError("grid.inits: `pretrained@TOKENS` needs a preset (checkpoints of postfit's own pre-training)")
    for name, t in tokens:
        if t >= study.pretrain.tokens:
            raise ValueError(f"grid.inits: {name} must stop before the pre-training budget ({study.pretrain.tokens})")
    n = study.grid.posttrain_examples
    if n and study.tasks is not None and max(n) > study.tasks.train_size:
        raise ValueError(f"grid.posttrain_examples: {max(n)} exceeds tasks.train_size ({study.tasks.train_size})")
    probes = study.probes
    if probes.enabled and NONE not in study.grid.recipes:
        raise ValueError("probes compare models before and after post-training: add `none` to grid.recipes")
    used = {t.name for t in (study.tasks.train + study.tasks.ood_family)} if study.tasks else set()
    icl = {t.name for t in probes.icl.tasks} if probes.icl else set()
    if used & icl:
        raise ValueError(f"probes.icl.tasks: {sorted(used & icl)} are post-training or ood_family tasks")
    if probes.context and probes.context.control and probes.context.control.init not in study.grid.inits:
        raise ValueError(f"probes.context.control.init: {probes.context.control.init!r} is not in grid.inits "
                         f"{study.grid.inits}")  # fmt: skip
    if probes.adapt and probes.adapt.task.name in used | icl:
        raise ValueError(f"probes.adapt.task: {probes.adapt.task.name!r} is already used by the study")
