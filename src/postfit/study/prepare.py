"""The first task of a study: its data splits (with their contamination and sandbox checks) and its base models,
made once under the directory's lock and read by every later task and worker."""

from __future__ import annotations

import logging
import shutil

import yaml

from postfit.config import Study
from postfit.distributed import is_main, main_first
from postfit.errors import UserError, writing_under
from postfit.io import append_jsonl, atomic_write_json, atomic_write_text, read_json, read_jsonl, write_jsonl
from postfit.item import Item
from postfit.layout import RunDir, StudyDir
from postfit.study.checks import check_machine, checked_data, code_sandbox
from postfit.study.integrity import sweep
from postfit.study.locks import claim, holder, is_stale
from postfit.train.tracking import tracking
from postfit.ui import stage

log = logging.getLogger(__name__)


def _started(layout: StudyDir) -> bool:
    """Whether any work of the study in `layout` has begun: a run directory that holds more than its log and its
    failure record (or that a live worker holds), or pre-training progress under base/."""
    names = RunDir(layout.runs)
    quiet = {names.log.name, names.failed.name, names.launch.name}
    for run_dir in sorted(p for p in layout.runs.glob("*") if p.is_dir()):
        for path in run_dir.iterdir():
            if path.name == names.lock.name and is_stale(holder(path)):
                continue
            if path.name not in quiet:
                return True
    base = layout.base
    pretrained = [base.pretrained, base.meta, base.checkpoints, *base.path.glob("pretrained@*")]
    return any(p.exists() for p in pretrained)


def _clear(layout: StudyDir) -> None:
    """Remove what a study that never started a run left: its file, data, tokenizer, run logs and environment."""
    for path in (layout.data, layout.base.path, layout.runs):
        shutil.rmtree(path, ignore_errors=True)
    for path in (layout.study_yaml, layout.sandbox, layout.env, layout.env_history):
        path.unlink(missing_ok=True)


def _previous_study(study: Study, layout: StudyDir) -> Study | None:
    """The study whose study.yaml `layout` holds, when it is a different one (None: none, or the same)."""
    if not layout.study_yaml.exists():
        return None
    from postfit.config import parse_study

    previous = parse_study(yaml.safe_load(layout.study_yaml.read_text()), str(layout.study_yaml))
    return None if previous.fingerprint() == study.fingerprint() else previous


def _check_same_study(study: Study, layout: StudyDir, replace: bool) -> None:
    """A directory that already holds a study may only be resumed by the same study; with `replace` (the worker
    holds the directory's lock), a different study replaces one that stopped before any run started (a first
    `postfit run` that failed at its start, rerun with the study corrected)."""
    path, out_dir = layout.study_yaml, layout.root
    if path.exists():
        previous = _previous_study(study, layout)
        if previous is None:
            return
        if replace and not _started(layout):
            log.warning("%s: replacing study %r, which stopped before any run started; its data, tokenizer and run "
                        "logs are removed", out_dir, previous.name)  # fmt: skip
            if is_main():
                _clear(layout)
            return
        raise UserError(f"{out_dir}: holds results of a different study (see {path}); choose another --out")
    if layout.manifest.exists():  # study.yaml is written before the data: it was removed
        raise UserError(f"{out_dir}: holds data/ but no study.yaml, so which study made it is unknown; restore "
                        f"{path} or choose another --out")  # fmt: skip


def ensure_data(study: Study, layout: StudyDir) -> dict[str, list[Item]]:
    """The study's splits: read from DIR/data, or made, checked (study/checks.py: nothing is written before every
    check passes) and written with their contamination report, distances, probe items and the environment of this
    start (env.json)."""
    if layout.manifest.exists():
        splits = read_json(layout.manifest)["splits"]
        return {split: [Item.from_json(row) for row in read_jsonl(layout.split(split))] for split in splits}
    from postfit.env import environment

    with stage("data", f"the splits of {study.name}"):
        checked = checked_data(study)
    splits = checked.splits
    atomic_write_text(layout.study_yaml, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    atomic_write_json(layout.env, environment())
    for split, items in splits.items():
        write_jsonl(layout.split(split), [it.to_json() for it in items])
    atomic_write_json(layout.contamination, checked.contamination)
    if checked.probes is not None:
        from postfit.probes import ensure_probe_data

        ensure_probe_data(study.probes, layout.root, checked.probes)
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
    """data/distance.json holds every distance, token ones included (one written before postfit measured them lacks
    `token_n`)."""
    return layout.distance.is_file() and "token_n" in read_json(layout.distance)


def check_sandbox(study: Study, layout: StudyDir, splits: dict[str, list[Item]]) -> None:
    """Before any training: code items need the sandbox's required layers, or the study's opt-in
    (`sandbox.allow_weak`); the layers used are stored in sandbox.json for the report. Checked on every start: a
    resumed study may be on another machine."""
    state = code_sandbox(study, splits)
    if state is not None and is_main():
        atomic_write_json(layout.sandbox, state)


def record_invocation(layout: StudyDir) -> None:
    """One line of env_history.jsonl: this invocation's environment (postfit.env), next to env.json's first start."""
    from postfit.env import environment

    if is_main():
        append_jsonl(layout.env_history, environment())


def _prepare(study: Study, layout: StudyDir, weights: bool) -> tuple[dict[str, list[Item]], dict[str, str]]:
    """The study's data (checked: sandbox, contamination, probes), its distances and its bases (pre-trained ones if
    `weights`: the lock's holder, which also writes the distances; the others only read), made once, then reused."""
    from postfit.analysis.contamination import drop_items

    with main_first():  # the main process writes the data and checks; the others then read them
        _check_same_study(study, layout, replace=weights)
        splits = ensure_data(study, layout)
        check_sandbox(study, layout, splits)
        splits = drop_items(splits, check_contamination(study, layout, splits))  # contamination.drop
        if study.probes.enabled:
            from postfit.probes import ensure_probe_data

            ensure_probe_data(study.probes, layout.root)  # made with the data; made now in a directory from before
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
    check_machine(study)  # the checks that need no data; the data's are ensure_data's (study/checks.py)
    fresh = not layout.root.exists()
    try:
        # One worker prepares data and bases at a time; the next finds them done. The distances are written after
        # the data, its checks and the tokenizer, so with `block=False` they let a worker go on while another
        # pre-trains (unless they are another study's, which only the lock's holder may replace).
        def done() -> bool:
            return not block and distances_ready(layout) and _previous_study(study, layout) is None

        with claim(layout.root, done=done) as mine:
            if not mine:
                prepared = _prepare(study, layout, weights=False)  # only reads: the lock's holder writes
            else:
                for directory, recursive in ((layout.root, False), (layout.data, True), (layout.base.path, True)):
                    sweep(directory, recursive)
                with writing_under(layout.base.path):  # pre-training's checkpoints (data files name themselves)
                    prepared = _prepare(study, layout, weights=True)
        record_invocation(layout)
        return prepared
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
