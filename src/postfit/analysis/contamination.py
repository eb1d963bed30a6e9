"""Word n-gram overlap between training text and evaluation items.

An evaluation item counts as contaminated by a source if one of its word n-grams occurs in the
source; an item shorter than n words counts if its whole word sequence occurs there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from postfit.item import Item

DEFAULT_N = 13
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_CHUNK = 1 << 20  # source words matched at once (whole texts): memory stays about this plus the items' n-grams


def _windows(ids, m: int):
    """A 64-bit key of every window of `m` word ids (a polynomial that wraps)."""
    import numpy as np

    count = len(ids) - m + 1
    key = np.zeros(count, dtype=np.uint64)
    for j in range(m):
        key = key * np.uint64(0x9E3779B97F4A7C15) + ids[j : j + count].astype(np.uint64)
    return key


def overlapping_items(source_texts: Iterable[str], items: dict[str, str], n: int = DEFAULT_N) -> list[str]:
    """Ids of the items (id -> text) that share a word n-gram with any of the source texts.

    The items' n-grams are indexed and the source is streamed past them in chunks of whole texts, so a corpus of
    any size is read once in the memory of a chunk. Candidate windows are found by their 64-bit keys and then
    compared word by word: the result is exact.
    """
    import numpy as np

    vocab: dict[str, int] = {}
    grams: dict[int, dict[tuple, list[str]]] = {}  # length m -> an item n-gram (as word ids) -> the items with it
    for key, text in items.items():
        seq = [vocab.setdefault(w, len(vocab)) for w in words(text)]
        m = min(n, len(seq))
        for i in range(len(seq) - m + 1 if seq else 0):
            grams.setdefault(m, {}).setdefault(tuple(seq[i : i + m]), []).append(key)
    wanted = {m: np.unique([_windows(np.array(g), m) for g in index]) for m, index in grams.items()}  # sorted
    hits: set[str] = set()

    def match(ids: list[int]) -> None:
        ids = np.array(ids, dtype=np.int64)
        for m, index in grams.items():
            if len(ids) < m:
                continue
            key = _windows(ids, m)  # a key that matches by chance, or spans a word no item has (-1), is refused below
            at = np.minimum(np.searchsorted(wanted[m], key), len(wanted[m]) - 1)
            for i in np.flatnonzero(wanted[m][at] == key):
                hits.update(index.get(tuple(ids[i : i + m].tolist()), ()))

    chunk: list[int] = []
    for text in source_texts:
        chunk += [vocab.get(w, -1) for w in words(text)] + [-1]  # -1 between texts: no n-gram spans two
        if len(chunk) >= _CHUNK:
            match(chunk)
            chunk = []  # a chunk ends with a text, so no window is cut
    match(chunk)
    return sorted(hits)


# ---- per (training source, evaluation split) pair --------------------------------------------------------------

# Splits a model is trained on; every other split of a study is evaluated.
TRAINING_SPLITS = ("train", "rl")


def _row(source: str, check: str, split: str, hits: list[str], total: int) -> dict:
    return {"source": source, "check": check, "split": split, "overlapping": len(hits), "total": total, "items": hits}


def exact_pairs(source: str, train_items: list[Item], evals: dict[str, list[Item]]) -> list[dict]:
    """Evaluation items whose question (whitespace and case normalised) is a training item's question.

    Used for procedural training data: reasoning-gym questions share a long fixed template, so an n-gram check
    would flag every item whose expression merely starts like a training one.
    """
    from postfit.tasks import normalise_question

    trained = {normalise_question(it.question) for it in train_items}
    return [
        _row(source, "exact question", split,
             sorted(it.id for it in items if normalise_question(it.question) in trained), len(items))
        for split, items in evals.items()
    ]  # fmt: skip


def ngram_pairs(source: str, texts: Iterable[str], evals: dict[str, list[Item]], n: int = DEFAULT_N) -> list[dict]:
    """Evaluation items sharing a word n-gram with the source's texts (read once for all splits)."""
    every = {it.id: it.question for items in evals.values() for it in items}
    hits = set(overlapping_items(texts, every, n))
    return [_row(source, f"word {n}-gram", split, sorted(it.id for it in items if it.id in hits), len(items))
            for split, items in evals.items()]  # fmt: skip


def _sft_texts(items: list[Item]) -> Iterable[str]:
    """Everything an SFT item trains on: its question, traces and conversation turns."""
    for it in items:
        yield it.question
        yield from it.traces
        yield from (m.get("content") or "" for m in it.messages)


def rl_overlaps(report: dict) -> list[str]:
    """What is wrong, in words, when a contamination report (`study_contamination`) finds RL prompts repeating
    SFT questions or evaluation items (exact question)."""
    return [f"{p['overlapping']} of the {p['total']} {p['split']} items repeat a question of {p['source']} "
            f"(e.g. {p['items'][0]})" for p in report["pairs"]
            if p["items"] and p["check"] == "exact question" and "rl" in (p["source"], p["split"])]  # fmt: skip


def study_contamination(study, splits: dict[str, list[Item]]) -> dict:
    """Every (training source, evaluation split) pair of a study, and the items to drop when `contamination.drop`.

    Sources: each training split (exact question; `train` is also checked against `rl`, whose overlapping
    prompts are then the ones dropped), real SFT data's text against each benchmark (word n-grams, n =
    `contamination.n`) and, when a pre-trained init is in the grid, the pre-training corpus (word n-grams).
    """
    n = study.contamination.n
    evals = {s: items for s, items in splits.items() if s not in TRAINING_SPLITS}
    pairs = [p for s in TRAINING_SPLITS if s in splits for p in exact_pairs(s, splits[s], evals)]
    if "train" in splits and "rl" in splits:
        pairs += exact_pairs("train", splits["train"], {"rl": splits["rl"]})
    benchmarks = {s: evals[s] for s in study.eval.benchmarks if s in evals}
    if study.data.sft is not None and benchmarks:
        pairs += ngram_pairs("train", _sft_texts(splits["train"]), benchmarks, n)
    corpus = None
    if study.pretrain is not None and any(i.startswith("pretrained") for i in study.grid.inits):
        from postfit.data.corpus import corpus_documents

        corpus = study.pretrain.corpus
        pairs += ngram_pairs("pretrain corpus", corpus_documents(corpus, study.pretrain.corpus_chars), evals, n)
    dropped: dict[str, list[str]] = {}
    if study.contamination.drop:
        for p in pairs:
            if p["items"]:
                dropped[p["split"]] = sorted(set(dropped.get(p["split"], [])) | set(p["items"]))
    return {"n": n, "corpus": corpus, "pairs": pairs, "drop": study.contamination.drop, "dropped": dropped}


def drop_items(splits: dict[str, list[Item]], report: dict) -> dict[str, list[Item]]:
    """The splits without the evaluation items the contamination report says to drop."""
    dropped = {split: set(ids) for split, ids in (report.get("dropped") or {}).items()}
    return {s: [it for it in items if it.id not in dropped.get(s, ())] for s, items in splits.items()}
