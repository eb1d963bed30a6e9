"""The command's own texts: `postfit --version`, a bare `postfit run`, and every option's default in `--help`."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

import postfit
from postfit.cli.app import app

OPTION_LINE = re.compile(r"^│\s+(?:\*\s+)?(--[\w-]+)")


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="postfit", env={"COLUMNS": "400"})


def _commands(group, path: tuple[str, ...] = ()):
    """(path, command) of every command under the group (typer's click objects)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _option_blocks(help_text: str) -> dict[str, str]:
    """Option name -> its rows of the help screen (the name's line and the lines it wraps onto)."""
    blocks: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        if m := OPTION_LINE.match(line):
            current = m.group(1)
            blocks[current] = line
        elif current and line.startswith("│"):
            blocks[current] += " " + line
        else:
            current = None
    return blocks


def test_version_prints_and_exits_0():
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith(f"postfit {postfit.__version__}")


@pytest.mark.parametrize("args", [["run"], ["run", "--out", "x"]])
def test_bare_run_prints_its_usage_and_exits_2(args):
    """`postfit run` starts nothing without a study (the default study is `postfit run default`)."""
    result = _invoke(*args)
    assert result.exit_code == 2 and "Usage: postfit run" in " ".join(result.output.split())


def test_every_option_with_a_default_shows_it():
    """Every option whose default is a value (or a described one: `show_default="..."`) says `[default: ...]` in
    its command's --help; rich markup in a help text (`[default: x]` written by hand) would swallow it."""
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) >= 9  # run, report, compare, status, plan, options, eval, sandbox run / batch
    missing = []
    for path, command in commands:
        blocks = _option_blocks(_invoke(*path, "--help").stdout)
        for param in command.params:
            if param.param_type_name != "option" or param.is_flag or param.hidden:
                continue
            if param.default is None and not isinstance(param.show_default, str):
                continue  # no default (the help text says what happens without it)
            name = max(param.opts, key=len)
            if "[default:" not in blocks.get(name, ""):
                missing.append(f"postfit {' '.join(path)} {name}")
    assert missing == []
    run = _option_blocks(_invoke("run", "--help").stdout)["--out"]
    assert "[default: (runs/<study name>)]" in run
    batch = _option_blocks(_invoke("sandbox", "batch", "--help").stdout)["--workers"]
    assert "[default: (one per CPU core)]" in batch
