"""GPU check: each of postfit's stages on one CUDA GPU next to a bare baseline on the same device, in minutes.

    python bench/gpu_check.py [--shape qwen3-0.6b] [--preset small] [--only STAGE ...] [--sft VARIANT ...]
                              [--continuous-batching] [--processes N] [--out DIR] [--vllm] [--allow-cpu]

The model is a Qwen3-architecture stand-in built here, with a tokenizer shaped like Qwen3 base's (ChatML turns
ending in <|im_end|>): postfit's `small` preset by default, or with `--shape qwen3-0.6b` Qwen3-0.6B's architecture
(28 layers, hidden 1024, vocabulary 151,936, tied embeddings; 596M parameters), random weights, bfloat16. Items are
procedural (chain sums with reasoning traces), so nothing needs the hub. Stages, in this order:

- pretrain: postfit's pre-training (a few hundred thousand tokens), tokens/s and MFU, vs a bare PyTorch loop;
- sft: postfit's SFT at steady state (the later half of its steps) on padded rows, and with `--sft` padding-free
  rows with flex attention, torch.compile, Liger's kernels (where installed), each as tokens/s and MFU, vs a bare
  PyTorch loop over the same items, batch and optimiser;
- decode: evaluation's greedy decoding of 128 prompts x 64 new tokens: postfit's static cache and CUDA graphs,
  its growing-cache loop, and a `model.generate` loop: new tokens/s, ms per decoding step, identical outputs;
- grpo: a few GRPO steps (TRL's GRPOTrainer) with each way of generating the rollouts: `model.generate` (or with
  `--vllm` vLLM), postfit's static-cache decoder (`rl.rollouts: static`) and with `--continuous-batching`
  transformers' continuous batching; the time split into generation, reward and update, generation tokens/s, and
  postfit's evaluation decoder on as many rows;
- study: a small study end to end through `run_study` (pretrained and random, none and sft+rl; `--vllm`: GRPO and
  evaluation with vLLM; `--processes N`: under `accelerate launch` on N GPUs, configs/accelerate/ddp.yaml), wall
  time.

MFU is 6 x parameters x trained tokens/s over the bf16 matmul peak measured here first. Each stage prints its
lines as it ends and the last line is every figure as JSON. Without a CUDA device it exits 2; `--allow-cpu` runs it
anyway, fewer steps (to check the script, not to measure).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGES = ("pretrain", "sft", "decode", "grpo", "study")
# Qwen3-0.6B's config.json (hub: Qwen/Qwen3-0.6B), the architecture only.
QWEN3_06B = dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)  # fmt: skip
TASK = {"name": "chain_sum", "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}}


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
    sync()
    best, reps = 0.0, 10
    for _ in range(5):  # the best of five rounds: other work on the machine only ever slows a round down
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Check:
    """The figures of one check: stages add lines; `mfu` turns trained tokens/s into a fraction of the peak."""

    def __init__(self, args, out: Path):
        import torch

        self.args, self.out, self.cuda = args, out, torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = "bfloat16" if self.cuda else "float32"
        self.small = not self.cuda  # --allow-cpu: a few steps of everything
        self.figures: dict = {"device": torch.cuda.get_device_name() if self.cuda else "cpu",
                              "torch": torch.__version__, "shape": args.shape or args.preset}  # fmt: skip
        self.peak = matmul_peak(self.dtype)
        self.add("matmul peak TFLOP/s", round(self.peak / 1e12, 1))
        self.model_dir: Path | None = None
        self.params = 0

    def add(self, key: str, value) -> None:
        self.figures[key] = value
        print(f"{key:<58} {value}", flush=True)

    def mfu(self, tokens_per_s: float) -> float:
        return round(6 * self.params * tokens_per_s / self.peak, 4)

    def items(self, n: int, split: str = "train") -> list:
        from postfit.config import TasksConfig
        from postfit.tasks import make_splits

        tasks = TasksConfig(train=[TASK], train_size=n, rl_size=64, test_size=max(n, 128), target="trace")
        return make_splits(tasks)[split][:n]


def stage_pretrain(c: Check) -> None:
    """The stand-in, pre-trained by postfit (tokens/s, MFU), and a bare loop on the same blocks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from postfit.config import PretrainConfig
    from postfit.io import read_json
    from postfit.layout import BaseDir
    from postfit.train.pretrain import corpus_documents, pack, stand_in_checkpoint

    cfg = PretrainConfig(corpus="stdlib", tokens=70_000 if c.small else 250_000, seq_len=256, batch_size=32,
                         tokenizer_chars=1_000_000, checkpoint_steps=10**6)  # fmt: skip
    dims = QWEN3_06B if c.args.shape == "qwen3-0.6b" else None
    c.model_dir = stand_in_checkpoint(c.out / "stand-in", "qwen3", cfg, preset=c.args.preset, dims=dims)
    meta = read_json(BaseDir(c.out / "stand-in.work").meta)
    c.params = meta["params"]
    c.add("parameters", c.params)
    steady = 32 * cfg.seq_len / meta["step_s"]
    c.add("pretrain: postfit tokens/s, MFU (later half)", (round(steady, 1), c.mfu(steady)))
    c.add("pretrain: postfit tokens/s (all steps, start-up included)", meta["tokens_per_s"])
    # The bare loop: the same architecture and blocks, AdamW, bf16 autocast as the Trainer's bf16 does.
    blocks, _ = pack(AutoTokenizer.from_pretrained(c.model_dir), corpus_documents(cfg.corpus, cfg.corpus_chars),
                     cfg.seq_len, cfg.tokens)  # fmt: skip
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(c.model_dir)).to(c.device)
    steps = 4 if c.small else 30
    batches = [torch.tensor(blocks[i * 32 : (i + 1) * 32]) for i in range(steps)]
    bare = 32 * cfg.seq_len / bare_steps(model, [(b, None, b) for b in batches], c)
    c.add("pretrain: bare loop tokens/s, MFU (later half)", (round(bare, 1), c.mfu(bare)))


