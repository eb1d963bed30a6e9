"""What `postfit run` checks before it writes anything, and `postfit plan` checks the same way.

Two parts, in this order: the machine (a CUDA device where `requires_gpu`, the backends and trackers the study asks
for, its model loadable here) and the data (every source loads, RL prompts are disjoint from the rest, the sandbox
can run the code items, the probes can be built). Each failure is a UserError: both commands call these functions,
so both exit 2 with the same message on the same study.
"""

from __future__ import annotations

from dataclasses import dataclass

from postfit.config import Study
from postfit.config.grid import grid_runs
from postfit.config.recipes import RL, trainers
from postfit.errors import UserError
from postfit.item import Item


@dataclass
class CheckedData:
    """A study's data, made in memory and checked: nothing of it is written yet."""

    splits: dict[str, list[Item]]
    contamination: dict  # analysis.contamination.study_contamination
    probes: dict | None  # probes.make_probe_data, when the study has probes


def check_backends(study: Study) -> None:
    """vLLM and Liger, where the study asks for them, are installed and have a GPU, and so are the trackers of
    `report.to`."""
    from postfit.evaluation.vllm import require_vllm
    from postfit.train.common import require_liger
    from postfit.train.tracking import require_trackers

    require_trackers(study.report.to)
    for key in ("sft", "rl"):
        if getattr(study, key).liger:
            require_liger(f"{key}.liger")
    if study.rl.vllm is not None and any(RL in trainers(r.recipe) for r in grid_runs(study)):
        require_vllm("rl.vllm")
    if study.eval.backend == "vllm":
        require_vllm("eval.backend")


def check_machine(study: Study) -> None:
    """The checks that need no data: a CUDA device where `requires_gpu`, the backends, and the study's model
    (`model.name_or_path`: its tokenizer and config, from a local directory or the cache when offline)."""
    import torch

    if study.requires_gpu and not torch.cuda.is_available():
        raise UserError(f"{study.name}: requires_gpu is set and no CUDA device is visible; this study would take "
                        f"weeks on a CPU (see `postfit plan {study.name}`)")  # fmt: skip
    check_backends(study)
    if study.model.name_or_path is not None:
        from postfit.models import require_model

        require_model(study.model.name_or_path, study.model.chat_template)


def code_sandbox(study: Study, splits: dict[str, list[Item]]) -> dict | None:
    """None without code items; else the sandbox's state as stored in sandbox.json, or a UserError when it lacks
    a required layer and the study did not opt in (`sandbox.allow_weak`, `--unsafe-weak-sandbox`)."""
    if not any(item.domain == "code" for items in splits.values() for item in items):
        return None
    from postfit.sandbox import allow_weak, check

    if study.sandbox.allow_weak:
        allow_weak(True)
    return check(f"study {study.name!r} (its code items)")


def checked_data(study: Study) -> CheckedData:
    """The study's splits (procedural tasks and real data: every source must load), their contamination report
    (RL prompts that repeat another split's question are refused unless `contamination.drop`), the sandbox's
    layers for code items and the probe items."""
    from postfit.analysis.contamination import rl_overlaps, study_contamination
    from postfit.study.data import real_splits
    from postfit.tasks import make_splits

    splits = {**(make_splits(study.tasks) if study.tasks is not None else {}), **real_splits(study)}
    contamination = study_contamination(study, splits)
    if not study.contamination.drop and (problems := rl_overlaps(contamination)):
        raise UserError("RL prompts are not disjoint from the other data: " + "; ".join(problems)
                        + ". Choose disjoint rows (data.rl.skip) or set contamination.drop: true to leave "
                        "the overlapping items out.")  # fmt: skip
    code_sandbox(study, splits)
    probes = None
    if study.probes.enabled:
        from postfit.probes import make_probe_data

        probes = make_probe_data(study.probes)
    return CheckedData(splits, contamination, probes)


def check_study(study: Study) -> CheckedData:
    """Every check `postfit run` makes before it writes anything, in its order (what `postfit plan` runs)."""
    check_machine(study)
    return checked_data(study)
