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
) -> None:
    """Run a study (skipping runs that finished before) and write its report.

    Every option of a study file is listed by `postfit options` and in the README.
    """
    from postfit.config import load_study

    spec, path = load_study(study)
    setup_logging()
    from postfit.study.runner import run_study

    if unsafe:
        spec = spec.model_copy(update={"sandbox": spec.sandbox.model_copy(update={"allow_weak": True})})
    target = out_dir or Path("runs") / spec.name
    out.print(f"study [bold]{spec.name}[/] from {path} -> {target}")
    report = run_study(spec, target)
    out.print(f"report: [bold]{report}[/] and {report.with_suffix('.html')}")


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
