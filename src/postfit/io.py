"""Atomic file writes: a reader (or a resumed study) never sees a half-written file.

A write goes to a hidden sibling `.NAME.XXXX.tmp` (a file, or a directory for `atomic_dir`) that is renamed over
NAME when complete; a process killed before the rename leaves that sibling, which `remove_temporaries` clears.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from postfit.errors import DiskFull, is_disk_full

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary sibling and rename it over `path`: the file appears whole or not at all, with the
    usual permissions (0666 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e):
            raise DiskFull(path, e) from e
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def jsonl_text(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, jsonl_text(rows))


def append_jsonl(path: Path, row: dict) -> None:
    """Add one line to `path` in a single O_APPEND write, so lines of processes appending at once do not interleave
    (on a local filesystem); a reader skips a line a kill cut short (`read_jsonl_lenient`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(row, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFull(path, e) from e
        raise


def read_jsonl_lenient(path: Path) -> list[dict]:
    """The whole lines of an appended-to file (`append_jsonl`); [] when it does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def file_hashes(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """name -> sha256 of each of `names` that exists in `directory` (recorded so later edits are detected)."""
    return {name: sha256((Path(directory) / name).read_bytes()) for name in names if (Path(directory) / name).exists()}


def changed_files(directory: Path, recorded: dict[str, str]) -> list[str]:
    """The names in `recorded` whose file in `directory` is missing or no longer has the recorded sha256."""
    now = file_hashes(directory, recorded)
    return [name for name, digest in recorded.items() if now.get(name) != digest]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _share(tree: Path) -> None:
    """The usual permissions (0777 / 0666 & ~umask) for a tree written inside a mkdtemp (0700) directory, so
    collaborators on a shared filesystem can read it."""
    os.chmod(tree, 0o777 & ~_UMASK)
    for root, dirs, files in os.walk(tree):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~_UMASK)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~_UMASK)


def remove_temporaries(directory: Path, recursive: bool = True) -> list[Path]:
    """Remove what interrupted atomic writes left under `directory` (the `.NAME.XXXX.tmp` siblings); returns them.
    Only for a directory no other process writes to now (its task's lock is held)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = list(directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp"))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to `path` only if the block succeeds (files 0666 & ~umask,
    directories 0777 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        _share(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
