"""Workers sharing one study directory: per-run locks, taken over from dead holders, shards, `postfit status`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import TINY_RUNS
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