def bare_steps(model, batches: list[tuple], c: Check, lr: float = 1e-3) -> float:
    """Mean seconds per step over the later half of a plain loop (forward, backward, clipping, AdamW) on
    (input_ids, attention_mask, labels) batches, under bf16 autocast on CUDA."""
    import torch

    optim = torch.optim.AdamW(model.parameters(), lr=lr, fused=c.cuda)
    model.train()
    ends = []
    for ids, mask, labels in batches:
        ids, labels = ids.to(c.device), labels.to(c.device)
        mask = None if mask is None else mask.to(c.device)
        with torch.autocast(c.device, dtype=torch.bfloat16, enabled=c.cuda):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    sync()
    ends[-1] = time.perf_counter()
    mid = len(ends) // 2
    return (ends[-1] - ends[mid]) / (len(ends) - 1 - mid)


def stage_sft(c: Check) -> None:
    """postfit's SFT on 64-row batches of chain-sum traces, at steady state, in its variants; and a bare loop."""
    import importlib.util

    import torch
    from run import _sft_rows

    from postfit.config import SFTOptions
    from postfit.models import build_variant, load_tokenizer
    from postfit.train.sft import train_sft

    items = c.items(2000)
    steps = 6 if c.small else 40
    tokenizer = load_tokenizer(c.model_dir)
    rows = _sft_rows(tokenizer, items, 256)
    row_tokens = sum(len(ids) for ids, _ in rows) / len(rows)  # trained tokens a row (no padding), on average
    c.add("sft: tokens a row, mean", round(row_tokens, 1))
    # name: (SFT options, attention); padding-free rows attend per sequence through flex attention's block mask.
    # Liger last: it patches transformers' modules for the rest of the process.
    variants = {"padded (sdpa)": ({}, None), "padding-free (sdpa)": ({"padding_free": True}, None)}
    if c.cuda:
        variants = {"padded (sdpa)": ({}, None)}
        if "flex" in c.args.sft:
            variants["padding-free (flex)"] = ({}, "flex_attention")
        if "compile" in c.args.sft:
            variants["padded (sdpa) + torch.compile"] = ({"compile": True}, None)
        if "liger" in c.args.sft and importlib.util.find_spec("liger_kernel"):
            variants["padded (sdpa) + liger"] = ({"liger": True}, None)
    for name, (extra, attention) in variants.items():
        v = build_variant(c.model_dir, "pretrained", 0, c.dtype, attn_implementation=attention)
        opts = SFTOptions(steps=steps, batch_size=64, learning_rate=1e-4, logging_steps=steps, checkpoint_steps=10**6,
                          **extra)  # fmt: skip
        run = c.out / f"sft-{len(list(c.out.glob('sft-*')))}"
        start = time.perf_counter()
        try:
            stats = train_sft(v.model, v.tokenizer, items, opts, run, seed=0)
        except Exception as e:  # one variant failing (a kernel, a compiler) leaves the others to measure
            c.add(f"sft {name}: failed", f"{type(e).__name__}: {str(e)[:200]}")
            continue
        per_s = 64 * row_tokens / stats["step_s"]
        c.add(f"sft {name}: s/step (later half)", stats["step_s"])
        c.add(f"sft {name}: tokens/s, MFU", (round(per_s, 1), c.mfu(per_s)))
        c.add(f"sft {name}: start-up s (wall - steps x s/step)", round(time.perf_counter() - start
                                                                       - steps * stats["step_s"], 1))  # fmt: skip
        del v
        torch.cuda.empty_cache() if c.cuda else None
    v = build_variant(c.model_dir, "pretrained", 0, c.dtype)
    rng, pad, batches = random.Random(0), v.tokenizer.pad_token_id, []
    for _ in range(steps):
        batch = [rows[rng.randrange(len(rows))] for _ in range(64)]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
        labels = ids.masked_fill(mask == 0, -100)
        for row, (_, n_prompt) in enumerate(batch):
            labels[row, :n_prompt] = -100
        batches.append((ids, mask, labels))
    step_s = bare_steps(v.model.to(c.device), batches, c, lr=1e-4)
    real = sum(int(m.sum()) for _, m, _ in batches) / steps
    c.add("sft bare loop (padded): s/step, tokens/s, MFU", (round(step_s, 5), round(real / step_s, 1),
                                                            c.mfu(real / step_s)))  # fmt: skip


