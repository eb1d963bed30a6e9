"""What keeps a run directory trustworthy: the run's own log and failure record, the sha256 of its files (a
damaged run is found and made pending again) and the sweep of temporaries that killed writes left.

Every function here runs while the worker holds the directory's lock (study/locks.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from postfit.distributed import barrier, is_main
from postfit.errors import DiskFull, UserError, writing_under
from postfit.io import atomic_write_json, file_hashes, remove_temporaries
from postfit.layout import RunDir

log = logging.getLogger(__name__)

_NAMES = RunDir(Path())  # the file names of a run directory
TRAINING = {_NAMES.train_log.name, _NAMES.heldout.name}  # written by training; the rest by evaluation
EVALUATION = (_NAMES.samples.name, _NAMES.probes.name, _NAMES.forgetting.name)
RECORDED = (*EVALUATION, *sorted(TRAINING))  # their sha256 goes into run.json


def record_files(run_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """name -> sha256 of the run's RECORDED files, plus `extra` (files about to be written), for run.json."""
    return {**file_hashes(run_dir, RECORDED), **extra}


def undo(run_dir: Path, bad: list[str]) -> None:
    """Make a damaged run pending again: drop its results and the damaged files; a damaged training log also drops
    train.json, so the run trains again (the evaluation alone is redone from the saved model otherwise)."""
    log.warning("%s: %s changed since the run wrote it (sha256 in run.json); redoing the run", run_dir,
                ", ".join(bad))  # fmt: skip
    if is_main():
        d = RunDir(run_dir)
        for path in {d.results, d.run_json, *(d / name for name in bad)} | ({d.train_json} if set(bad) & TRAINING
                                                                            else set()):  # fmt: skip
            path.unlink(missing_ok=True)
    barrier()


def sweep(directory: Path, recursive: bool = True) -> None:
    """Clear what killed writes left in a directory whose lock this worker holds (io.remove_temporaries)."""
    if is_main():
        for path in remove_temporaries(directory, recursive):
            log.warning("%s: removed, left by an interrupted write", path)


@contextlib.contextmanager
def run_log(run_dir: Path):
    """Each run keeps its own log (log.txt, appended on resume); a run that raises leaves failed.json with the
    error, which `postfit status` shows."""
    handler = None
    if is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(RunDir(run_dir).log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    try:
        with writing_under(run_dir):
            yield
    except BaseException as e:
        if is_main():  # a full disk is said in one line (the CLI names the path); anything else with its traceback
            log.error("%s failed: %s", run_dir.name, e, exc_info=not isinstance(e, DiskFull | UserError))
            with contextlib.suppress(OSError, DiskFull):  # on a full disk, failed.json may not fit either
                atomic_write_json(RunDir(run_dir).failed, {"error": f"{type(e).__name__}: {e}", "time": time.time()})
        raise
    else:
        if is_main():
            RunDir(run_dir).failed.unlink(missing_ok=True)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
