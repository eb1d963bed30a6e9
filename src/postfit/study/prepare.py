"""The first task of a study: its data splits (with their contamination and sandbox checks) and its base models,
made once under the directory's lock and read by every later task and worker."""

from __future__ import annotations

import logging

import yaml

from postfit.config import Study
from postfit.config.grid import grid_runs
from postfit.config.recipes import RL, trainers
from postfit.distributed import is_main, main_first
from postfit.errors import UserError, writing_under
from postfit.io import atomic_write_json, atomic_write_text, read_json, read_jsonl, write_jsonl
from postfit.item import Item
from postfit.layout import StudyDir
from postfit.study.integrity import sweep
from postfit.study.locks import claim
from postfit.train.tracking import require_trackers, tracking
from postfit.ui import stage

log = logging.getLogger(__name__)


def _check_same_study(study: Study, layout: StudyDir) -> None:
    """A directory that already holds a study may only be resumed by the same study."""
    path, out_dir = layout.study_yaml, layout.root
    if path.exists():
        from postfit.config import parse_study

        previous = parse_study(yaml.safe_load(path.read_text()), str(path))
        if previous.fingerprint() != study.fingerprint():
            raise UserError(f"{out_dir}: holds results of a different study (see {path}); choose another --out")
    elif layout.manifest.exists():  # study.yaml is written before the data: it was removed
        raise UserError(f"{out_dir}: holds data/ but no study.yaml, so which study made it is unknown; restore "
                        f"{path} or choose another --out")  # fmt: skip