def stage_decode(c: Check) -> None:
    """Greedy decoding of 128 prompts x 64 new tokens in one batch: postfit's two loops and `model.generate`."""
    import torch

    from postfit.config import EvalOptions
    from postfit.evaluation.generate import generate_completions
    from postfit.evaluation.prompts import prompt_texts
    from postfit.models import build_variant, end_of_turn_ids

    v = build_variant(c.model_dir, "pretrained", 0, c.dtype)
    model, tokenizer = v.model.to(c.device).eval(), v.tokenizer
    n = 16 if c.small else 128
    prompts = [it.prompt for it in c.items(n, "id_test")]
    stops = end_of_turn_ids(tokenizer, model.generation_config)
    results = {}
    for graphs in (True, False):
        opts = EvalOptions(batch_size=n, max_new_tokens=64, samples=0, k=[], cuda_graphs=graphs)
        for _ in range(2):  # the second run is timed: the first pays one-off costs (kernels, cuBLAS)
            sync()
            t = time.perf_counter()
            done = [cs[0] for cs in generate_completions(model, tokenizer, prompts, opts, label="check")]
            sync()
            seconds = time.perf_counter() - t
        steps = max(x.tokens for x in done)
        results["static cache + CUDA graphs" if graphs else "growing cache"] = [x.text for x in done]
        name = "static cache + CUDA graphs" if graphs and c.cuda else "growing cache" if not graphs else "(CPU)"
        c.add(f"decode {name}: new tokens/s, ms/step",
              (round(sum(x.tokens for x in done) / seconds, 1), round(1000 * seconds / steps, 2)))  # fmt: skip
    texts, raw = prompt_texts(tokenizer, prompts)
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=raw).to(c.device)
    for _ in range(2):
        sync()
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=64, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id)[:, enc["input_ids"].shape[1] :]  # fmt: skip
        sync()
        seconds = time.perf_counter() - t
    rows = [r[: next((i + 1 for i, x in enumerate(r) if x in stops), len(r))] for r in out.tolist()]
    tokens = sum(len(r) for r in rows)
    per_step = 1000 * seconds / max(map(len, rows))
    c.add("decode model.generate: new tokens/s, ms/step", (round(tokens / seconds, 1), round(per_step, 2)))
    plain = tokenizer.batch_decode(rows, skip_special_tokens=True)
    same = {k: sum(a == b for a, b in zip(v, plain, strict=True)) for k, v in results.items()}
    c.add(f"decode: outputs equal to model.generate's (of {n})", same)


