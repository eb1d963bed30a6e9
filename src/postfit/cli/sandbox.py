"""`postfit sandbox`: run untrusted programs in the sandbox and print verdicts as JSON.

Exit codes: 0 whatever the verdict, 2 for bad arguments or when the sandbox refuses to run code because a
required isolation layer is missing (the verdicts, status `error`, name the layers; `--unsafe-weak-sandbox`
runs the program anyway under the weaker layers, and its verdicts say `weak: true`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

MEMORY_HELP = (
    "Memory limit in MB: each process's address space and, where the sandbox has a cgroup, the whole "
    "program's memory with all its children."
)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])


def _bad(msg: str) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(2)


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as e:
        raise _bad(f"cannot read {what} {path}: {e.strerror}") from None


def _check_limits(timeout: float, memory: int) -> None:
    if not timeout > 0:
        raise _bad("--timeout must be > 0")
    if memory < 32:
        raise _bad("--memory must be at least 32 (MB)")


UNSAFE_HELP = "Run even when required isolation layers are missing (verdicts then say weak: true). Unsafe."


def _refusal(unsafe: bool) -> str | None:
    """Apply --unsafe-weak-sandbox; why programs will be refused (a required layer missing, no opt-in), or None."""
    from postfit.sandbox import allow_weak, missing_layers
    from postfit.sandbox.policy import refusal

    allow_weak(unsafe)
    missing = missing_layers()
    return refusal(missing) if missing and not unsafe else None


def _emit(obj: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj))
    else:
        typer.echo(f"{obj.get('id', 'program')}: {obj['status']} ({obj['detail']})")


@app.command()
def run(
    program: Annotated[Path, typer.Argument(help="Python file to run (untrusted).")],
    tests: Annotated[Path | None, typer.Option(help="Assert-style tests run after the program (HumanEval).")] = None,
    stdin: Annotated[Path | None, typer.Option(help="File fed to the program's stdin.")] = None,
    expect: Annotated[Path | None, typer.Option(help="Expected stdout (compared by the parent).")] = None,
    timeout: Annotated[float, typer.Option(help="Wall-clock seconds for the run.")] = 5.0,
    memory: Annotated[int, typer.Option(help=MEMORY_HELP)] = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    unsafe: Annotated[bool, typer.Option("--unsafe-weak-sandbox", help=UNSAFE_HELP)] = False,
) -> None:
    """Run one program and print its verdict: status (passed, failed, timeout, memory, error) and detail."""
    from postfit.sandbox import run_program

    _check_limits(timeout, memory)
    if tests is not None and (stdin is not None or expect is not None):
        raise _bad("give --tests or --stdin/--expect, not both")
    refused = _refusal(unsafe)
    v = run_program(_read(program, "program"), tests=_read(tests, "tests"), stdin=_read(stdin, "stdin"),
                    expect=_read(expect, "expected output"), timeout=timeout, memory_mb=memory)  # fmt: skip
    _emit(v.to_dict(), as_json)  # the verdict says `error` and why; the exit code says it too
    if refused:
        raise _bad(refused)


@app.command()
def batch(
    items: Annotated[Path, typer.Argument(help="JSONL: id, program, and tests or stdin/expect per line.")],
    workers: Annotated[int | None, typer.Option(help="Parallel sandboxes.", show_default="one per CPU core")] = None,
    timeout: Annotated[float, typer.Option(help="Wall-clock seconds per item (an item's `timeout` wins).")] = 5.0,
    memory: Annotated[int, typer.Option(help=MEMORY_HELP)] = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per item.")] = False,
    unsafe: Annotated[bool, typer.Option("--unsafe-weak-sandbox", help=UNSAFE_HELP)] = False,
) -> None:
    """Run every item of a JSONL file in parallel; one verdict line per item, in input order."""
    from postfit.sandbox import Item, run_batch

    _check_limits(timeout, memory)
    if workers is not None and workers < 1:
        raise _bad("--workers must be >= 1")
    parsed = []
    for n, line in enumerate((_read(items, "items") or "").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or not isinstance(d.get("program"), str) or d.get("id") is None:
                raise ValueError("needs `id` and `program`")
            unknown = set(d) - {"id", "program", "tests", "stdin", "expect", "timeout", "memory_mb"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            if d.get("tests") is not None and (d.get("stdin") is not None or d.get("expect") is not None):
                raise ValueError("give `tests` or `stdin`/`expect`, not both")
            limits = {"timeout": float(d.get("timeout", timeout)), "memory_mb": int(d.get("memory_mb", memory))}
            parsed.append(Item(str(d["id"]), d["program"], d.get("tests"), d.get("stdin"), d.get("expect"), **limits))
        except (ValueError, TypeError) as e:
            raise _bad(f"{items}:{n}: {e}") from None
    refused = _refusal(unsafe)
    for it, v in zip(parsed, run_batch(parsed, workers), strict=True):
        _emit({"id": it.id, **v.to_dict()}, as_json)
    sys.stdout.flush()
    if refused:
        raise _bad(refused)
