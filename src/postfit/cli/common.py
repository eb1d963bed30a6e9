"""What every command shares: UserError -> a message and exit code 2, the logging set-up, the consoles."""

from __future__ import annotations

import functools
import logging
import os
import warnings

import typer
from rich.console import Console

from postfit.errors import UserError

err = Console(stderr=True)
out = Console()


def user_errors(fn):
    """UserError -> its message on stderr and exit code 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def setup_logging() -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # TRL 1.16 still calls the deprecated name on every step; the warning says nothing about the user's study.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    transformers.utils.logging.disable_progress_bar()  # rich bars instead of tqdm
    datasets.disable_progress_bars()