def stage_grpo(c: Check) -> None:
    """A few GRPO steps, their time split, and postfit's decoder on as many rows of the same prompts."""
    from run import reward_timer

    from postfit.config import EvalOptions, RLOptions, VLLMOptions
    from postfit.evaluation.generate import generate_completions
    from postfit.models import build_variant
    from postfit.train import rl

    steps = 2 if c.small else 4
    eval_opts = EvalOptions(batch_size=64, max_new_tokens=8, samples=0, k=[])
    items = c.items(64, "rl")
    engines = {"vllm": {"vllm": VLLMOptions(gpu_memory_utilization=0.3)}} if c.args.vllm else {"generate": {}}
    engines["static"] = {"rollouts": "static"}
    if c.args.continuous_batching:
        engines["continuous batching"] = {"rollouts": "continuous_batching"}
    for engine, extra in engines.items():
        opts = RLOptions(steps=steps, batch_size=64, num_generations=8, learning_rate=5e-6, eval_steps=10**6,
                         max_completion_length=64, heldout_items=1, logging_steps=1, **extra)  # fmt: skip
        v = build_variant(c.model_dir, "pretrained", 0, c.dtype)
        try:
            with reward_timer() as spent:
                stats = rl.train_rl(v.model, v.tokenizer, items, items[:1], opts, eval_opts,
                                    c.out / f"grpo-{engine.replace(' ', '')}", seed=0)  # fmt: skip
        except Exception as e:  # one engine failing leaves the other to measure
            c.add(f"grpo {engine}: failed", f"{type(e).__name__}: {str(e)[:200]}")
            continue
        total = stats["runtime_s"] - stats["heldout_eval_s"]
        update = total - stats["generate_s"] - spent["reward_s"]
        c.add(f"grpo {engine}: {steps} steps of 64 completions, s", round(total, 1))
        c.add(f"grpo {engine}: generation / reward / update s",
              (stats["generate_s"], round(spent["reward_s"], 2), round(update, 2)))  # fmt: skip
        c.add(f"grpo {engine}: generation tokens/s", stats["generated_tokens_per_s"])
    sampled = EvalOptions(batch_size=8, max_new_tokens=64, samples=8, k=[8], temperature=1.0)
    model = v.model.to(c.device)
    generate_completions(model, v.tokenizer, [it.prompt for it in items[:8]], sampled, n=8, sample=True)
    sync()
    t = time.perf_counter()
    done = generate_completions(model, v.tokenizer, [it.prompt for it in items[:8]], sampled, n=8, sample=True)
    sync()
    tokens = sum(x.tokens for cs in done for x in cs)
    c.add("grpo: postfit's decoder on 8 prompts x 8 (tokens/s)", round(tokens / (time.perf_counter() - t), 1))