def ensure_data(study: Study, layout: StudyDir) -> dict[str, list[Item]]:
    from postfit.tasks import make_splits

    if layout.manifest.exists():
        splits = read_json(layout.manifest)["splits"]
        return {split: [Item.from_json(row) for row in read_jsonl(layout.split(split))] for split in splits}
    from postfit.analysis.contamination import rl_overlaps, study_contamination
    from postfit.study.data import real_splits

    # Each may raise UserError: nothing is written before all succeed.
    with stage("data", f"the splits of {study.name}"):
        splits = {**(make_splits(study.tasks) if study.tasks is not None else {}), **real_splits(study)}
        contamination = study_contamination(study, splits)
    if not study.contamination.drop and (problems := rl_overlaps(contamination)):
        raise UserError("RL prompts are not disjoint from the other data: " + "; ".join(problems)
                        + ". Choose disjoint rows (data.rl.skip) or set contamination.drop: true to leave "
                        "the overlapping items out.")  # fmt: skip
    atomic_write_text(layout.study_yaml, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    for split, items in splits.items():
        write_jsonl(layout.split(split), [it.to_json() for it in items])
    atomic_write_json(layout.contamination, contamination)
    atomic_write_json(layout.manifest, {"splits": list(splits), "counts": {k: len(v) for k, v in splits.items()}})
    return splits


def ensure_bases(study: Study, layout: StudyDir, weights: bool = True) -> dict[str, str]:
    """init -> what `build_variant` loads: a directory postfit built, or the user's model id/path. Without
    `weights`, only the inits that need no pre-training (random: the tokenizer and config)."""
    if study.model.name_or_path is not None:
        return {init: study.model.name_or_path for init in study.grid.inits}
    from postfit.config.scaling import init_tokens
    from postfit.train.pretrain import ensure_base

    snapshots = sorted({t for i in study.grid.inits if (t := init_tokens(i))})  # pretrained@TOKENS checkpoints
    need = weights and ("pretrained" in study.grid.inits or bool(snapshots))
    with tracking(study.report.to, layout.root, "pretrain", study.name):
        dirs = ensure_base(study.pretrain, study.model.preset, study.model.arch, layout.base.path,
                           need_weights=need, snapshots=snapshots if need else [])  # fmt: skip
    return {init: str(dirs[init]) for init in study.grid.inits if init in dirs}


def check_contamination(study: Study, layout: StudyDir, splits: dict[str, list[Item]]) -> dict:
    """Overlap of every training source with every evaluation split (postfit.analysis.contamination): the report
    `ensure_data` stored with the data, or (a directory from before it did) computed now and stored."""
    from postfit.analysis.contamination import study_contamination

    if layout.contamination.exists():
        return read_json(layout.contamination)
    report = study_contamination(study, splits)
    atomic_write_json(layout.contamination, report)
    return report


def ensure_distances(study: Study, layout: StudyDir, splits: dict[str, list[Item]]) -> None:
    """Each evaluated item's distances to the post-training data (postfit.analysis.distance), which every run reads,
    stored once in data/distance.json; measured in the study's tokens, so after the tokenizer is made (and again for
    a directory whose file predates token distances)."""
    from postfit.analysis.distance import study_distances

    if is_main() and not distances_ready(layout):
        from postfit.models import load_tokenizer

        tokenizer = load_tokenizer(study.model.name_or_path or layout.base.architecture)
        with stage("distance", "each evaluated item's distance to the post-training data"):
            atomic_write_json(layout.distance, study_distances(study, splits, tokenizer))


def distances_ready(layout: StudyDir) -> bool:
    """data/distance.json holds every distance, token ones included."""
    from postfit.analysis.distance import has_tokens

    return layout.distance.is_file() and has_tokens(read_json(layout.distance))


def check_sandbox(study: Study, layout: StudyDir, splits: dict[str, list[Item]]) -> None:
    """Before any training: code items need the sandbox's required layers, or the study's opt-in
    (`sandbox.allow_weak`); the layers used are stored in sandbox.json for the report."""
    if not any(item.domain == "code" for items in splits.values() for item in items):
        return
    from postfit.sandbox import allow_weak, check

    if study.sandbox.allow_weak:
        allow_weak(True)
    state = check(f"study {study.name!r} (its code items)")
    if is_main():
        atomic_write_json(layout.sandbox, state)


def _check_backends(study: Study) -> None:
    """vLLM and Liger, where the study asks for them, are installed and have a GPU, and so are the trackers of
    `report.to`: checked before anything is written."""
    from postfit.evaluation.vllm import require_vllm
    from postfit.train.common import require_liger

    require_trackers(study.report.to)
    for key in ("sft", "rl"):
        if getattr(study, key).liger:
            require_liger(f"{key}.liger")
    if study.rl.vllm is not None and any(RL in trainers(r.recipe) for r in grid_runs(study)):
        require_vllm("rl.vllm")
    if study.eval.backend == "vllm":
        require_vllm("eval.backend")


def _prepare(study: Study, layout: StudyDir, weights: bool) -> tuple[dict[str, list[Item]], dict[str, str]]:
    """The study's data (checked: sandbox, contamination, probes), its distances and its bases (pre-trained ones if
    `weights`: the lock's holder, which also writes the distances; the others only read), made once, then reused."""
    from postfit.analysis.contamination import drop_items

    with main_first():  # the main process writes the data and checks; the others then read them
        _check_same_study(study, layout)
        splits = ensure_data(study, layout)
        check_sandbox(study, layout, splits)
        splits = drop_items(splits, check_contamination(study, layout, splits))  # contamination.drop
        if study.probes.enabled:
            from postfit.probes import ensure_probe_data

            ensure_probe_data(study.probes, layout.root)  # fails before any training if a probe cannot be built
    bases = ensure_bases(study, layout, weights=False)  # the tokenizer, in whose tokens distances are measured
    if weights:
        with main_first():
            ensure_distances(study, layout, splits)
        bases = ensure_bases(study, layout, weights=True)
    return splits, bases


def prepare(study: Study, layout: StudyDir, block: bool = True) -> tuple[dict[str, list[Item]], dict[str, str]]:
    """The first task of a study: its data and base models (under the directory's lock, so one worker makes them
    and the others read them); cheap once done. Checks first that the study can run here.

    With `block=False`, a worker that finds the data, the tokenizer and the distances made while another worker
    holds the lock (pre-training) reads them and goes on: the bases then lack the pre-trained inits, which `work`
    asks for again.
    """
    import torch

    if study.requires_gpu and not torch.cuda.is_available():
        raise UserError(f"{study.name}: requires_gpu is set and no CUDA device is visible; this study would take "
                        f"weeks on a CPU (see `postfit plan {study.name}`)")  # fmt: skip
    _check_backends(study)
    fresh = not layout.root.exists()
    try:
        # One worker prepares data and bases at a time; the next finds them done. The distances are written after
        # the data, its checks and the tokenizer, so with `block=False` they let a worker go on while another
        # pre-trains.
        with claim(layout.root, done=lambda: not block and distances_ready(layout)) as mine:
            if not mine:
                return _prepare(study, layout, weights=False)  # only reads: the lock's holder writes
            for directory, recursive in ((layout.root, False), (layout.data, True), (layout.base.path, True)):
                sweep(directory, recursive)
            with writing_under(layout.base.path):  # pre-training's checkpoints (data files name themselves)
                return _prepare(study, layout, weights=True)
    finally:
        if is_main() and fresh and layout.root.is_dir() and not any(layout.root.iterdir()):
            layout.root.rmdir()  # refused before anything was written: leave no empty directory behind


def later_bases(study: Study, layout: StudyDir) -> dict[str, str]:
    """Every base, once the worker that holds the directory's lock has pre-trained (nothing while it still holds
    it); a dead holder's lock is taken over and its pre-training resumed here."""
    with claim(layout.root) as mine:
        if not mine:
            return {}
        sweep(layout.base.path)
        with writing_under(layout.base.path):
            return ensure_bases(study, layout)
