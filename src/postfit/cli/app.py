"""The `postfit` command: thin wrappers that parse arguments and call one library function each.

Exit codes: 0 done, 2 bad input (study file, data, missing model), 1 anything else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from postfit.cli.common import out, user_errors
from postfit.cli.eval import eval_command
from postfit.cli.sandbox import app as sandbox_app
from postfit.errors import UserError
from postfit.layout import StudyDir

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
app.add_typer(sandbox_app, name="sandbox")

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override one study-file key before the study is validated (a dotted KEY; VALUE read as YAML), as TRL's "
        "flags override a recipe; repeatable. E.g. --set sft.learning_rate=1e-5 --set sft.trainer.max_grad_norm=0.2",
    ),
]

UNSAFE_HELP = "Run code items even where the sandbox lacks a required isolation layer (as sandbox.allow_weak)."


def _print_version(value: bool) -> None:
    if value:
        from postfit.env import version_line

        print(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


def _weak_sandbox(spec, unsafe: bool):
    """The study with `sandbox.allow_weak` set where --unsafe-weak-sandbox was given."""
    if not unsafe:
        return spec
    return spec.model_copy(update={"sandbox": spec.sandbox.model_copy(update={"allow_weak": True})})


@app.command(no_args_is_help=True)
@user_errors
def run(
    study: Annotated[
        str, typer.Argument(help="Built-in study (default, smoke, scaling; paper needs a GPU) or a study YAML path.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory.", show_default="runs/<study name>")
    ] = None,
    unsafe: Annotated[bool, typer.Option("--unsafe-weak-sandbox", help=UNSAFE_HELP)] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: run every N-th run of the grid from the I-th (0-based), for N workers of any scheduler; "
            "runs are locked, so workers may also share one directory without it.",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: this process walks the grid (with --workers N > 1, as `workers`); workers: N processes of "
            "this machine sharing the directory; ray: one Ray task per run with the study's `resources` "
            "(--ray-address / RAY_ADDRESS, or a local cluster); slurm: one submitit job per run (local processes "
            "where there is no sbatch). Needs the ray or slurm extra.",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray cluster for --executor ray (default: RAY_ADDRESS, else a local one)."),
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Slurm partition (resources.partition).")] = (
        None
    ),
    time_min: Annotated[
        int | None, typer.Option("--time-min", min=1, help="Slurm time limit per job (resources.time_min).")
    ] = None,
    gpus_per_run: Annotated[
        int | None, typer.Option("--gpus-per-run", min=0, help="GPUs per run (resources.gpus_per_run).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="Run only this run (its name under runs/; repeatable), then the report if all are done."
        ),  # fmt: skip
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes on this machine for --executor local, sharing the "
            "directory, each with cores // N torch threads (resources.workers; the default study: 2).",
        ),
    ] = None,  # fmt: skip
    overrides: SetOption = None,
) -> None:
    """Run a study (skipping runs that finished before) and write its report.

    Any number of `postfit run` workers may share one output directory (a shared filesystem): each run is locked
    while it trains, a dead worker's run is taken over, and the worker that finishes the last run writes the
    report; `postfit status DIR` shows where every run stands. Every option of a study file is listed by
    `postfit options` and in docs/study-file.md.
    """
    from postfit.config import load_study
    from postfit.study.executors import EXECUTORS, Launch, executor_for
    from postfit.ui import setup_logging

    parts = _shard(shard)
    spec, path = load_study(study, overrides or ())
    setup_logging(sys.stdout)  # a run's output is its progress: `postfit run ... > log.txt` keeps it
    spec = _weak_sandbox(spec, unsafe)
    flags = {"partition": partition, "time_min": time_min, "gpus_per_run": gpus_per_run, "workers": workers}
    if set_flags := {k: v for k, v in flags.items() if v is not None}:
        spec = spec.model_copy(update={"resources": spec.resources.model_copy(update=set_flags)})
    _check_run_flags(spec, executor, parts, only)
    target = out_dir or StudyDir.default(spec.name).root
    out.print(f"study [bold]{spec.name}[/] from {path} -> {target} ({executor})")
    launch = Launch(study, unsafe, parts, tuple(only or ()), ray_address, tuple(overrides or ()))
    report = EXECUTORS[executor_for(executor, spec)](spec, target, launch)
    if report.exists():
        out.print(f"report: [bold]{report}[/] and {report.with_suffix('.html')}")
    else:
        out.print(f"shard {shard} done; other runs remain (`postfit status {target}`)")


def _check_run_flags(spec, executor: str, shard, only: list[str] | None) -> None:
    from postfit.config.grid import grid_runs
    from postfit.study.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise UserError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "workers" and spec.resources.workers < 2:
        raise UserError("--executor workers: needs --workers N (or resources.workers) of 2 or more")
    if shard and spec.resources.workers > 1:
        raise UserError(f"--shard splits the grid for workers you start yourself; with {spec.resources.workers} "
                        "workers (--workers, resources.workers) postfit starts them: pass --workers 1")  # fmt: skip
    if executor in ("ray", "slurm") and (shard or only):
        raise UserError(f"--shard and --only split the grid for workers you start yourself; --executor {executor} "
                        "schedules every run itself")  # fmt: skip
    names = [r.name for r in grid_runs(spec)]
    if unknown := [name for name in only or [] if name not in names]:
        raise UserError(f"--only: {', '.join(unknown)} not in the grid of {spec.name} (runs: {', '.join(names)})")


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
    """Where every run of a study stands, one line each: its state (done, running, interrupted, failed, waiting),
    the stage it is in with its training step, how long ago it last wrote, and where it runs (or its error and the
    last lines of its log)."""
    import json

    from postfit.study.status import run_states
    from postfit.ui import duration

    rows = run_states(out_dir)
    for row in rows:
        if as_json:
            print(json.dumps(row))
            continue
        extra = {"running": f"on {row.get('where')} since {row.get('since')}",
                 "interrupted": f"holder {row.get('where')} is dead; the next worker takes it over",
                 "failed": f"{row.get('error')}"}.get(row["state"], "")  # fmt: skip
        stage = " ".join(x for x in (row.get("stage"), row.get("progress")) if x) or "—"
        age = "—" if row.get("age") is None else f"{duration(row['age'])} ago"
        line = f"{row['run']:<28} {row['state']:<11} {stage:<16} {age:<10} {extra}".rstrip()
        out.print(line, highlight=False, markup=False)
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

    if not StudyDir(out_dir).study_yaml.is_file():
        raise UserError(f"{out_dir}: not a study output directory (no study.yaml)")
    md, html = write_report(out_dir)
    out.print(f"report: [bold]{md}[/] and {html}")


@app.command()
@user_errors
def compare(
    dirs: Annotated[
        list[Path],
        typer.Argument(metavar="DIR", help="Two or more study directories; the others are compared with the first."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for compare.md, compare.html and plots/.")],
) -> None:
    """Compare studies that share evaluation splits: their greedy pass@1 tables side by side, and each later study
    minus the first with intervals paired by seed and item where the items match (from stored samples only)."""
    from postfit.report.compare import write_comparison

    md, html = write_comparison(dirs, out_dir)
    out.print(f"comparison: [bold]{md}[/] and {html}")


@app.command()
@user_errors
def plan(
    study: Annotated[str, typer.Argument(help="Built-in study (default, smoke, scaling, paper) or a YAML path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs that GPU studies' memory lines divide by.")] = 8,
    overrides: SetOption = None,
    unsafe: Annotated[bool, typer.Option("--unsafe-weak-sandbox", help=UNSAFE_HELP)] = False,
) -> None:
    """Validate a study and print its runs, token counts, FLOP estimate and, for GPU studies, memory per GPU and
    GPU-hours (from the file alone); then make every check `postfit run` makes before it writes anything (a GPU
    where required, the model, the data, the code sandbox, contamination) and exit 2 with run's message where run
    would refuse the study on this machine. No weights are loaded and nothing is written."""
    from postfit.config import load_study
    from postfit.study.checks import check_study
    from postfit.study.plan import make_plan, plan_json, render

    spec, path = load_study(study, overrides or ())
    spec = _weak_sandbox(spec, unsafe)
    result = make_plan(spec, str(path), gpus)
    try:
        check_study(spec)
    except UserError as e:
        result.refused = str(e)
    print(plan_json(result) if as_json else render(result))
    if result.refused:
        raise UserError(result.refused)


@app.command()
def options() -> None:
    """Print every study-file option with its type, default and meaning (the table of docs/study-file.md)."""
    from postfit.config import options_markdown

    print(options_markdown(), end="")


@app.command("import-recipe")
@user_errors
def import_recipe(
    recipe: Annotated[Path, typer.Argument(help="An open-r1 SFT or GRPO recipe (YAML with TRL's field names).")],
    out_file: Annotated[
        Path | None, typer.Option("-o", "--out", help="Where to write the study file (default: stdout).")
    ] = None,
) -> None:
    """Write a postfit study file from an open-r1 recipe: its model, dataset and training settings under their postfit
    keys, other SFTConfig / GRPOConfig fields under sft.trainer / rl.trainer; what has no postfit meaning is named on
    stderr. The study compares the recipe's model pre-trained and randomly initialised."""
    import yaml

    from postfit.cli.common import err
    from postfit.config.openr1 import import_recipe as convert

    class Dumper(yaml.SafeDumper):  # multi-line text (a chat template) as a literal block
        pass

    def text_block(dumper, value: str):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text_block)
    study, notes = convert(recipe)
    text = yaml.dump(study, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    if out_file is None:
        print(text, end="", flush=True)
    else:
        out_file.write_text(text, encoding="utf-8")
    for note in notes:
        err.print(note, highlight=False, markup=False, soft_wrap=True)
    if out_file is not None:
        err.print(f"study file: {out_file} (check it with `postfit plan {out_file}`)", highlight=False, markup=False)


app.command("eval")(user_errors(eval_command))  # postfit eval MODEL --bench ... --out DIR (cli/eval.py)


def main() -> None:
    app()
