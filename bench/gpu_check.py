"""GPU check: a reduced `paper`-shaped study on one CUDA GPU, offline; prints tokens/s per stage and peak memory.

    .venv/bin/python bench/gpu_check.py [--out DIR] [--preset small] [--processes N] [--vllm] [--allow-cpu]

The model is a Qwen3-architecture stand-in built here (postfit's `small` preset by default, a tokenizer shaped like
Qwen3 base's: ChatML turns ending in <|im_end|>, eos <|endoftext|>), pre-trained briefly by postfit, then given to
the study as `model.name_or_path` in bfloat16 with the paper recipe's memory options (micro-batches, gradient
checkpointing): pretrained and random inits, none / sft / sft+rl, procedural tasks (no hub access needed).
`--processes N` runs the study under `accelerate launch` on N GPUs (configs/accelerate/ddp.yaml); `--vllm` makes
GRPO generate with vLLM colocated (`rl.vllm`) and evaluation use vLLM (`eval.backend: vllm`). It prints tokens/s
per stage, SFT's MFU against a bf16 matmul peak measured here, GRPO's generate / update split and (one process)
the peak GPU memory. Without a CUDA device it exits 2; `--allow-cpu` runs it anyway (minutes; to check the script,
not to measure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def matmul_peak(dtype_name: str) -> float:
    """Achieved FLOP/s of a large square matmul on this device (the peak MFU is measured against; on a CPU the
    fp32 figure the README quotes next to its timings)."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, dtype_name)
    n = 8192 if dev == "cuda" else 2048
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    if dev == "cuda":
        torch.cuda.synchronize()
    best, reps = 0.0, 10
    for _ in range(5):  # the best of five rounds: other work on the machine only ever slows a round down
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def study(model_dir: Path, steps: int) -> dict:
    memory = {"micro_batch_size": 8, "gradient_checkpointing": True}
    task = {"name": "chain_sum", "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}}
    return {
        "name": "gpu-check",
        "model": {"name_or_path": str(model_dir), "dtype": "bfloat16"},
        "tasks": {"train": [task], "train_size": 2000, "rl_size": 256, "test_size": 128, "target": "trace"},
        "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft", "sft+rl"], "seeds": [0]},
        "sft": {"steps": steps, "batch_size": 32, "learning_rate": 1e-3, "logging_steps": 10, **memory},
        "rl": {"steps": max(2, steps // 10), "batch_size": 64, "num_generations": 8, "learning_rate": 5e-5,
               "max_completion_length": 64, "eval_steps": 10, "heldout_items": 32, "logging_steps": 1, **memory},
        "eval": {"batch_size": 64, "max_new_tokens": 64, "samples": 4, "k": [4]},
        "report": {"bootstrap": 200},
    }  # fmt: skip


def stage_rates(out: Path, wall_s: float) -> dict:
    """Tokens/s per stage from the stored run files (train_log.jsonl's num_tokens, train.json's timings)."""
    from postfit.io import read_json, read_jsonl

    rates: dict = {}
    train_s = 0.0
    for run in sorted((out / "runs").iterdir()):
        stats = read_json(run / "train.json") if (run / "train.json").exists() else {}
        train_s += stats.get("runtime_s", 0.0)
        logged = [r for r in read_jsonl(run / "train_log.jsonl") if "num_tokens" in r] if stats else []
        if "generated_tokens_per_s" in stats:
            rates[f"{run.name} RL generation tokens/s"] = stats["generated_tokens_per_s"]
            rates[f"{run.name} RL update s"] = stats["update_s"]
        elif logged:
            rates[f"{run.name} SFT tokens/s"] = round(logged[-1]["num_tokens"] / max(stats["runtime_s"], 1e-9), 1)
    rates["evaluation and the rest, s"] = round(wall_s - train_s, 1)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="study directory [default: a temporary one]")
    ap.add_argument("--preset", default="small", help="architecture of the stand-in (nano, micro, small)")
    ap.add_argument("--steps", type=int, default=200, help="SFT steps (RL gets a tenth)")
    ap.add_argument("--processes", type=int, default=1, help="GPUs, through accelerate launch (ddp.yaml)")
    ap.add_argument("--vllm", action="store_true", help="GRPO rollouts and evaluation with vLLM (the gpu extra)")
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (to check the script)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no CUDA device visible; this check measures a GPU (--allow-cpu runs it anyway)", file=sys.stderr)
        raise SystemExit(2)
    from postfit.config import PretrainConfig, parse_study
    from postfit.study.runner import run_study
    from postfit.train.pretrain import stand_in_checkpoint

    out = args.out or Path(tempfile.mkdtemp(prefix="postfit-gpu-check-"))
    cfg = PretrainConfig(tokens=2_000_000 if torch.cuda.is_available() else 50_000, seq_len=256, batch_size=32)
    start = time.perf_counter()
    model_dir = stand_in_checkpoint(out / "stand-in", "qwen3", cfg, preset=args.preset)
    pretrain_meta = json.loads((out / "stand-in.work" / "meta.json").read_text())
    cuda = torch.cuda.is_available()
    spec = study(model_dir, args.steps)
    if args.vllm:
        spec["rl"]["vllm"] = {"mode": "colocate", "gpu_memory_utilization": 0.3}
        spec["eval"]["backend"] = "vllm"
    peak = matmul_peak("bfloat16" if cuda else "float32")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    if args.processes > 1:  # the study under accelerate, as a user runs it on several GPUs
        path = out / "study.yaml"
        path.write_text(json.dumps(spec))
        config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "ddp.yaml"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes",
               str(args.processes), "-m", "postfit", "run", str(path), "--out", str(out / "study")]  # fmt: skip
        subprocess.run(cmd, check=True)
    else:
        run_study(parse_study(spec, "gpu_check.py"), out / "study")
    wall = time.perf_counter() - t
    rates = stage_rates(out / "study", wall)
    sft = [v for k, v in rates.items() if k.endswith("SFT tokens/s")]
    mfu = {f"SFT MFU (6 N tokens/s / {args.processes} x measured matmul peak)":
           round(6 * pretrain_meta["params"] * max(sft) / (args.processes * peak), 4)} if sft else {}  # fmt: skip
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "processes": args.processes,
        "vllm": bool(args.vllm),
        "params": pretrain_meta["params"],
        "matmul peak TFLOP/s": round(peak / 1e12, 2),
        "pretrain tokens/s": pretrain_meta["tokens_per_s"],
        **rates,
        **mfu,
        "peak GPU memory GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if cuda and args.processes == 1 else None,
        "total s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    for key, value in result.items():
        print(f"{key:<45} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
