"""The `postfit` command: argument parsing only; every command calls one library function.

app.py holds the top-level commands (run, report, plan, options) and mounts eval.py (`postfit eval`) and
sandbox.py (`postfit sandbox`); common.py the error and logging set-up they share. May import every stage.
"""

from postfit.cli.app import main

__all__ = ["main"]
