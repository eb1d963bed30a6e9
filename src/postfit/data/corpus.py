"""Pre-training text that is already on any machine that runs Python, or the user's own.

`stdlib` is the source of this interpreter's standard library (code, docstrings and comments,
written by people), minus test suites, bundled third-party packages and generated tables. It is
deterministic for a given Python version; its provenance (version, files, bytes, sha256) is
recorded with every pre-training run.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from postfit.errors import UserError

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py")
# Test suites are full of literal arithmetic; site-packages is not "the standard library".
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3", "ensurepip", "encodings"}


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not _STDLIB_SKIP & set(p.relative_to(root).parts[:-1]))


def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)


def iter_documents(spec: str) -> Iterator[str]:
    """Yield the corpus one document at a time, in a fixed order."""
    if spec.startswith("hf:"):
        yield from _hf_documents(spec[3:])
        return
    if spec == "stdlib":
        files = _stdlib_files()
    else:
        path = Path(spec)
        if not path.exists():
            raise UserError(f"pretrain.corpus: {spec!r} is not `stdlib`, `hf:NAME` or an existing file or directory")
        files = _local_files(path)
        if not files:
            raise UserError(f"pretrain.corpus: {spec!r} holds no {'/'.join(TEXT_SUFFIXES)} files")
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield text


def _hf_documents(name: str) -> Iterator[str]:
    from datasets import load_dataset

    try:
        ds = load_dataset(name, split="train", streaming=True)
    except Exception as e:  # datasets raises several types for "not cached and offline"
        raise UserError(
            f"pretrain.corpus: cannot load Hugging Face dataset {name!r} ({type(e).__name__}: {e}). Offline, it must "
            f"be in the local cache: fetch it where there is network (`hf download --repo-type dataset {name}`)."
        ) from None
    for row in ds:
        if "text" not in row:
            raise UserError(f"pretrain.corpus: dataset {name!r} has no `text` column (columns: {sorted(row)})")
        yield row["text"]


def corpus_documents(spec: str, max_chars: int) -> list[str]:
    """Whole documents from the start of the corpus until `max_chars` characters are reached."""
    return list(_read_documents(spec, max_chars))


@lru_cache(maxsize=2)  # a study reads the same prefix for its tokenizer, its pre-training and its contamination check
def _read_documents(spec: str, max_chars: int) -> tuple[str, ...]:
    docs, size = [], 0
    for doc in iter_documents(spec):
        docs.append(doc)
        size += len(doc)
        if size >= max_chars:
            break
    return tuple(docs)


def provenance(spec: str, docs: list[str]) -> dict:
    import platform

    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.encode())
    info = {"corpus": spec, "documents": len(docs), "chars": sum(map(len, docs)), "sha256": digest.hexdigest()}
    if spec == "stdlib":
        info["python"] = platform.python_version()
        info["root"] = sysconfig.get_paths()["stdlib"]
        info["skipped_dirs"] = sorted(_STDLIB_SKIP)
    return info
