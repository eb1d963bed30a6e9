"""`postfit eval MODEL --bench NAME[,NAME...] --out DIR`: parse the options, run evaluation.benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from postfit.errors import UserError

BENCH_HELP = (
    "Benchmarks, comma-separated: gsm8k, math500, aime24, aime25, amc23, humaneval, mbpp, livecodebench, "
    "or rg:<task> for a reasoning-gym task (e.g. rg:chain_sum)."
)


PROTOCOL_HELP = (
    "postfit (default: its prompts and verifier, greedy pass@1) or lighteval (open-r1's settings: lighteval's prompts "
    "for math500, aime24, aime25, n samples at temperature 0.6 and top-p 0.95, pass@1 their mean, math-verify as "
    "lighteval configures it)."
)

UNSAFE_HELP = (
    "Run code benchmarks even where the sandbox lacks a required isolation layer (otherwise exit 2). Unsafe; "
    "eval.json records the missing layers."
)


def _ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option}: expected comma-separated integers, got {text!r}") from None


def eval_command(
    model: Annotated[str, typer.Argument(help="Checkpoint: a local directory or a Hugging Face model id.")],
    bench: Annotated[str, typer.Option("--bench", help=BENCH_HELP)],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (samples.jsonl, results.jsonl).")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N items of each benchmark.")] = (
        None
    ),
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            min=0,
            help="Sampled completions per item, for avg@n and pass@k (default 0: greedy "
            "only; under --protocol lighteval lighteval's n, 4 for math500 and 64 for AIME).",
        ),
    ] = None,
    k: Annotated[
        str | None, typer.Option("--k", help="k values for pass@k, comma-separated (default: the --samples value).")
    ] = None,
    # Sized for real benchmarks (reasoning replies are long); tiny CPU models want smaller values.
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-new-tokens",
            min=1,
            help="Longest reply in tokens (default 1024; 32768 under --protocol lighteval, open-r1's).",
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature of the samples (default 0.6).")
    ] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling of the samples (default 0.95).")] = (
        None
    ),
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Prompts per generate() call (default 16).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampled completions.")] = 0,
    backend: Annotated[
        str, typer.Option("--backend", help="Generation backend: hf (transformers) or vllm (CUDA, the gpu extra).")
    ] = "hf",
    protocol: Annotated[str, typer.Option("--protocol", help=PROTOCOL_HELP)] = "postfit",
    unsafe: Annotated[bool, typer.Option("--unsafe-weak-sandbox", help=UNSAFE_HELP)] = False,
) -> None:
    """Evaluate a checkpoint on benchmarks: greedy pass@1, and avg@n / pass@k with --samples; or, with --protocol
    lighteval, pass@1 averaged over n samples as open-r1 reports it."""
    from rich.console import Console
    from rich.table import Table

    from postfit.data.lighteval import PROTOCOLS
    from postfit.evaluation.benchmarks import LM_EVAL_FILE, eval_options, evaluate_checkpoint
    from postfit.ui import setup_logging

    names = [b.strip() for b in bench.split(",") if b.strip()]
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    opts = eval_options(protocol=protocol, samples=samples, k=_ints(k, "--k"), max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, batch_size=batch_size, backend=backend)  # fmt: skip
    setup_logging()
    if unsafe:
        from postfit.sandbox import allow_weak

        allow_weak(True)
    rows = evaluate_checkpoint(model, names, out_dir, opts, limit=limit, seed=seed)
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    table = Table("benchmark", "n", *metrics, title=f"{model} ({out_dir}; protocol {protocol})")
    for name in names:
        mine = {r["metric"]: r for r in rows if r["split"] == name}
        first = next(iter(mine.values()))
        cells = [f"{100 * mine[m]['value']:.1f} [{100 * mine[m]['ci_low']:.1f}, {100 * mine[m]['ci_high']:.1f}]"
                 if m in mine else "" for m in metrics]  # fmt: skip
        table.add_row(name, str(first["n"]), *cells)
    Console().print(table)
    Console().print(
        f"samples: {out_dir / 'samples.jsonl'}; results: {out_dir / 'results.jsonl'} (values in %), "
        f"and in lm-eval's layout {out_dir / LM_EVAL_FILE}"
    )
