"""The study runner, in the order of the work: prepare the data and base models (study/prepare.py), then every run
of the grid in its own directory (post-train it by its recipe, study/posttrain.py; evaluate; probe), then the
report. Where each file goes is postfit/layout.py's; who does which run is study/locks.py's.

Re-running skips finished runs; a run killed mid-training resumes from its last checkpoint. Workers sharing DIR
(and the processes of one `accelerate launch`, postfit.distributed) split the work without doing a run twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from postfit.config import Study
from postfit.config.grid import Run, grid_runs
from postfit.config.recipes import RECIPES
from postfit.distributed import barrier, device, from_main, is_main
from postfit.errors import writing_under
from postfit.io import atomic_write_json, atomic_write_text, jsonl_text, read_json, read_jsonl, sha256, write_jsonl
from postfit.item import Item
from postfit.layout import StudyDir, damaged
from postfit.study.integrity import record_files, run_log, sweep, undo
from postfit.study.locks import POLL_S, claim, holder, is_stale
from postfit.study.posttrain import posttrain
from postfit.study.prepare import later_bases, prepare
from postfit.train.tracking import tracking
from postfit.ui import stage

log = logging.getLogger(__name__)


def execute_run(study: Study, run: Run, base: str, splits: dict[str, list[Item]], layout: StudyDir) -> list[dict]:
    """Build, post-train and evaluate one run; its results.jsonl is written last, so it marks the run done."""
    from postfit.analysis.distance import annotate, reference_of
    from postfit.analysis.stats import run_results
    from postfit.evaluation.generate import evaluate_splits
    from postfit.models import build_variant
    from postfit.study.data import eval_split_names
    from postfit.train.pretrain import pretrain_tokens

    d = layout.run(run)
    spec = study.model
    variant = build_variant(base, run.init, run.seed, spec.dtype, spec.chat_template, spec.attn_implementation)
    meta = {"run": run.name, "init": run.init, "recipe": run.recipe, "seed": run.seed, "base": base,
            "params": variant.params, "config_hash": variant.config_hash}  # fmt: skip
    meta.update(examples=run.examples, pretrain_tokens=pretrain_tokens(run.init, base))
    model = variant.model
    if RECIPES[run.recipe].trains:
        train = {**splits, "train": splits["train"][: run.examples]} if run.examples else splits
        model, meta["train"] = posttrain(study, run, model, variant.tokenizer, train, layout)
    model.to(device())  # the trainer moved trained models already; untrained ones start on the CPU
    eval_splits = {s: splits[s] for s in eval_split_names(study, splits)}
    saved = str(d.model) if RECIPES[run.recipe].trains else str(base)  # what eval.backend: vllm loads
    with stage("eval", f"{run.name} on {', '.join(eval_splits)}"):
        samples = evaluate_splits(model, variant.tokenizer, eval_splits, study.eval, run.seed, saved)  # sharded
    model.to(device())
    samples = annotate(samples, read_json(layout.distance), reference_of(run))  # prepare stored it
    if is_main():
        write_jsonl(d.samples, samples)
    if study.probes.enabled:
        from postfit.probes import ensure_probe_data, run_probes

        data = ensure_probe_data(study.probes, layout.root)
        with tracking(study.report.to, layout.root, f"{run.name}-adapt", study.name):  # the adaptation probe's SFT
            run_probes(study.probes, data, model, variant.tokenizer, study.eval, d.path, run.seed)
    measure_forgetting(study, run, base, model, layout)  # after the probes: rebuilding the start reseeds
    rows = run_results(meta, samples, study.eval.k, study.report.bootstrap, study.report.ci)
    if is_main():
        results = jsonl_text(rows)
        meta["files"] = record_files(d.path, {d.results.name: sha256(results)})  # see integrity.damaged
        atomic_write_json(d.run_json, meta)
        atomic_write_text(d.results, results)  # last: marks the run as done
    barrier()
    return rows


def measure_forgetting(study: Study, run: Run, base: str, model, layout: StudyDir) -> None:
    """The final model's loss, and KL from the model the run started from, on the corpus blocks pre-training never
    saw (evaluation/forgetting.py), in forgetting.jsonl; nothing for a model postfit did not pre-train
    (`model.name_or_path`: its pre-training corpus is unknown)."""
    from postfit.evaluation.forgetting import forgetting_rows, read_blocks
    from postfit.models import build_variant

    if study.model.name_or_path is not None:
        return
    start, spec = None, study.model
    if RECIPES[run.recipe].trains:  # the weights it was built from before post-training, built again alike
        variant = build_variant(base, run.init, run.seed, spec.dtype, spec.chat_template, spec.attn_implementation)
        start = variant.model.to(model.device)
    with stage("forgetting", f"{run.name} on the held-out pre-training corpus"):
        rows = forgetting_rows(model, read_blocks(layout.base.heldout), start)
    if is_main():
        write_jsonl(layout.run(run).forgetting, rows)


def work(study: Study, layout: StudyDir, runs: list[Run], splits: dict[str, list[Item]], bases: dict[str, str]):
    """Train and evaluate every unfinished run of `runs`, each under its lock; runs another worker holds are tried
    again until they are done (or their holder is dead, and the lock is taken over)."""
    pending = list(runs)
    while pending:
        waiting = []
        for run in pending:
            d = layout.run(run)
            if d.done() and not from_main(lambda d=d: damaged(d.path)):
                log.info("%s: finished", run.name)
                continue
            if run.init not in bases:  # another worker is pre-training: ask again, take other runs meanwhile
                bases = {**bases, **later_bases(study, layout)}
            if run.init not in bases or _base_elsewhere(layout, run):
                waiting.append(run)
                continue
            with claim(d.path) as mine:
                if not mine:
                    waiting.append(run)
                    continue
                if d.done() and (bad := damaged(d.path)):
                    undo(d.path, bad)
                if not d.done():
                    sweep(d.path)
                    with run_log(d.path):
                        log.info("%s: starting", run.name)
                        execute_run(study, run, bases[run.init], splits, layout)
        if waiting == pending:
            time.sleep(POLL_S)
        pending = waiting


def _base_elsewhere(layout: StudyDir, run: Run) -> bool:
    """A run whose base run (the one its model continues) another live worker is training now: this worker takes
    other runs first."""
    if run.base is None:
        return False
    base = layout.run(run.base)
    info = holder(base.lock)
    return not base.trained() and info is not None and not is_stale(info)


def probe_control(study: Study, layout: StudyDir, bases: dict[str, str]) -> None:
    """The context probe's positive control (postfit.context_probe), trained once per study by a worker that has its
    base and finds it undone and not held by another (which then takes the runs instead)."""
    spec, model = study.probes.context, study.model
    if _control_done(study, layout) or spec.control.init not in bases:
        return
    from postfit.context_probe import ensure_control
    from postfit.models import build_variant

    layout.control.parent.mkdir(parents=True, exist_ok=True)
    with claim(layout.control.parent) as mine:
        if mine and not layout.control.exists():
            init = spec.control.init
            variant = build_variant(bases[init], init, spec.seed, model.dtype, model.chat_template,
                                    model.attn_implementation)  # fmt: skip
            with writing_under(layout.control.parent):
                ensure_control(spec, study.eval, variant, layout.control, layout.control_work, spec.seed)
    barrier()


def _control_done(study: Study, layout: StudyDir) -> bool:
    spec = study.probes.context
    return spec is None or spec.control is None or layout.control.exists()


def finish(study: Study, layout: StudyDir) -> Path:
    """The last task: results.jsonl and the report, once every run (and the probe's control) is done; the path of
    report.md (not written while runs remain)."""
    runs = grid_runs(study)
    md = layout.report_md
    if not all(layout.run(run).done() for run in runs) or not _control_done(study, layout):
        log.info("runs remain; the report is written by the worker that finishes the last one")
        return md
    rows = [row for run in runs for row in read_jsonl(layout.run(run).results)]
    asked = time.time()

    def written() -> bool:  # two workers that finish together: the second finds it written meanwhile
        return md.exists() and md.stat().st_mtime >= asked and layout.results.exists()

    with claim(layout.root, done=written) as mine:
        if not mine:
            log.info("report written by another worker meanwhile")
        elif is_main():
            from postfit.report.build import write_report

            sweep(layout.root, False)
            # The report first: it refuses a damaged run before results.jsonl exists.
            with writing_under(layout.root), stage("report", f"{len(runs)} runs"):
                md, _ = write_report(layout.root)
            write_jsonl(layout.results, rows)
    barrier()
    return md


def run_study(study: Study, out_dir: Path, shard: tuple[int, int] | None = None, only: set[str] | None = None) -> Path:
    """Run every unfinished run of the study into `out_dir` (with `shard` (i, n): every n-th run from the i-th;
    with `only`: the runs of those names), then its report; return the path of report.md.

    Any number of workers may share `out_dir`: preparing the data and bases, and each run, happen under a lock
    (study/locks.py), so no run is trained twice and a dead worker's run is taken over and resumed.
    """
    layout = StudyDir(out_dir)
    splits, bases = prepare(study, layout, block=False)
    runs = [r for i, r in enumerate(grid_runs(study))
            if (shard is None or i % shard[1] == shard[0]) and (only is None or r.name in only)]  # fmt: skip
    # Trained runs first, untrained ones last: workers sharing the directory then end together, the short runs
    # filling in while the last long ones finish. Each run is seeded by itself, so the order changes no result.
    probe_control(study, layout, bases)  # first, where this worker has its base (the one that pre-trained)
    work(study, layout, sorted(runs, key=lambda r: not RECIPES[r.recipe].trains), splits, bases)
    if not _control_done(study, layout):  # else now, before the report
        probe_control(study, layout, {**bases, **later_bases(study, layout)})
    return finish(study, layout)
