"""Where a study's tasks run: `local` (this process, study/runner.py; with `resources.workers` / `--workers` N,
N such processes on this machine), `ray` (Ray tasks) or `slurm` (submitit jobs).

A study is a list of tasks with dependencies: `prepare` (data and base models), one task per run (an `sft+rl`
run after its `sft` run, when the grid has both), then `report`. Each task is idempotent and locked
(study/locks.py), so a retried or duplicated task finds its work done or resumes it. Ray schedules tasks with
their resources (`resources.cpus_per_run`, `resources.gpus_per_run`) on the cluster at `--ray-address` /
RAY_ADDRESS, or on a local one; submitit submits one Slurm job per task (partition, time, GPUs from
`resources`), or runs them as local processes where there is no `sbatch`. A run with more than one GPU is
started through `accelerate launch` (one process per GPU) from inside its task.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from postfit.config import ResourcesOptions, Study
from postfit.config.grid import grid_runs
from postfit.errors import UserError
from postfit.layout import StudyDir

log = logging.getLogger(__name__)

EXTRAS = {"ray": "ray", "slurm": "submitit"}  # executor -> the module its extra installs
PREPARE, REPORT = ":prepare", ":report"


@dataclass(frozen=True)
class Launch:
    """What `postfit run` was asked besides the study: every executor takes it, each reads what it needs."""

    study_arg: str  # the study as given (a built-in name or a path): worker processes are started with it
    unsafe: bool = False  # --unsafe-weak-sandbox
    shard: tuple[int, int] | None = None  # --shard I/N: every N-th run from the I-th
    only: tuple[str, ...] = ()  # --only NAME...: these runs, then the report if all are done
    ray_address: str | None = None  # --ray-address
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE...: worker processes get them with the study


def task_graph(study: Study) -> dict[str, list[str]]:
    """task -> the tasks it waits for, in an order that respects them."""
    names = {r.name for r in grid_runs(study)}
    graph = {PREPARE: []}
    for run in grid_runs(study):
        base = run.base and run.base.name
        graph[run.name] = [PREPARE] + ([base] if base in names else [])
    graph[REPORT] = [r.name for r in grid_runs(study)]
    return graph


def launch_command(study_file: Path, out_dir: Path, run: str, res: ResourcesOptions) -> list[str]:
    """The `accelerate launch` of one run on `res.gpus_per_run` processes (the multi-GPU path of postfit run)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(res.gpus_per_run)]
    cmd += ["--config_file", res.accelerate_config] if res.accelerate_config else ["--multi_gpu"]
    return [*cmd, "-m", "postfit", "run", str(study_file), "--out", str(out_dir), "--only", run]


def run_task(study: Study, out_dir: Path, task: str, *after) -> str | None:
    """One task, in a Ray worker or a Slurm job (`after`: the results of the tasks it waited for, unused).
    Returns None, or the message of a UserError (bad input is reported by the driver, not as a crash)."""
    import torch

    from postfit.ui import setup_logging

    setup_logging(sys.stdout)

    from postfit.study import runner

    threads = torch.get_num_threads()
    torch.set_num_threads(study.resources.cpus_per_run)
    try:
        layout = StudyDir(out_dir)
        if task == REPORT:
            runner.probe_control(study, layout, runner.prepare(study, layout)[1])  # once, before the report
            runner.finish(study, layout)
        elif task == PREPARE or study.resources.gpus_per_run <= 1:
            splits, bases = runner.prepare(study, layout)
            runs = [r for r in grid_runs(study) if r.name == task]
            runner.work(study, layout, runs, splits, bases)
        else:
            from postfit.io import atomic_write_text

            study_file = layout.run(task).launch
            atomic_write_text(study_file, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
            subprocess.run(launch_command(study_file, out_dir, task, study.resources), check=True)
    except UserError as e:
        return str(e)
    finally:  # the process that ran it (a reused worker, a test) keeps its own thread count
        torch.set_num_threads(threads)
    return None


def run_local(study: Study, out_dir: Path, launch: Launch) -> Path:
    """This process walks the grid (its shard or its `only` runs), then writes the report."""
    from postfit.study.runner import run_study

    return run_study(study, out_dir, launch.shard, set(launch.only) or None)


def run_workers(study: Study, out_dir: Path, launch: Launch) -> Path:
    """`resources.workers` processes of `postfit run` on this machine, sharing OUT_DIR (each run is locked,
    study/locks.py), each with cores // workers torch threads; their lines are printed here, each after its
    worker's number. Returns report.md; a worker that failed makes this exit with its code (2: bad input)."""
    import threading

    workers = study.resources.workers
    args = [launch.study_arg, *(["--unsafe-weak-sandbox"] if launch.unsafe else []),
            *(f"--only={name}" for name in launch.only), *(f"--set={o}" for o in launch.overrides)]  # fmt: skip
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "COLUMNS": os.environ.get("COLUMNS", "120")}  # fmt: skip
    cmd = [sys.executable, "-m", "postfit", "run", *args, "--out", str(out_dir), "--workers", "1"]
    log.info("%d workers on this machine, %d torch thread%s each", workers, threads, "s" * (threads > 1))
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
             for _ in range(workers)]  # fmt: skip

    def relay(k: int, stream) -> None:
        for line in stream:
            if line.strip():  # progress bars, drawn for a pipe, leave blank lines
                print(f"[worker {k}] {line}", end="", flush=True)

    relays = [threading.Thread(target=relay, args=(k, p.stdout), daemon=True) for k, p in enumerate(procs)]
    for t in relays:
        t.start()
    try:
        codes = [p.wait() for p in procs]
    finally:  # interrupted: the workers stop too (their runs resume on the next `postfit run`)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        for t in relays:
            t.join()
    if failed := [c for c in codes if c]:
        raise SystemExit(2 if 2 in failed else failed[0])
    return out_dir / "report.md"


