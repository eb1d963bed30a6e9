"""Word n-gram overlap between training text and evaluation items.

An evaluation item counts as contaminated by a source if one of its word n-grams occurs in the
source; an item shorter than n words counts if its whole word sequence occurs there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_N = 13
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(seq: list[str], n: int) -> Iterable[int]:
    return (hash(tuple(seq[i : i + n])) for i in range(len(seq) - n + 1))


def overlapping_items(source_texts: Iterable[str], items: dict[str, str], n: int = DEFAULT_N) -> list[str]:
    """Ids of the items (id -> text) that share a word n-gram with any of the source texts."""
    item_words = {k: words(v) for k, v in items.items()}
    lengths = {min(n, len(w)) for w in item_words.values() if w}
    index: dict[int, set[int]] = {m: set() for m in lengths}
    for text in source_texts:
        seq = words(text)
        for m in lengths:
            index[m].update(_grams(seq, m))
    hits = []
    for key, seq in item_words.items():
        m = min(n, len(seq))
        if seq and any(g in index[m] for g in _grams(seq, m)):
            hits.append(key)
    return sorted(hits)
