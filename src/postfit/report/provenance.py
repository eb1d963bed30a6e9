"""The report's provenance section: what computed the numbers. The environment of the study's first start
(env.json: postfit's version and commit, Python, the libraries, the hardware, the command) and every later
invocation whose versions or hardware differed (env_history.jsonl), so a study resumed elsewhere says so."""

from __future__ import annotations

from pathlib import Path

from postfit.env import PACKAGES, same_setup
from postfit.report.blocks import Block, Heading, Para, Table


def _postfit(env: dict) -> str:
    git = env.get("git")
    if not git:
        return f"{env.get('postfit')} (not from a git checkout)"
    changes = " with uncommitted changes" if git.get("dirty") else ""
    return f"{env.get('postfit')}, git {git['commit'][:12]}{changes}"


def _libraries(env: dict) -> str:
    versions = env.get("packages") or {}
    return ", ".join(f"{name} {versions.get(name) or '—'}" for name in PACKAGES)


def _hardware(env: dict) -> str:
    hw = env.get("hardware") or {}
    cpu = f"{hw.get('cpu')}, {hw.get('cpu_threads')} threads (torch {hw.get('torch_threads')})"
    gpus = hw.get("gpus") or []
    return f"CUDA {hw.get('cuda')}: {', '.join(gpus)}; {cpu}" if gpus else cpu


def _command(env: dict) -> str:
    argv = list(env.get("command") or [])
    if not argv:
        return "—"
    program = "postfit" if Path(argv[0]).name in ("postfit", "__main__.py") else Path(argv[0]).name
    return " ".join([program, *argv[1:]])


DESCRIBE = {"postfit": _postfit, "Python": lambda env: str(env.get("python")), "libraries": _libraries,
            "hardware": _hardware}  # fmt: skip


def _differences(first: dict, other: dict) -> str:
    return "; ".join(f"{what} {f(other)}" for what, f in DESCRIBE.items() if f(other) != f(first))


def provenance_blocks(study) -> list[Block]:
    """A table of the first start's environment and a sentence on the later invocations (none: a directory from
    before postfit recorded them)."""
    history = study.env_history
    first = study.env or (history[0] if history else None)
    if first is None:
        return []
    rows = [[what, f(first)] for what, f in DESCRIBE.items()]
    rows += [["command", f"`{_command(first)}`"], ["time", str(first.get("time"))]]
    source = "env.json" if study.env else "the first line of env_history.jsonl"
    blocks: list[Block] = [Heading("Provenance"), Table(["environment of the first start", source], rows)]
    differing = [env for env in history if not same_setup(env, first)]
    text = f"{len(history)} invocation{'s' * (len(history) != 1)} prepared this directory (env_history.jsonl)"
    if not differing:
        blocks.append(Para(text + ", all with these versions and hardware."))
        return blocks
    changes = "; ".join(f"{env.get('time')}: {_differences(first, env)}" for env in differing[:5])
    more = f" (and {len(differing) - 5} more)" if len(differing) > 5 else ""
    blocks.append(Para(f"{text}; {len(differing)} with other versions or hardware (what each resumed or ran was "
                       f"computed there): {changes}{more}."))  # fmt: skip
    return blocks
