"""The error types the CLI maps to exit codes: UserError (bad input, 2) and DiskFull (1, with the path)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """Bad study file, bad data or a missing resource: the message says what and where.

    The CLI prints the message without a traceback and exits with code 2.
    """


class DiskFull(Exception):
    """No space left on the device while writing under `path`. Nothing half-written is kept (atomic writes, complete
    checkpoints only), so freeing space and rerunning resumes; the CLI exits with code 1."""

    def __init__(self, path: Path | str, cause: BaseException | None = None):
        self.path = Path(path)
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(f"no space left on the device writing {path}{why}; free space there and rerun (what "
                         "finished is kept)")  # fmt: skip


def is_disk_full(e: BaseException | None) -> bool:
    """True when `e` or an exception it was raised from is a full disk (ENOSPC, EDQUOT, or a library's message of
    it: torch and safetensors do not always raise OSError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DiskFull) or getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "os error 28" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def space_left(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of `directory` (its nearest existing parent)."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


@contextmanager
def writing_under(directory: Path) -> Iterator[None]:
    """Turn a full disk inside the block into DiskFull naming `directory` (a more precise DiskFull passes). torch's
    own writer reports a full disk as a RuntimeError without errno ("iostream error", "unexpected pos"), so an
    error while under 1 MiB is left on the filesystem counts too."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        left = space_left(directory) if isinstance(e, (OSError, RuntimeError)) else None
        if is_disk_full(e) or (left is not None and left < 2**20):
            raise DiskFull(directory, e) from e
        raise
