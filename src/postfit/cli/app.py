"""The `postfit` command: thin wrappers that parse arguments and call one library function each.

Exit codes: 0 done, 2 bad input (study file, data, missing model), 1 anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from postfit.cli.common import out, setup_logging, user_errors
from postfit.cli.eval import eval_command
from postfit.cli.sandbox import app as sandbox_app
from postfit.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
app.add_typer(sandbox_app, name="sandbox")


@app.command()
@user_errors
def run(
    study: Annotated[
        str, typer.Argument(help="Built-in study (default, smoke, scaling; paper needs a GPU) or a study YAML path.")
    ] = "default",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory [default: runs/<study name>]")] = (
        None
    ),
    unsafe: Annotated[
        bool,
        typer.Option(
            "--unsafe-weak-sandbox",
            help="Run code items even where the sandbox lacks a required isolation layer (as sandbox.allow_weak).",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: run every N-th run of the grid from the I-th (0-based), for N workers of any scheduler; "
            "runs are locked, so workers may also share one directory without it.",
        ),
    ] = None,
) -> None:
    """Run a study (skipping runs that finished before) and write its report.

    Any number of `postfit run` workers may share one output directory (a shared filesystem): each run is locked
    while it trains, a dead worker's run is taken over, and the worker that finishes the last run writes the
    report; `postfit status DIR` shows where every run stands. Every option of a study file is listed by
    `postfit options` and in the README.
    """
    from postfit.config import load_study

    parts = _shard(shard)
    spec, path = load_study(study)
    setup_logging()
    from postfit.study.runner import run_study

    if unsafe:
        spec = spec.model_copy(update={"sandbox": spec.sandbox.model_copy(update={"allow_weak": True})})
    target = out_dir or Path("runs") / spec.name
    out.print(f"study [bold]{spec.name}[/] from {path} -> {target}")
    report = run_study(spec, target, parts)
    if report.exists():
        out.print(f"report: [bold]{report}[/] and {report.with_suffix('.html')}")
    else:
        out.print(f"shard {shard} done; other runs remain (`postfit status {target}`)")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard: expected I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--shard: expected 0 <= I < N, got {text!r}")
    return i, n


@app.command()
@user_errors
def status(
    out_dir: Annotated[Path, typer.Argument(help="A study's output directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per run.")] = False,
) -> None:
    """Where every run of a study stands: done, running (where, since when), interrupted, failed (with the last
    lines of its log) or waiting."""
    import json

    from postfit.study.status import run_states

    rows = run_states(out_dir)
    for row in rows:
        if as_json:
            print(json.dumps(row))
            continue
        extra = {"running": f" on {row.get('where')} since {row.get('since')}",
                 "interrupted": f" (holder {row.get('where')} is dead; the next worker takes it over)",
                 "failed": f": {row.get('error')}"}.get(row["state"], "")  # fmt: skip
        out.print(f"{row['run']:<32} {row['state']}{extra}", highlight=False, markup=False)
        for line in row.get("log", []):
            out.print(f"    {line}", highlight=False, markup=False)
    counts = {s: sum(r["state"] == s for r in rows) for s in dict.fromkeys(r["state"] for r in rows)}
    if not as_json:
        out.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)


@app.command()
@user_errors
def report(out_dir: Annotated[Path, typer.Argument(help="A study's output directory.")]) -> None:
    """Regenerate report.md and report.html from a study's stored samples (no model is loaded)."""
    from postfit.report.build import write_report

    if not (out_dir / "study.yaml").is_file():
        raise UserError(f"{out_dir}: not a study output directory (no study.yaml)")
    md, html = write_report(out_dir)
    out.print(f"report: [bold]{md}[/] and {html}")


@app.command()
@user_errors
def plan(
    study: Annotated[str, typer.Argument(help="Built-in study (default, smoke, scaling, paper) or a YAML path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs that GPU studies' memory lines divide by.")] = 8,
) -> None:
    """Validate a study offline and print its runs, token counts, FLOP estimate and, for GPU studies, memory per GPU
    and GPU-hours (no weights or data loaded)."""
    from postfit.config import load_study
    from postfit.study.plan import make_plan, plan_json, render

    spec, path = load_study(study)
    result = make_plan(spec, str(path), gpus)
    print(plan_json(result) if as_json else render(result))


@app.command()
def options() -> None:
    """Print every study-file option with its type, default and meaning (the README table)."""
    from postfit.config import options_markdown

    print(options_markdown(), end="")


app.command("eval")(user_errors(eval_command))  # postfit eval MODEL --bench ... --out DIR (cli/eval.py)


def main() -> None:
    app()
