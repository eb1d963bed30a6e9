"""What a person watching a run reads: plain timestamped lines in a file, and `postfit status` one line per run."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import TINY_STUDY, postfit

STAMP = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} INFO "


@pytest.mark.slow
def test_a_run_logged_to_a_file_is_plain_lines_with_every_stage_timed(tiny_study):
    """`postfit run STUDY > log.txt`: no box drawing, no replacement character, no line cut; each stage's start
    and end on a timestamped line (the end with its duration), and training progress as steps of a total."""
    text = (tiny_study[0].parent / "log.txt").read_text(encoding="utf-8")
    assert not re.search("[\u2500-\u259f\ufffd]", text), "box drawing or a replacement character in the log"
    lines = text.splitlines()
    for stage in ("data", "tokenizer", "pretrain", "sft", "grpo", "eval", "report"):
        starts = [x for x in lines if re.match(STAMP + f"start {stage}\\b", x)]
        ends = [x for x in lines if re.match(STAMP + f"end {stage}\\b.*\\(\\d+(s|m\\d\\ds)\\)$", x)]
        assert starts and len(starts) == len(ends), (stage, starts, ends)
    # The sft+rl run's SFT trains in the directory of the sft run it continues.
    assert any(re.match(STAMP + r"sft random-sft-s0: step 60/60, loss \d", x) for x in lines), lines
    assert lines[-1].startswith("report: ")


def test_plain_progress_lines_give_step_loss_rate_and_eta(monkeypatch, caplog):
    """One line at the first logged step, at most one per PROGRESS_S seconds after it, one at the last step (never
    twice); tokens/s and ETA measured from the first logged step."""
    from postfit import ui

    clock = iter([100.0, 110.0, 140.0, 150.0, 150.0])
    monkeypatch.setattr(ui.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(ui, "plain", lambda stream=None: True)
    cb = ui.progress_callback("sft run-a")
    state = SimpleNamespace(global_step=0, max_steps=40)
    cb.on_train_begin(None, state, None)
    with caplog.at_level("INFO", logger="postfit"):
        for step, tokens in ((10, 1000), (20, 2000), (30, 4000), (40, 5000), (40, 5000)):
            state.global_step = step
            cb.on_log(None, state, None, logs={"loss": 1.0 / step, "num_tokens": tokens})
    assert [r.getMessage() for r in caplog.records] == [
        "sft run-a: step 10/40, loss 0.1",
        "sft run-a: step 30/40, loss 0.03333, 75 tokens/s, ETA 20s",  # 3000 tokens and 20 steps in 40 s
        "sft run-a: step 40/40, loss 0.025, 80 tokens/s",
    ]


def test_stage_logs_its_end_or_that_it_stopped(caplog):
    from postfit.ui import stage

    with caplog.at_level("INFO", logger="postfit"):
        with stage("eval", "run-a"):
            pass
        with pytest.raises(KeyError), stage("sft", "run-b"):
            raise KeyError("x")
    assert [r.getMessage() for r in caplog.records] == [
        "start eval: run-a", "end eval: run-a (0s)", "start sft: run-b", "stopped sft: run-b after 0s"]  # fmt: skip


def test_status_is_one_line_per_run_with_stage_progress_and_age(tmp_path: Path):
    """A running run (a live lock) shows its stage and last step from its log; a done run how long ago it ended."""
    out = tmp_path / "study"
    (out / "runs" / "pretrained-sft+rl-s0").mkdir(parents=True)
    (out / "runs" / "random-none-s0").mkdir()
    (out / "study.yaml").write_text(yaml.safe_dump(TINY_STUDY))
    running = out / "runs" / "pretrained-sft+rl-s0"
    (running / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                                               "heartbeat": time.time()}))  # fmt: skip
    (running / "log.txt").write_text(
        "2026-12-04 10:00:00,000 INFO postfit.ui: start sft: pretrained-sft-s0, 60 steps on 120 items\n"
        "2026-12-04 10:00:05,000 INFO postfit: sft pretrained-sft-s0: step 20/60, loss 1.2\n"
        "2026-12-04 10:00:09,000 INFO postfit.ui: end sft: pretrained-sft-s0, 60 steps on 120 items (9s)\n"
        "2026-12-04 10:00:10,000 INFO postfit.ui: start grpo: pretrained-sft+rl-s0, 2 steps on 16 prompts\n"
        "2026-12-04 10:00:12,000 INFO postfit: grpo pretrained-sft+rl-s0: step 1/2, loss 0.01\n"
    )
    (out / "runs" / "random-none-s0" / "results.jsonl").write_text("")
    os.utime(running / "log.txt", (time.time() - 125, time.time() - 125))
    os.utime(out / "runs" / "random-none-s0" / "results.jsonl", (time.time() - 3700, time.time() - 3700))
    lines = postfit("status", str(out)).stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[:4]}
    assert rows["pretrained-sft+rl-s0"][1:4] == ["running", "grpo", "1/2"]
    assert re.fullmatch(r"2m0\ds ago on \S+:\d+ since .*", " ".join(rows["pretrained-sft+rl-s0"][4:]))
    assert rows["random-none-s0"][1:] == ["done", "—", "1h01m", "ago"]
    assert rows["pretrained-none-s0"][1:3] == ["waiting", "—"]
    assert lines[-1] == "2 waiting, 1 running, 1 done"
