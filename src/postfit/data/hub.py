"""Reading data: Hugging Face datasets by name (the ordinary `datasets.load_dataset`) and local item files.

Offline behaviour (HF_HUB_OFFLINE=1, or no network): `load_dataset` answers from its own cache (a dataset
loaded once before). If that misses, the hub's file cache is tried -- a snapshot that `hf download NAME
--repo-type dataset` put there -- and loaded as a local folder with the same configs. If neither holds the
dataset, a UserError names it (id, config, split) and gives the command that fetches it. With
HF_HUB_OFFLINE=1 the hub is never contacted, so the failure is immediate; without it and without network,
`huggingface_hub` retries for about 20 s first.

Local files (`.jsonl`, `.json`, `.parquet`) and dataset folders (`save_to_disk`, or data files laid out as on the
hub) are read here too; rows in postfit's item schema (postfit.item) become items (`save_items` writes them), other
rows are mapped by postfit.data.formats. Errors name the file and the line (jsonl) or row and the key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from postfit.data.formats import LOCAL_SUFFIXES, Columns
from postfit.errors import UserError
from postfit.item import FIELDS, Item, make_item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubSpec:
    """Where a dataset lives on the hub and how one of its rows becomes an item.

    `map_row(row, source=, index=, split=)` returns an item (postfit.item.make_item); `mapped` says
    in words which columns go where (docs/datasets.md's dataset table is written from it); `columns` is the column
    mapping `map_row` reads with, where one says everything (postfit.data.formats), else None.
    """

    path: str
    config: str | None
    split: str
    domain: str
    map_row: Callable[..., Item]
    mapped: str
    columns: Columns | None = None


def map_rows(name: str, spec: HubSpec, rows: Iterable[dict], *, split: str, limit: int | None = None,
             start: int = 0) -> list[Item]:  # fmt: skip
    """The items of the first `limit` rows, the first being the dataset's row `start` (ids and errors name each row
    by its index in the dataset); a missing column or a bad value is a UserError naming the dataset."""
    items = []
    for index, row in enumerate(rows, start):
        if limit is not None and index >= start + limit:
            break
        try:
            items.append(spec.map_row(row, source=name, index=index, split=split))
        except KeyError as e:
            raise UserError(
                f"{name}: dataset {spec.path!r} row {index} has no column {e.args[0]!r} (columns: {sorted(row)}); "
                "the hub's schema changed, or the file is not this dataset"
            ) from None
        except (ValueError, TypeError) as e:
            raise UserError(f"{name}: dataset {spec.path!r} row {index}: {e}") from None
    return items


def describe(path: str, config: str | None, split: str) -> str:
    return f"dataset {path!r}" + (f" config {config!r}" if config else "") + f" split {split!r}"


def fetch_command(path: str, config: str | None, split: str) -> str:
    """The command that puts a hub dataset where postfit finds it offline (run where the hub is reachable)."""
    args = ", ".join([repr(path)] + ([repr(config)] if config else []) + [f"split={split!r}"])
    return (
        f'`hf download {path} --repo-type dataset` (or `python -c "import datasets; datasets.load_dataset({args})"`)'
    )


def _offline_errors() -> tuple[type[BaseException], ...]:
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    # ConnectionError: no network or HF_HUB_OFFLINE; FileNotFoundError/DatasetNotFoundError: not cached, unknown,
    # or gated; HfHubHTTPError: the hub refused (rate limit, auth).
    return (ConnectionError, FileNotFoundError, DatasetNotFoundError, OfflineModeIsEnabled, HfHubHTTPError)


def _cached_snapshot(path: str) -> str | None:
    """The local folder of a dataset repo in the hub's file cache (`hf download`), or None."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(path, repo_type="dataset", local_files_only=True, cache_dir=constants.HF_HUB_CACHE)
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None