def _require(executor: str):
    import importlib

    try:
        return importlib.import_module(EXTRAS[executor])
    except ImportError:
        raise UserError(f"--executor {executor}: {EXTRAS[executor]} is not installed; install the "
                        f"{executor} extra (pip install -e '.[{executor}]')") from None  # fmt: skip


def _raise_user_errors(messages) -> None:
    if problems := [m for m in messages if m]:
        raise UserError(problems[0])


def run_ray(study: Study, out_dir: Path, launch: Launch) -> Path:
    """Every task as a Ray task, each after the tasks it waits for (Ray passes their results as arguments)."""
    ray = _require("ray")
    address = launch.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:  # a local cluster of this machine's cores, on loopback, telling nobody about it
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=True)
    try:
        res = study.resources
        task = ray.remote(run_task)
        refs: dict = {}
        for name, after in task_graph(study).items():
            need = (0, 0) if name == REPORT else (res.cpus_per_run, res.gpus_per_run)  # the report loads no model
            opts = task.options(num_cpus=need[0], num_gpus=need[1], name=f"postfit {name}")
            refs[name] = opts.remote(study, out_dir, name, *(refs[a] for a in after))
        _raise_user_errors(ray.get(list(refs.values())))
    finally:
        ray.shutdown()
    return out_dir / "report.md"


def run_slurm(study: Study, out_dir: Path, launch: Launch) -> Path:
    """Every task as a submitit job, submitted once the jobs it waits for have finished; Slurm where `sbatch`
    exists, local processes otherwise (at most cores // cpus_per_run at once)."""
    submitit = _require("slurm")
    res = study.resources
    executor = submitit.AutoExecutor(folder=out_dir / "slurm")
    params = {"name": f"postfit-{study.name}", "timeout_min": res.time_min, "cpus_per_task": res.cpus_per_run,
              "gpus_per_node": res.gpus_per_run, "slurm_partition": res.partition, "mem_gb": res.mem_gb}  # fmt: skip
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    local = executor.cluster != "slurm"
    limit = res.max_parallel or (max(1, (os.cpu_count() or 1) // res.cpus_per_run) if local else 10**9)
    log.info("submitit: %s executor, at most %d jobs at once, logs in %s", executor.cluster, limit,
             out_dir / "slurm")  # fmt: skip
    graph = task_graph(study)
    jobs: dict = {}
    finished: set[str] = set()
    while len(finished) < len(graph):
        for name, after in graph.items():
            if name not in jobs and set(after) <= finished and len(jobs) - len(finished) < limit:
                jobs[name] = executor.submit(run_task, study, out_dir, name)
        for name, job in jobs.items():
            if name not in finished and job.done():
                _raise_user_errors([job.result()])  # a job that crashed raises here, with its log's path
                finished.add(name)
        time.sleep(0.5)
    return out_dir / "report.md"


# --executor NAME -> the function that runs a study there; `local` with resources.workers > 1 is `workers`.
EXECUTORS = {"local": run_local, "workers": run_workers, "ray": run_ray, "slurm": run_slurm}


def executor_for(name: str, study: Study) -> str:
    return "workers" if name == "local" and study.resources.workers > 1 else name
