"""A study's grid on Ray and Slurm (submitit): the same results as one local process, each run trained once."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RUNS, TINY_STUDY, postfit
from postfit.config import parse_study
from postfit.io import read_jsonl
from postfit.study.executors import PREPARE, REPORT, launch_command, run_task, task_graph


def _study(**changes):
    return parse_study({**TINY_STUDY, **changes}, "test")


def test_tasks_wait_for_what_they_need():
    """prepare first; an sft+rl run after the sft run of the same init, seed and data size (when the grid has
    one); the report after every run."""
    graph = task_graph(_study(grid={"inits": ["pretrained", "random"], "recipes": ["sft", "sft+rl"], "seeds": [0]}))
    assert graph[PREPARE] == []
    assert graph["random-sft-s0"] == [PREPARE]
    assert graph["random-sft+rl-s0"] == [PREPARE, "random-sft-s0"]
    assert graph[REPORT] == ["pretrained-sft-s0", "pretrained-sft+rl-s0", "random-sft-s0", "random-sft+rl-s0"]
    order = list(graph)
    assert all(order.index(dep) < order.index(task) for task, deps in graph.items() for dep in deps)
    # Without an `sft` run in the grid, sft+rl trains its SFT stage itself (under that stage's lock).
    assert task_graph(_study())["random-sft+rl-s0"] == [PREPARE]


def test_where_a_study_runs_is_not_in_its_fingerprint():
    base = _study()
    moved = _study(resources={"gpus_per_run": 4, "cpus_per_run": 8, "partition": "gpu", "time_min": 60})
    assert moved.fingerprint() == base.fingerprint()
    assert _study(sft={**TINY_STUDY["sft"], "steps": 61}).fingerprint() != base.fingerprint()


def test_a_multi_gpu_run_is_started_through_accelerate_launch(tmp_path):
    res = _study(resources={"gpus_per_run": 4, "accelerate_config": "configs/accelerate/zero2.yaml"}).resources
    cmd = launch_command(tmp_path / "s.yaml", tmp_path / "out", "random-sft+rl-s0", res)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--num_processes", "4"]
    assert cmd[cmd.index("--config_file") + 1] == "configs/accelerate/zero2.yaml"
    assert cmd[-7:] == ["postfit", "run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--only",
                        "random-sft+rl-s0"]  # fmt: skip
    assert "--multi_gpu" in launch_command(tmp_path / "s.yaml", tmp_path, "r", _study(resources={"gpus_per_run": 2})
                                           .resources)  # fmt: skip


def test_bad_input_in_a_task_comes_back_as_a_message(tmp_path):
    """A task's UserError is returned (the driver exits 2 with it), not raised as a worker crash; nothing written."""
    message = run_task(_study(requires_gpu=True), tmp_path / "out", PREPARE)
    assert "requires_gpu is set and no CUDA device is visible" in message
    assert not (tmp_path / "out").exists()


def _run_in_process(*args: str):
    """`postfit run ARGS` in this process (what the argument checks do happens before any model is loaded)."""
    from typer.testing import CliRunner

    from postfit.cli.app import app

    result = CliRunner().invoke(app, ["run", *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--executor", "dask"], "--executor: expected one of local, workers, ray, slurm, got 'dask'"),
        (["--executor", "ray", "--shard", "0/2"], "--executor ray schedules every run itself"),
        (["--only", "random-sft-s0"], "--only: random-sft-s0 not in the grid of two-processes"),
        (["--workers", "2", "--shard", "0/2"], "with 2 workers (--workers, resources.workers) postfit starts them"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_executor_flags_exit_2(tmp_path, args, expected):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(TINY_STUDY))
    code, output = _run_in_process(str(path), "--out", str(tmp_path / "out"), *args)
    assert code == 2 and expected in output, output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_a_missing_executor_extra_exits_2_naming_it(tmp_path, monkeypatch, executor):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(TINY_STUDY))
    monkeypatch.setitem(sys.modules, {"ray": "ray", "slurm": "submitit"}[executor], None)  # import fails
    code, output = _run_in_process(str(path), "--out", str(tmp_path / "out"), "--executor", executor)
    assert code == 2 and f"install the {executor} extra (pip install -e '.[{executor}]')" in output, output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_only_reruns_just_the_named_run(tiny_study, tmp_path):
    _, one = tiny_study
    out = tmp_path / "copy"
    shutil.copytree(one, out)
    shutil.rmtree(out / "runs" / "random-none-s0")
    (out / "report.md").unlink()
    before = (out / "runs" / "pretrained-none-s0" / "results.jsonl").stat().st_mtime_ns
    postfit("run", str(tiny_study[0]), "--out", str(out), "--only", "random-none-s0")
    assert read_jsonl(out / "runs" / "random-none-s0" / "samples.jsonl") == read_jsonl(
        one / "runs" / "random-none-s0" / "samples.jsonl"
    )
    assert (out / "runs" / "pretrained-none-s0" / "results.jsonl").stat().st_mtime_ns == before
    assert (out / "report.md").exists(), "the last run's worker writes the report"


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_ray_and_slurm_give_the_results_of_one_local_process(tiny_study, tmp_path, executor):
    """Ray (a local cluster on loopback) and submitit (local processes: no sbatch here) run the tiny study's tasks:
    results, samples and report as the local run's, every run started once, no lock left behind."""
    path, one = tiny_study
    out = tmp_path / executor
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {"RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    try:
        postfit("run", str(path), "--out", str(out), "--executor", executor, env=env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert read_jsonl(out / "results.jsonl") == read_jsonl(one / "results.jsonl")
    for run in TINY_RUNS:
        assert read_jsonl(out / "runs" / run / "samples.jsonl") == read_jsonl(one / "runs" / run / "samples.jsonl")
        assert (out / "runs" / run / "log.txt").read_text().count(f"{run}: starting") == 1, run
    assert (out / "report.md").read_text().count("pretrained") == (one / "report.md").read_text().count("pretrained")
    assert not list(out.rglob(".lock*")), "a lock was left behind"
