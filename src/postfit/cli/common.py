"""What every command shares: UserError -> a message and exit code 2, a full disk -> exit code 1, the consoles."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from postfit.errors import DiskFull, UserError, is_disk_full

err = Console(stderr=True)
out = Console(soft_wrap=True)  # a line longer than the terminal (or any line in a file) is never cut


def user_errors(fn):
    """UserError -> its message on stderr and exit code 2; a full disk -> its path and exit code 1; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            # escaped: a message's own brackets (`.[gpu]`, `[0, 1]`) are text, not rich markup
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as e:
            if not is_disk_full(e):
                raise
            message = str(e) if isinstance(e, DiskFull) else str(DiskFull(getattr(e, "filename", None) or ".", e))
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
