"""What a person watching a run sees: log lines, stage starts and ends, training progress.

In a terminal: rich logs and one live progress display per stage (TRL's for training, rich's for generation).
Anywhere else (a file, a pipe, nohup, Slurm, CI): plain timestamped lines, one per event, and training progress
every `PROGRESS_S` seconds, so a log file reads line by line with no box drawing and nothing cut.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

T = TypeVar("T")
log = logging.getLogger("postfit")
PROGRESS_S = 30.0  # seconds between plain progress lines of one stage (its first and last step are always logged)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The lines `stage` and the progress callback write, as `postfit status` reads them back from a run's log.txt.
STAGE_LINE = re.compile(r" (start|end|stopped) ([\w+-]+)")
STEP_LINE = re.compile(r": step (\d+)/(\d+)")


def plain(stream: TextIO | None = None) -> bool:
    """True when `stream` (stdout by default) is not a terminal: logs are then plain lines."""
    stream = stream or sys.stdout
    return not (hasattr(stream, "isatty") and stream.isatty())


def duration(seconds: float) -> str:
    """'42s', '3m05s', '1h02m': short enough for a progress line."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a live bar in a terminal; elsewhere a plain line every PROGRESS_S seconds and at the end."""
    if plain():
        total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
        start = last = time.monotonic()
        done = 0
        for done, item in enumerate(items, 1):
            yield item
            now = time.monotonic()
            if now - last >= PROGRESS_S:
                last = now
                log.info("%s: %d/%s batches, %s", description, done, total or "?", duration(now - start))
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, transient=True) as progress:
        yield from progress.track(items, total=total, description=description)


@contextmanager
def stage(name: str, detail: str = "") -> Iterator[None]:
    """Log the start and the end (with its duration) of one stage of a study; a stage that raises logs that too."""
    what = f"{name}: {detail}" if detail else name
    log.info("start %s", what)
    start = time.monotonic()
    try:
        yield
    except BaseException:
        log.info("stopped %s after %s", what, duration(time.monotonic() - start))
        raise
    log.info("end %s (%s)", what, duration(time.monotonic() - start))


def progress_callback(label: str):
    """The trainer callback for `label` (e.g. 'sft random-sft-s0'): TRL's rich display in a terminal; elsewhere a
    plain line every PROGRESS_S seconds with the step, loss, tokens/s (where the trainer counts tokens) and ETA."""
    from transformers import TrainerCallback

    if not plain():
        from trl.trainer.callbacks import RichProgressCallback

        return RichProgressCallback()

    class PlainProgress(TrainerCallback):
        """Rates and ETA are measured from the first logged step, so start-up time does not skew them."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.first, self.last_step, self.last_t = None, None, 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            now, step, total, logs = time.monotonic(), state.global_step, state.max_steps, logs or {}
            if step == self.last_step or (now - self.last_t < PROGRESS_S and step < total and self.first):
                return
            self.last_step, self.last_t = step, now
            parts = [f"step {step}/{total}"] + ([f"loss {logs['loss']:.4g}"] if "loss" in logs else [])
            if self.first is None:
                self.first = (now, step, logs.get("num_tokens"))
            elif step > self.first[1]:
                t0, step0, tokens0 = self.first
                if "num_tokens" in logs and tokens0 is not None:  # TRL counts the tokens it trained on
                    parts.append(f"{(logs['num_tokens'] - tokens0) / max(now - t0, 1e-9):,.0f} tokens/s")
                if step < total:
                    parts.append(f"ETA {duration((now - t0) / (step - step0) * (total - step))}")
            log.info("%s: %s", label, ", ".join(parts))

    return PlainProgress()


def setup_logging(stream: TextIO | None = None) -> None:
    """INFO logs on `stream` (stderr by default; `postfit run` passes stdout, its output being its progress): rich
    in a terminal, plain timestamped lines elsewhere; the libraries' own bars and warnings quiet."""
    stream = stream or sys.stderr
    if plain(stream):
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", TIME_FORMAT))
    else:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(file=stream), show_path=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # TRL 1.16 still calls the deprecated name on every step; the warning says nothing about the user's study.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    transformers.utils.logging.disable_progress_bar()  # our own progress instead of tqdm
    datasets.disable_progress_bars()