def hub_dataset(path: str, config: str | None = None, split: str = "train"):
    """`datasets.load_dataset(path, config, split=split)`, or a UserError saying how to fetch it."""
    import datasets

    what = describe(path, config, split)
    try:
        return datasets.load_dataset(path, config, split=split)
    except _offline_errors() as e:
        reason = f"{type(e).__name__}: {e}"
    except ValueError as e:  # a config or split the dataset does not have
        raise UserError(f"{what}: {e}") from None
    snapshot = _cached_snapshot(path)
    if snapshot is not None:
        log.info("%s: not in the datasets cache, loading the hub snapshot %s", path, snapshot)
        try:
            return datasets.load_dataset(snapshot, config, split=split)
        except (ValueError, FileNotFoundError) as e:
            reason = f"the cached snapshot {snapshot} does not hold it ({type(e).__name__}: {e})"
    raise UserError(
        f"{what} is not cached on this machine and the Hugging Face Hub cannot be reached ({reason}). "
        f"Fetch it with {fetch_command(path, config, split)} on a machine with network access, into the same "
        "HF_HOME cache (default ~/.cache/huggingface; copy it here if that machine is another one)."
    )


def _decode_nested(row: dict) -> dict:
    # Parquet cannot hold dicts of varying shape in one column, so `save_items` stores tests/meta as JSON text.
    for key in ("tests", "meta"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def _text(path: Path) -> str:
    """The file as UTF-8 text, or a UserError naming the line of the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x}); save the file as UTF-8") from None


def _rows(path: Path) -> list[tuple[str, dict]]:
    """(location, row) pairs; location is 'FILE:LINE' for jsonl, 'FILE[row N]' otherwise."""
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(_text(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                out.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        return out
    if path.suffix == ".json":
        try:
            data = json.loads(_text(path))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON list of items (or {{'data': [...]}}), got {type(data).__name__}")
        return [(f"{path}[row {i}]", row) for i, row in enumerate(data)]
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    return [(f"{path}[row {i}]", row) for i, row in enumerate(table.to_pylist())]


def file_rows(path: str | Path) -> list[tuple[str, dict]]:
    """(location, row) of every row of a local .jsonl / .json / .parquet file; UserError naming the file and line."""
    path = Path(path).expanduser()
    if path.suffix not in LOCAL_SUFFIXES:
        raise UserError(f"{path}: expected a {' / '.join(LOCAL_SUFFIXES)} file or a dataset folder")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return _rows(path)


def local_dataset(path: str | Path, subset: str | None, split: str):
    """A dataset folder as `datasets` reads it: what `save_to_disk` wrote (`load_from_disk`; a saved Dataset has no
    splits and is read whole), or data files laid out as on the hub (`load_dataset(folder, subset, split=...)`)."""
    import datasets

    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path}: no such file or folder")
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise UserError(f"{path}: no split {split!r} in this saved dataset (splits: {', '.join(ds)})")
            ds = ds[split]
        return ds
    try:
        return datasets.load_dataset(str(path), subset, split=split)
    except (ValueError, FileNotFoundError, *_offline_errors()) as e:
        raise UserError(f"{path}: not a dataset folder `datasets` can read ({type(e).__name__}: {e})") from None


def items_from_rows(rows: Iterable[tuple[str, dict]]) -> list[Item]:
    """Rows in postfit's item schema as items, checked row by row; errors name the row's location and the key."""
    items = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object with keys {list(FIELDS)}, got {type(row).__name__}")
        unknown = sorted(set(row) - set(FIELDS))
        if unknown:
            raise UserError(f"{where}: unknown key {unknown[0]!r} (an item has {', '.join(FIELDS)})")
        for key in ("id", "source", "domain", "prompt", "split"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{where}: key {key!r} is required and must be a string")
        try:
            items.append(make_item(**_decode_nested(dict(row))))
        except (ValueError, TypeError, AttributeError) as e:
            raise UserError(f"{where}: {e}") from None
    return items


def read_items(path: str | Path, *, limit: int | None = None, skip: int = 0) -> list[Item]:
    """Schema items from a local .jsonl / .json / .parquet file (`limit` rows from row `skip`), checked row by row."""
    return items_from_rows(file_rows(path)[skip : None if limit is None else skip + limit])


def save_items(items: list[Item], path: str | Path) -> Path:
    """Write items as .jsonl, .json or .parquet (tests/meta as JSON text in parquet); `read_items` reads them back."""
    path, rows = Path(path), [it.to_json() for it in items]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [{**row, "tests": json.dumps(row["tests"]), "meta": json.dumps(row["meta"])} for row in rows]
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise UserError(f"{path}: expected a {' / '.join(LOCAL_SUFFIXES)} file")
    return path
