"""The study runner: data, base models, then every run of the grid, each in its own directory.

Layout of an output directory DIR:
    study.yaml                  the resolved study (a rerun must match it)
    data/<split>.jsonl          the items; data/contamination.json the overlap checks
    base/                       postfit's tokenizer, config and pre-trained weights (presets)
    runs/<init>-<recipe>-s<seed>/
        run.json                init, recipe, seed, parameter count, config hash, training stats
        train_log.jsonl         the trainer's loss log (recipe sft)
        model/                  final weights and tokenizer (recipe sft)
        samples.jsonl           every completion with its extracted answer and verdict
        results.jsonl           this run's metrics; written last, so its presence means "done"
        log.txt, failed.json    the run's own log; the error of a run that raised
        .lock                   held while a worker trains it (study/locks.py)
    sandbox.json                the sandbox's layers (studies with code items)
    results.jsonl, report.md, report.html

Re-running skips finished runs; a run killed mid-training resumes from its last checkpoint. Workers sharing DIR
(and the processes of one `accelerate launch`, postfit.distributed) split the work without doing a run twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml

from postfit.config import Study
from postfit.distributed import barrier, device, from_main, is_main, main_first
from postfit.errors import UserError, writing_under
from postfit.io import atomic_write_json, atomic_write_text, jsonl_text, read_json, read_jsonl, sha256, write_jsonl
from postfit.study.grid import Run, grid_runs
from postfit.study.integrity import damaged, record_files, run_log, sweep, undo
from postfit.study.locks import POLL_S, TaskLock, holder, is_stale
from postfit.train.tracking import require_trackers, tracking
from postfit.ui import stage

log = logging.getLogger(__name__)


def _check_same_study(study: Study, out_dir: Path) -> None:
    """A directory that already holds a study may only be resumed by the same study."""
    path = out_dir / "study.yaml"
    if path.exists():
        from postfit.config import parse_study

        previous = parse_study(yaml.safe_load(path.read_text()), str(path))
        if previous.fingerprint() != study.fingerprint():
            raise UserError(f"{out_dir}: holds results of a different study (see {path}); choose another --out")
    elif (out_dir / "data" / "manifest.json").exists():  # study.yaml is written before the data: it was removed
        raise UserError(f"{out_dir}: holds data/ but no study.yaml, so which study made it is unknown; restore "
                        f"{path} or choose another --out")  # fmt: skip


def ensure_data(study: Study, out_dir: Path) -> dict[str, list[dict]]:
    from postfit.tasks import make_splits

    data_dir = out_dir / "data"
    manifest = data_dir / "manifest.json"
    if manifest.exists():
        return {split: read_jsonl(data_dir / f"{split}.jsonl") for split in read_json(manifest)["splits"]}
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
    atomic_write_text(out_dir / "study.yaml", yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    for split, items in splits.items():
        write_jsonl(data_dir / f"{split}.jsonl", items)
    atomic_write_json(data_dir / "contamination.json", contamination)
    atomic_write_json(manifest, {"splits": list(splits), "counts": {k: len(v) for k, v in splits.items()}})
    return splits


def ensure_bases(study: Study, out_dir: Path, weights: bool = True) -> dict[str, str]:
    """init -> what `build_variant` loads: a directory postfit built, or the user's model id/path. Without
    `weights`, only the inits that need no pre-training (random: the tokenizer and config)."""
    if study.model.name_or_path is not None:
        return {init: study.model.name_or_path for init in study.grid.inits}
    from postfit.config.scaling import init_tokens
    from postfit.train.pretrain import ensure_base

    snapshots = sorted({t for i in study.grid.inits if (t := init_tokens(i))})  # pretrained@TOKENS checkpoints
    need = weights and ("pretrained" in study.grid.inits or bool(snapshots))
    with tracking(study.report.to, out_dir, "pretrain", study.name):
        dirs = ensure_base(study.pretrain, study.model.preset, study.model.arch, out_dir / "base",
                           need_weights=need, snapshots=snapshots if need else [])  # fmt: skip
    return {init: str(dirs[init]) for init in study.grid.inits if init in dirs}


def check_contamination(study: Study, out_dir: Path, splits: dict[str, list[dict]]) -> dict:
    """Overlap of every training source with every evaluation split (postfit.analysis.contamination): the report
    `ensure_data` stored with the data, or (a directory from before it did) computed now and stored."""
    from postfit.analysis.contamination import study_contamination

    path = out_dir / "data" / "contamination.json"
    if path.exists():
        return read_json(path)
    report = study_contamination(study, splits)
    atomic_write_json(path, report)
    return report


def check_sandbox(study: Study, out_dir: Path, splits: dict[str, list[dict]]) -> None:
    """Before any training: code items need the sandbox's required layers, or the study's opt-in
    (`sandbox.allow_weak`); the layers used are stored in sandbox.json for the report."""
    if not any(item.get("domain") == "code" for items in splits.values() for item in items):
        return
    from postfit.sandbox import allow_weak, check

    if study.sandbox.allow_weak:
        allow_weak(True)
    state = check(f"study {study.name!r} (its code items)")
    if is_main():
        atomic_write_json(out_dir / "sandbox.json", state)


def _write_once(path: Path, obj) -> None:
    """The main process writes; every process waits until it has."""
    if is_main():
        atomic_write_json(path, obj)
    barrier()


def _posttrain(study: Study, run: Run, model, tokenizer, splits: dict[str, list[dict]], out_dir: Path):
    """(post-trained model, training stats) for recipes sft, rl and sft+rl.

    train.json is written after the final model, so its presence means "trained": a run interrupted during
    evaluation reloads its model, and sft+rl reuses the `sft` run's model instead of training it again.
    """
    from transformers import AutoModelForCausalLM

    from postfit.study.data import heldout_split
    from postfit.train.common import discard_checkpoints, has_weights
    from postfit.train.rl import train_rl
    from postfit.train.sft import train_sft

    run_dir = out_dir / "runs" / run.name
    for directory in {run_dir, out_dir / "runs" / run.sft.name}:
        if (directory / "train.json").exists() and not has_weights(directory / "model"):
            log.warning("%s: train.json without weights in model/; training again", directory)
            if is_main():
                (directory / "train.json").unlink()
            barrier()
    if (run_dir / "train.json").exists():
        discard_checkpoints(run_dir / "checkpoints")  # left by a kill between train.json and their removal
        return AutoModelForCausalLM.from_pretrained(run_dir / "model"), read_json(run_dir / "train.json")
    stats: dict = {}
    if run.recipe in ("sft", "sft+rl"):
        sft_dir = out_dir / "runs" / run.sft.name
        trained = (sft_dir / "train.json").exists
        # sft+rl trains the `sft` run's model under that run's lock (its worker holds it already for `sft`).
        lock = TaskLock(sft_dir) if run.recipe != "sft" else None
        if not trained() and (lock is None or from_main(lambda: lock.acquire_or_wait(trained))):
            if lock is not None:
                sweep(sft_dir)
            try:
                with tracking(study.report.to, out_dir, sft_dir.name, study.name):
                    sft_stats = train_sft(model, tokenizer, splits["train"], study.sft, sft_dir, run.seed,
                                          study.data.sft)  # fmt: skip
                _write_once(sft_dir / "train.json", sft_stats)
                discard_checkpoints(sft_dir / "checkpoints")
            finally:
                if lock is not None and is_main():
                    lock.release()
            if run.recipe == "sft":
                return model, sft_stats
        model = AutoModelForCausalLM.from_pretrained(sft_dir / "model")
        stats["sft_from"] = str(sft_dir / "model")
    heldout = splits[heldout_split(study)][: study.rl.heldout_items]
    prompts = splits.get("rl") or splits["train"]
    with tracking(study.report.to, out_dir, run.name, study.name):
        stats.update(train_rl(model, tokenizer, prompts, heldout, study.rl, study.eval, run_dir, run.seed))
    _write_once(run_dir / "train.json", stats)
    discard_checkpoints(run_dir / "checkpoints")
    return model, stats


def execute_run(study: Study, run: Run, base: str, splits: dict[str, list[dict]], out_dir: Path) -> list[dict]:
    """Build, post-train and evaluate one run; its results.jsonl is written last, so it marks the run done."""
    from postfit.analysis.stats import run_results
    from postfit.evaluation.generate import evaluate_splits
    from postfit.models import build_variant
    from postfit.study.data import eval_split_names
    from postfit.train.pretrain import pretrain_tokens

    run_dir = out_dir / "runs" / run.name
    variant = build_variant(base, run.init, run.seed, study.model.dtype, study.model.chat_template)
    meta = {"run": run.name, "init": run.init, "recipe": run.recipe, "seed": run.seed, "base": base,
            "params": variant.params, "config_hash": variant.config_hash}  # fmt: skip
    meta.update(examples=run.examples, pretrain_tokens=pretrain_tokens(run.init, base))
    model = variant.model
    if run.recipe != "none":
        train = {**splits, "train": splits["train"][: run.examples]} if run.examples else splits
        model, meta["train"] = _posttrain(study, run, model, variant.tokenizer, train, out_dir)
    model.to(device())  # the trainer moved trained models already; untrained ones start on the CPU
    eval_splits = {s: splits[s] for s in eval_split_names(study, splits)}
    saved = str(run_dir / "model") if run.recipe != "none" else str(base)  # what eval.backend: vllm loads
    with stage("eval", f"{run.name} on {', '.join(eval_splits)}"):
        samples = evaluate_splits(model, variant.tokenizer, eval_splits, study.eval, run.seed, saved)  # sharded
    model.to(device())
    if is_main():
        write_jsonl(run_dir / "samples.jsonl", samples)
    if study.probes.enabled:
        from postfit.analysis.probes import ensure_probe_data, run_probes

        data = ensure_probe_data(study.probes, out_dir)
        with tracking(study.report.to, out_dir, f"{run.name}-adapt", study.name):  # the adaptation probe's SFT
            run_probes(study.probes, data, model, variant.tokenizer, study.eval, run_dir, run.seed)
    rows = run_results(meta, samples, study.eval.k, study.report.bootstrap, study.report.ci)
    if is_main():
        results = jsonl_text(rows)
        meta["files"] = record_files(run_dir, {"results.jsonl": sha256(results)})  # see integrity.damaged
        atomic_write_json(run_dir / "run.json", meta)
        atomic_write_text(run_dir / "results.jsonl", results)  # last: marks the run as done
    barrier()
    return rows


def _check_backends(study: Study) -> None:
    """vLLM, where the study asks for it, is installed and has a GPU, and so are the trackers of `report.to`:
    checked before anything is written."""
    from postfit.evaluation.vllm import require_vllm

    require_trackers(study.report.to)
    if study.rl.vllm is not None and any(r.recipe in ("rl", "sft+rl") for r in grid_runs(study)):
        require_vllm("rl.vllm")
    if study.eval.backend == "vllm":
        require_vllm("eval.backend")


def _prepare(study: Study, out_dir: Path, weights: bool) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """The study's data (checked: sandbox, contamination, probes) and its bases (pre-trained ones if `weights`),
    made once and then reused."""
    from postfit.analysis.contamination import drop_items

    with main_first():  # the main process writes the data and checks; the others then read them
        _check_same_study(study, out_dir)
        splits = ensure_data(study, out_dir)
        check_sandbox(study, out_dir, splits)
        splits = drop_items(splits, check_contamination(study, out_dir, splits))  # contamination.drop
        if study.probes.enabled:
            from postfit.analysis.probes import ensure_probe_data

            ensure_probe_data(study.probes, out_dir)  # fails before any training if a probe cannot be built
    return splits, ensure_bases(study, out_dir, weights)


def done(out_dir: Path, run: Run) -> bool:
    return (out_dir / "runs" / run.name / "results.jsonl").exists()


def prepare(study: Study, out_dir: Path, block: bool = True) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """The first task of a study: its data and base models (under the directory's lock, so one worker makes them
    and the others read them); cheap once done. Checks first that the study can run here.

    With `block=False`, a worker that finds the data and the tokenizer made while another worker holds the lock
    (pre-training) reads them and goes on: the bases then lack the pre-trained inits, which `work` asks for again.
    """
    import torch

    if study.requires_gpu and not torch.cuda.is_available():
        raise UserError(f"{study.name}: requires_gpu is set and no CUDA device is visible; this study would take "
                        f"weeks on a CPU (see `postfit plan {study.name}`)")  # fmt: skip
    _check_backends(study)
    fresh = not out_dir.exists()
    lock = TaskLock(out_dir)  # one worker prepares data and bases at a time; the next finds them done
    # The tokenizer and config are made after the data and its checks, so they mark everything but the weights.
    made = (out_dir / "base" / "architecture").is_dir
    if not from_main(lambda: lock.acquire_or_wait(lambda: not block and made())):
        return _prepare(study, out_dir, weights=False)  # only reads: the lock's holder writes
    try:
        for directory, recursive in ((out_dir, False), (out_dir / "data", True), (out_dir / "base", True)):
            sweep(directory, recursive)
        with writing_under(out_dir / "base"):  # pre-training's checkpoints (data files name themselves)
            return _prepare(study, out_dir, weights=True)
    finally:
        if is_main():
            lock.release()
            if fresh and not any(out_dir.iterdir()):
                out_dir.rmdir()  # refused before anything was written: leave no empty directory behind


def work(study: Study, out_dir: Path, runs: list[Run], splits: dict[str, list[dict]], bases: dict[str, str]) -> None:
    """Train and evaluate every unfinished run of `runs`, each under its lock; runs another worker holds are tried
    again until they are done (or their holder is dead, and the lock is taken over)."""
    pending = list(runs)
    while pending:
        waiting = []
        for run in pending:
            if done(out_dir, run) and not from_main(lambda r=run: damaged(out_dir / "runs" / r.name)):
                log.info("%s: finished", run.name)
                continue
            if run.init not in bases:  # another worker is pre-training: ask again, take other runs meanwhile
                bases = {**bases, **_later_bases(study, out_dir)}
            lock = TaskLock(out_dir / "runs" / run.name)
            if run.init not in bases or _sft_elsewhere(out_dir, run) or not from_main(lock.acquire):
                waiting.append(run)
                continue
            try:
                if done(out_dir, run) and (bad := damaged(out_dir / "runs" / run.name)):
                    undo(out_dir / "runs" / run.name, bad)
                if not done(out_dir, run):
                    sweep(out_dir / "runs" / run.name)
                    with run_log(out_dir / "runs" / run.name):
                        log.info("%s: starting", run.name)
                        execute_run(study, run, bases[run.init], splits, out_dir)
            finally:
                if is_main():
                    lock.release()
        if waiting == pending:
            time.sleep(POLL_S)
        pending = waiting


def _later_bases(study: Study, out_dir: Path) -> dict[str, str]:
    """Every base, once the worker that holds the directory's lock has pre-trained (nothing while it still holds
    it); a dead holder's lock is taken over and its pre-training resumed here."""
    lock = TaskLock(out_dir)
    if not from_main(lock.acquire):
        return {}
    try:
        sweep(out_dir / "base")
        with writing_under(out_dir / "base"):
            return ensure_bases(study, out_dir)
    finally:
        if is_main():
            lock.release()


