"""Rich progress bars for the long steps (generation, data); training uses TRL's rich callback."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, transient=True) as progress:
        yield from progress.track(items, total=total, description=description)


def setup_logging() -> None:
    """INFO logs through rich on stderr, the libraries' own bars and warnings quiet (commands and executor tasks)."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # TRL 1.16 still calls the deprecated name on every step; the warning says nothing about the user's study.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    transformers.utils.logging.disable_progress_bar()  # rich bars instead of tqdm
    datasets.disable_progress_bars()
