"""Training curves sent to the tools people watch: `report.to: [tensorboard, trackio, wandb]` in a study file.

The names go to the Trainer's / TRL's own `report_to` (transformers' integrations do the logging), with
`run_name` = the postfit run's name and `project` = the study's name. TensorBoard event files go to
DIR/tensorboard/RUN (`tensorboard --logdir DIR/tensorboard`); trackio and W&B keep their own defaults (their
environment variables apply). Where a study runs is not what it computes: `report.to` is not in the fingerprint.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path

from postfit.errors import UserError

TRACKERS = {  # report.to name -> (module it needs, how to install it)
    "tensorboard": ("tensorboard", "pip install 'postfit[tensorboard]'"),
    "trackio": ("trackio", "pip install trackio"),
    "wandb": ("wandb", "pip install wandb"),
}

_active: dict = {}  # set by `tracking` around one training stage, read by train.common.trainer_kwargs


def require_trackers(to: list[str], key: str = "report.to") -> None:
    """Exit 2 (UserError) before anything runs when a tracker of `to` is not installed, naming its install."""
    for name in to:
        module, install = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"{key}: {name} is not installed; install it with `{install}`, or remove it from {key}")


@contextmanager
def tracking(to: list[str], study_dir: Path, run_name: str, project: str):
    """Training stages started inside report to `to` under `run_name` (no-op for an empty `to`)."""
    if not to:
        yield
        return
    key, before = "TENSORBOARD_LOGGING_DIR", os.environ.get("TENSORBOARD_LOGGING_DIR")
    if "tensorboard" in to:
        os.environ[key] = str(Path(study_dir) / "tensorboard" / run_name)  # read when the callback is made
    _active.update(report_to=list(to), run_name=run_name, project=project)
    try:
        yield
    finally:
        _active.clear()
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def report_kwargs() -> dict:
    """`report_to` (and the run's name and project when tracking) for TrainingArguments / TRL configs."""
    return dict(_active) if _active else {"report_to": "none"}