def _sft_elsewhere(out_dir: Path, run: Run) -> bool:
    """An sft+rl run whose `sft` run another live worker is training now: this worker takes other runs first."""
    if run.recipe != "sft+rl":
        return False
    sft_dir = out_dir / "runs" / run.sft.name
    info = holder(sft_dir / ".lock")
    return not (sft_dir / "train.json").exists() and info is not None and not is_stale(info)


def finish(study: Study, out_dir: Path) -> Path:
    """The last task: results.jsonl and the report, once every run is done; the path of report.md (not written
    while runs remain)."""
    runs = grid_runs(study)
    md = out_dir / "report.md"
    if not all(done(out_dir, run) for run in runs):
        log.info("runs remain; the report is written by the worker that finishes the last one")
        return md
    rows = [row for run in runs for row in read_jsonl(out_dir / "runs" / run.name / "results.jsonl")]
    if is_main():
        from postfit.report.build import write_report

        lock = TaskLock(out_dir)  # two workers that finish together: the second finds it written meanwhile
        asked = time.time()

        def written() -> bool:
            return md.exists() and md.stat().st_mtime >= asked and (out_dir / "results.jsonl").exists()

        if not lock.acquire_or_wait(written):
            log.info("report written by another worker meanwhile")
            barrier()
            return md
        try:
            sweep(out_dir, False)
            # the report first: it refuses a damaged run before results.jsonl exists
            with writing_under(out_dir), stage("report", f"{len(runs)} runs"):
                md, _ = write_report(out_dir)
            write_jsonl(out_dir / "results.jsonl", rows)
        finally:
            lock.release()
    barrier()
    return md


def run_study(study: Study, out_dir: Path, shard: tuple[int, int] | None = None, only: set[str] | None = None) -> Path:
    """Run every unfinished run of the study into `out_dir` (with `shard` (i, n): every n-th run from the i-th;
    with `only`: the runs of those names), then its report; return the path of report.md.

    Any number of workers may share `out_dir`: preparing the data and bases, and each run, happen under a lock
    (study/locks.py), so no run is trained twice and a dead worker's run is taken over and resumed.
    """
    splits, bases = prepare(study, out_dir, block=False)
    runs = [r for i, r in enumerate(grid_runs(study))
            if (shard is None or i % shard[1] == shard[0]) and (only is None or r.name in only)]  # fmt: skip
    # Trained runs first, untrained ones last: workers sharing the directory then end together, the short runs
    # filling in while the last long ones finish. Each run is seeded by itself, so the order changes no result.
    work(study, out_dir, sorted(runs, key=lambda r: r.recipe == "none"), splits, bases)
    return finish(study, out_dir)
