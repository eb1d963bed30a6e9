"""Many processes for one study: `accelerate launch --cpu --num_processes 2` (gloo) gives the same study as one
process, written once; vLLM options map onto TRL's; plan's memory and GPU-hours are the hand computation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from conftest import TINY_RUNS
from postfit.io import read_jsonl


@pytest.mark.slow
def test_two_processes_write_the_study_once_and_agree_with_one(tiny_study, tmp_path):
    path, one = tiny_study
    two = tmp_path / "two"
    # One thread per process: two torch processes on two cores thrash otherwise.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "postfit",
        "run",
        str(path),
        "--out",
        str(two),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = {d: read_jsonl(d / "results.jsonl") for d in (one, two)}
    keys = {d: Counter((r["run"], r["split"], r["metric"]) for r in rows[d]) for d in rows}
    assert max(keys[two].values()) == 1, "a results row written twice"
    assert set(keys[two]) == set(keys[one])  # the same runs, splits and metrics
    for run in TINY_RUNS:
        samples = read_jsonl(two / "runs" / run / "samples.jsonl")
        seen = Counter((s["split"], s["item"], s["sample"]) for s in samples)
        assert max(seen.values()) == 1 and len(seen) == len(read_jsonl(one / "runs" / run / "samples.jsonl"))
    # Sharded evaluation gathers in item order, batches seeded by their number: the untrained random init (the
    # same weights in both) gives identical greedy and sampled completions.
    completions = {d: [s["completion"] for s in read_jsonl(d / "runs" / "random-none-s0" / "samples.jsonl")]
                   for d in (one, two)}  # fmt: skip
    assert completions[one] == completions[two]
    # Trained on all processes at the same global batch: the accuracy lies in the one-process run's interval.
    for init in ("pretrained", "random"):
        ref, got = ({(r["run"], r["split"], r["metric"]): r for r in rows[d]}[(f"{init}-sft+rl-s0", "id_test",
                    "pass@1")] for d in (one, two))  # fmt: skip
        assert ref["ci_low"] <= got["value"] <= ref["ci_high"], (init, ref, got)
    assert json.loads((two / "runs" / "random-sft+rl-s0" / "train.json").read_text())["steps"] == 2


def test_vllm_options_map_onto_trl():
    from trl import GRPOConfig

    from postfit.config import RLOptions
    from postfit.train.rl import vllm_kwargs

    assert vllm_kwargs(RLOptions()) == {}
    opts = RLOptions(vllm={"mode": "server", "gpu_memory_utilization": 0.5, "tensor_parallel_size": 2,
                           "server_host": "127.0.0.1", "server_port": 8123})  # fmt: skip
    args = GRPOConfig(output_dir="/tmp/unused", report_to=[], bf16=False, **vllm_kwargs(opts))
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size,
            args.vllm_server_host, args.vllm_server_port) == (True, "server", 0.5, 2, "127.0.0.1", 8123)  # fmt: skip


def test_where_vllm_runs_is_not_in_the_fingerprint():
    from postfit.config import load_study, parse_study

    data = load_study("smoke")[0].model_dump(mode="json")
    data["rl"]["vllm"] = {"mode": "server", "server_port": 8000}
    a = parse_study(data, "a").fingerprint()
    data["rl"]["vllm"]["server_port"] = 9000
    assert parse_study(data, "b").fingerprint() == a
    data["rl"]["vllm"]["mode"] = "colocate"
    assert parse_study(data, "c").fingerprint() != a


@pytest.mark.parametrize(("key", "value"), [("rl", {"vllm": {"mode": "colocate"}}), ("eval", {"backend": "vllm"})])
def test_vllm_without_vllm_or_cuda_exits_2_naming_the_option(tmp_path, key, value):
    from postfit.config import load_study, parse_study
    from postfit.errors import UserError
    from postfit.study.runner import run_study

    data = load_study("smoke")[0].model_dump(mode="json")
    data[key].update(value)
    name = "rl.vllm" if key == "rl" else "eval.backend"
    with pytest.raises(
        UserError, match=rf"{re.escape(name)}: vLLM (is not installed.*pip install -e '.\[gpu\]'|needs a CUDA)"
    ):
        run_study(parse_study(data, "s.yaml"), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # before anything is written


def test_plan_prints_memory_per_gpu_and_gpu_hours():
    """The paper's numbers are checked by hand in tests/test_plan.py::test_paper_plan; here the text."""
    from postfit.study.plan import TRAIN, Plan, Stage, render

    plan = Plan(
        "s", "s.yaml", True, "m", 1 << 30, "config", {}, [], [Stage("SFT", 1, 10**9, TRAIN, False, "")], gpus=4
    )
    text = render(plan)
    assert "memory per GPU on 4 GPUs" in text and "ddp 16.0 GiB, zero2 5.5 GiB, zero3 4.0 GiB, fsdp 4.0 GiB" in text
    hours = 6 * (1 << 30) * 10**9 / (989e12 * 0.40) / 3600
    assert f"GPU time: {hours:,.1f} GPU-hours at 40% MFU" in text
    assert "memory per GPU" not in render(Plan("s", "s.yaml", False, "m", 1 << 30, "config", {}, []))
