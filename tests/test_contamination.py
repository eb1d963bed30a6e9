"""The pre-training corpus shares no task prompt; planted overlaps are found."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postfit.analysis.contamination import overlapping_items
from postfit.config import load_study
from postfit.data.corpus import corpus_documents
from postfit.tasks import make_splits


def test_stdlib_corpus_shares_no_task_prompt():
    study = load_study("default")[0]
    cfg = study.pretrain
    docs = corpus_documents(cfg.corpus, cfg.corpus_chars)
    assert sum(map(len, docs)) >= 3_000_000
    splits = make_splits(study.tasks)
    for name, items in splits.items():
        assert overlapping_items(docs, {it.id: it.question for it in items}) == [], name


def test_planted_overlap_is_found():
    items = {"a": "State the final answer to the following arithmetic problem: 41 + 7 - 3 =", "b": "Calculate 5 - 3."}
    clean = ["def f(x):\n    return x + 1\n", "The quick brown fox."]
    assert overlapping_items(clean, items) == []
    planted = clean + ["# Example: state the final answer to the following arithmetic problem: 41 + 7 - 3 = 45"]
    assert overlapping_items(planted, items) == ["a"]
    # A short item counts only if its whole word sequence occurs.
    assert overlapping_items(["calculate 5 - 3 ."], items) == ["b"]
    assert overlapping_items(["calculate 5 - 4 ."], items) == []


def test_local_corpus_and_missing_hf_corpus(tmp_path, monkeypatch):
    import pytest

    from postfit.errors import UserError

    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("second document")
    (tmp_path / "skip.bin").write_text("not text")
    assert corpus_documents(str(tmp_path), 10**6) == ["first document", "second document"]
    with pytest.raises(UserError, match="pretrain.corpus: 'nowhere' is not"):
        corpus_documents("nowhere", 100)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot load Hugging Face dataset 'no-org/no-such-corpus'.*hf download"):
        corpus_documents("hf:no-org/no-such-corpus", 100)


def test_study_contamination_check_reports_none_then_a_planted_leak(tmp_path):
    from postfit.layout import StudyDir
    from postfit.study.prepare import check_contamination

    study = load_study("smoke")[0]
    splits = make_splits(study.tasks)
    report = check_contamination(study, StudyDir(tmp_path / "clean"), splits)
    evals = ["id_test", "ood_harder", "ood_family", "ood_format"]
    assert {(p["source"], p["split"]) for p in report["pairs"]} == {
        (src, split) for src in ["train", "rl", "pretrain corpus"] for split in evals
    } | {("train", "rl")}  # SFT questions are also checked against the RL prompts
    assert all(p["overlapping"] == 0 and p["total"] == len(splits[p["split"]]) for p in report["pairs"])
    leaked = {**splits, "id_test": [*splits["id_test"], replace(splits["train"][0], id="id_test/leak")]}
    report = check_contamination(study, StudyDir(tmp_path / "leaky"), leaked)
    (pair,) = [p for p in report["pairs"] if p["source"] == "train" and p["split"] == "id_test"]
    assert pair["items"] == ["id_test/leak"]


def _reference(texts: list[str], items: dict[str, str], n: int) -> list[str]:
    """Item by item, window by window: what overlapping_items must find."""
    from postfit.analysis.contamination import words

    seqs = [words(t) for t in texts]
    hits = []
    for key, text in items.items():
        item = words(text)
        m = min(n, len(item))
        grams = {tuple(item[i : i + m]) for i in range(len(item) - m + 1)} if item else set()
        if any(tuple(s[i : i + m]) in grams for s in seqs for i in range(len(s) - m + 1)):
            hits.append(key)
    return sorted(hits)


_text = st.lists(st.sampled_from(["a", "b", "c", "1", "+", "="]), max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_text, max_size=6), st.lists(_text, min_size=1, max_size=5), st.integers(1, 5), st.integers(1, 9))
def test_overlap_is_exactly_the_window_by_window_answer(texts, item_texts, n, chunk):
    """Streamed in chunks of any size, keyed and then compared word by word: the same items as comparing every
    window of every text (and none across two texts)."""
    from postfit.analysis import contamination

    items = {f"i{k}": t for k, t in enumerate(item_texts)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(contamination, "_CHUNK", chunk)
        assert overlapping_items(texts, items, n) == _reference(texts, items, n)
    assert overlapping_items(["a b", "c"], {"x": "b c"}, 2) == []  # no n-gram spans two texts