def stage_study(c: Check) -> None:
    """A small study end to end on the stand-in: pre-trained and random, none and sft+rl."""
    from postfit.config import parse_study
    from postfit.study.runner import run_study

    small = c.small or c.args.shape == "qwen3-0.6b"
    spec = {
        "name": "gpu-check",
        "model": {"name_or_path": str(c.model_dir), "dtype": c.dtype},
        "tasks": {"train": [TASK], "train_size": 1000, "rl_size": 128, "test_size": 128, "target": "trace"},
        "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft+rl"], "seeds": [0]},
        "sft": {"steps": 10 if small else 100, "batch_size": 32, "learning_rate": 1e-3, "logging_steps": 10},
        "rl": {"steps": 2 if small else 10, "batch_size": 64, "num_generations": 8, "learning_rate": 5e-5,
               "max_completion_length": 64, "eval_steps": 10, "heldout_items": 32, "logging_steps": 1},
        "eval": {"batch_size": 64, "max_new_tokens": 64, "samples": 4, "k": [4]},
        "report": {"bootstrap": 200},
    }  # fmt: skip
    if c.args.vllm:
        spec["rl"]["vllm"] = {"mode": "colocate", "gpu_memory_utilization": 0.3}
        spec["eval"]["backend"] = "vllm"
    t = time.perf_counter()
    if c.args.processes > 1:  # the study under accelerate, as a user runs it on several GPUs
        path = c.out / "study.yaml"
        path.write_text(json.dumps(spec))
        config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "ddp.yaml"
        subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                        "--num_processes", str(c.args.processes), "-m", "postfit", "run", str(path), "--out",
                        str(c.out / "study")], check=True)  # fmt: skip
    else:
        run_study(parse_study(spec, "gpu_check.py"), c.out / "study")
    c.add(f"study (4 runs: none, sft+rl x 2 inits; {c.args.processes} process(es)) wall s",
          round(time.perf_counter() - t, 1))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=["qwen3-0.6b"], default=None, help="a real architecture instead of --preset")
    ap.add_argument("--preset", default="small", help="postfit preset of the stand-in (nano, micro, small)")
    ap.add_argument("--only", nargs="*", choices=STAGES, default=None, help="these stages (pretrain always runs)")
    ap.add_argument(
        "--sft",
        nargs="*",
        choices=["flex", "compile", "liger"],
        default=[],
        help="SFT variants measured besides padded rows (each compiles kernels first: 1-2 minutes)",
    )
    ap.add_argument(
        "--continuous-batching",
        action="store_true",
        help="also GRPO with transformers' continuous batching (rl.rollouts: continuous_batching)",
    )
    ap.add_argument("--out", type=Path, default=None, help="work directory [default: a temporary one]")
    ap.add_argument("--processes", type=int, default=1, help="GPUs for the study stage, through accelerate launch")
    ap.add_argument("--vllm", action="store_true", help="GRPO rollouts (and the study's evaluation) with vLLM")
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (to check the script)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no CUDA device visible; this check measures a GPU (--allow-cpu runs it anyway)", file=sys.stderr)
        raise SystemExit(2)
    from postfit.ui import setup_logging

    setup_logging()
    start = time.perf_counter()
    c = Check(args, args.out or Path(tempfile.mkdtemp(prefix="postfit-gpu-check-")))
    failed = []
    for name in STAGES:
        if args.only is not None and name not in args.only and name != "pretrain":
            continue
        t = time.perf_counter()
        try:
            globals()[f"stage_{name}"](c)
        except Exception:  # a stage that fails is reported, and the next ones still measure
            traceback.print_exc()
            failed.append(name)
            if name == "pretrain":
                break
        c.add(f"{name}: stage wall s", round(time.perf_counter() - t, 1))
        if c.cuda:
            c.add(f"{name}: peak GPU memory GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2))
            torch.cuda.reset_peak_memory_stats()
    c.add("failed stages", failed)
    c.add("total s", round(time.perf_counter() - start, 1))
    print(json.dumps(c.figures))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
