"""Workers sharing one study directory: per-run locks, taken over from dead holders, shards, `postfit status`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import TINY_RUNS, postfit
from postfit.io import read_jsonl
from postfit.study import locks
from postfit.study.locks import TaskLock, holder, is_stale


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_one_holder_at_a_time(tmp_path):
    a, b = TaskLock(tmp_path), TaskLock(tmp_path)
    assert a.acquire() and not b.acquire()
    assert holder(tmp_path / ".lock")["pid"] == os.getpid()
    a.release()
    assert not (tmp_path / ".lock").exists() and b.acquire()
    b.release()


def test_dead_holders_are_taken_over_live_ones_are_not(tmp_path):
    lock = tmp_path / ".lock"
    now = time.time()
    here, elsewhere = socket.gethostname(), "another-host"
    assert is_stale({"host": here, "pid": _dead_pid(), "heartbeat": now})  # same host: its pid is gone
    assert not is_stale({"host": here, "pid": os.getpid(), "heartbeat": now - 10 * locks.STALE_S})
    assert is_stale({"host": elsewhere, "pid": 1, "heartbeat": now - locks.STALE_S - 1})  # heartbeat too old
    assert not is_stale({"host": elsewhere, "pid": 1, "heartbeat": now - 1})
    lock.write_text(json.dumps({"host": here, "pid": _dead_pid(), "since": now, "heartbeat": now}))
    mine = TaskLock(tmp_path)
    assert mine.acquire() and holder(lock)["pid"] == os.getpid()  # taken over at once
    mine.release()
    lock.write_text(json.dumps({"host": elsewhere, "pid": 1, "since": now, "heartbeat": now}))
    assert not TaskLock(tmp_path).acquire()  # a live holder elsewhere keeps it


def test_heartbeat_keeps_a_held_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    lock = TaskLock(tmp_path)
    assert lock.acquire()
    first = holder(lock.path)["heartbeat"]
    time.sleep(0.3)
    assert holder(lock.path)["heartbeat"] > first
    lock.release()


@pytest.mark.slow
def test_two_workers_on_one_directory_train_each_run_once(tiny_study, tmp_path):
    """A plain worker and a `--shard 1/2` worker share one directory: the same results as one process, every run
    started exactly once, no lock left behind, and `postfit status` says done."""
    path, one = tiny_study
    out = tmp_path / "shared"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "postfit", "run", str(path), "--out", str(out)]
    workers = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for c in (cmd, [*cmd, "--shard", "1/2"])]  # fmt: skip
    logs = []
    for w in workers:
        stdout, stderr = w.communicate(timeout=600)
        assert w.returncode == 0, stderr[-3000:]
        logs.append(stdout + stderr)
    started = Counter(run for text in logs for run in TINY_RUNS if f"{run}: starting" in text.replace("\n", " "))
    assert read_jsonl(out / "results.jsonl") == read_jsonl(one / "results.jsonl")
    for run in TINY_RUNS:
        assert read_jsonl(out / "runs" / run / "samples.jsonl") == read_jsonl(one / "runs" / run / "samples.jsonl")
        assert (out / "runs" / run / "log.txt").exists()
    assert sum(started.values()) <= len(TINY_RUNS) and max(started.values()) == 1, started
    assert not list(out.rglob(".lock*")), "a lock was left behind"
    from postfit.study.status import run_states

    assert [r["state"] for r in run_states(out)] == ["done"] * len(TINY_RUNS)


@pytest.mark.slow
def test_workers_flag_runs_the_study_on_that_many_processes(tiny_study, tmp_path):
    """`postfit run --workers 2`: two processes of this machine share the directory (one torch thread each on two
    cores), each run starts once, the results are the one-process run's, and a worker takes a random-init run
    while the other pre-trains."""
    path, one = tiny_study
    out = tmp_path / "two"
    proc = postfit("run", str(path), "--out", str(out), "--workers", "2")
    text = proc.stdout + proc.stderr
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert f"2 workers on this machine, {threads} torch thread" in " ".join(text.split())
    assert "[worker 0]" in text and "[worker 1]" in text
    assert read_jsonl(out / "results.jsonl") == read_jsonl(one / "results.jsonl")
    for run in TINY_RUNS:
        assert read_jsonl(out / "runs" / run / "samples.jsonl") == read_jsonl(one / "runs" / run / "samples.jsonl")
        assert (out / "runs" / run / "log.txt").read_text().count(f"{run}: starting") == 1, run
    assert not list(out.rglob(".lock*")), "a lock was left behind"
    first = (out / "runs" / "random-sft+rl-s0" / "log.txt").read_text().split(",")[0]  # the first random run
    started = time.mktime(time.strptime(first, "%Y-%m-%d %H:%M:%S"))
    assert started < (out / "base" / "meta.json").stat().st_mtime, "no run started while the other pre-trained"
    assert (out / "report.md").exists()


@pytest.mark.slow
def test_a_worker_that_fails_makes_workers_exit_with_its_code(tiny_study, tmp_path):
    """Bad input met by the workers (a directory of another study) exits 2 with their message; nothing written."""
    import yaml

    path, one = tiny_study
    out = tmp_path / "other"
    shutil.copytree(one, out)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "sft": {"steps": 61, "batch_size": 16}}))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    proc = postfit("run", str(other), "--out", str(out), "--workers", "2", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "holds results of a different study" in " ".join((proc.stdout + proc.stderr).split())
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.slow
def test_runs_from_random_init_go_on_while_another_worker_pretrains(tiny_study, tmp_path):
    """While a live worker holds the directory's lock with the tokenizer made but no weights, `prepare` returns
    at once with the random init only, and the pre-trained one is not offered; once that worker is dead, its
    lock is taken over and the pre-training done here gives the one-process run's weights."""
    from safetensors.torch import load_file

    from postfit.config import load_study
    from postfit.layout import StudyDir
    from postfit.study import prepare

    path, one = tiny_study
    out = tmp_path / "pretraining"
    shutil.copytree(one, out)
    for name in ("pretrained", "meta.json"):
        target = out / "base" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    study = load_study(str(path))[0]
    other = subprocess.Popen(["sleep", "120"])
    try:
        (out / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid, "since": time.time(),
                                                "heartbeat": time.time()}))  # fmt: skip
        start = time.monotonic()
        splits, bases = prepare.prepare(study, StudyDir(out), block=False)
        assert time.monotonic() - start < 30 and set(bases) == {"random"}
        assert splits == prepare.ensure_data(study, StudyDir(out))
        assert prepare.later_bases(study, StudyDir(out)) == {}
    finally:
        other.kill()
        other.wait()
    bases = prepare.later_bases(study, StudyDir(out))
    assert set(bases) == {"random", "pretrained"} and not (out / ".lock").exists()
    weights = load_file(out / "base" / "pretrained" / "model.safetensors")
    expected = load_file(one / "base" / "pretrained" / "model.safetensors")
    assert weights.keys() == expected.keys() and all(weights[k].equal(expected[k]) for k in weights)


def test_an_sft_rl_run_waits_while_another_live_worker_trains_its_sft_run(tmp_path):
    from postfit.config.grid import Run
    from postfit.layout import StudyDir
    from postfit.study.runner import _base_elsewhere

    def _sft_elsewhere(out, run):
        return _base_elsewhere(StudyDir(out), run)

    sft = tmp_path / "runs" / "random-sft-s0"
    sft.mkdir(parents=True)
    rl = Run("random", "sft+rl", 0)
    assert not _sft_elsewhere(tmp_path, rl)  # nobody trains it: this worker does, under that run's lock
    (sft / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "heartbeat": 0}))
    assert _sft_elsewhere(tmp_path, rl) and not _sft_elsewhere(tmp_path, Run("random", "sft", 0))
    (sft / "train.json").write_text("{}")
    assert not _sft_elsewhere(tmp_path, rl)  # trained: sft+rl loads its model
    (sft / "train.json").unlink()
    (sft / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "heartbeat": 0}))
    assert not _sft_elsewhere(tmp_path, rl)  # a dead holder: taken over
