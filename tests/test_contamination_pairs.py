"""Contamination per (training source, evaluation split) pair: planted overlaps found in their own pair, none on
disjoint data, n configurable, and `contamination.drop` leaves the overlapping items out and records their ids."""

from __future__ import annotations

from dataclasses import replace

from postfit.analysis.contamination import drop_items, exact_pairs, ngram_pairs, study_contamination
from postfit.config import load_study
from postfit.item import Item
from postfit.tasks import make_splits


def _q(id: str, question: str) -> Item:
    """An item with just what the contamination checks read."""
    return Item(id=id, source="t", domain="math", prompt=question, split="test", answer="1", question=question)


EVALS = {
    "id_test": [_q("id_test/a", "what is the sum of the first ten prime numbers when each of them is squared and then "
                   "halved ?"),
                _q("id_test/b", "Calculate 5 - 3.")],
    "bench": [_q("bench/c", "a train leaves the station at noon travelling at sixty miles per hour towards a city two "
                 "hundred miles away")],
}  # fmt: skip


def _hits(pairs: list[dict]) -> dict[tuple[str, str], list[str]]:
    return {(p["source"], p["split"]): p["items"] for p in pairs}


def test_planted_ngram_overlap_is_found_in_its_own_pair_only():
    clean = ["def f(x):\n    return x + 1\n", "The station clock was broken."]
    assert all(p["overlapping"] == 0 for p in ngram_pairs("corpus", clean, EVALS))
    planted = [*clean, "Forum post: A train leaves the station at noon travelling at sixty miles per hour towards "
               "a city, asked someone."]  # fmt: skip
    hits = _hits(ngram_pairs("corpus", planted, EVALS))
    assert hits == {("corpus", "id_test"): [], ("corpus", "bench"): ["bench/c"]}
    totals = {p["split"]: p["total"] for p in ngram_pairs("corpus", planted, EVALS)}
    assert totals == {"id_test": 2, "bench": 1}


def test_n_is_configurable():
    # 6 shared words: an overlap at n=5, not at the default 13.
    source = ["the first ten prime numbers when squared"]
    assert _hits(ngram_pairs("s", source, EVALS))[("s", "id_test")] == []
    assert _hits(ngram_pairs("s", source, EVALS, n=5))[("s", "id_test")] == ["id_test/a"]
    assert ngram_pairs("s", source, EVALS, n=5)[0]["check"] == "word 5-gram"


def test_exact_question_pairs():
    train = [_q("train/x", "calculate   5 - 3.")]  # same question up to case and spaces
    assert _hits(exact_pairs("train", train, EVALS)) == {("train", "id_test"): ["id_test/b"], ("train", "bench"): []}
    assert all(p["overlapping"] == 0 for p in exact_pairs("train", [_q("train/y", "Calculate 5 - 4.")], EVALS))


def test_drop_records_and_removes_the_overlapping_items():
    study = load_study("smoke")[0]
    study = study.model_copy(update={"contamination": study.contamination.model_copy(update={"drop": True})})
    splits = make_splits(study.tasks)
    clean = study_contamination(study, splits)
    assert clean["drop"] is True and clean["dropped"] == {} and clean["n"] == 13
    assert {p["source"] for p in clean["pairs"]} == {"train", "rl", "pretrain corpus"}
    leak = replace(splits["train"][0], id="id_test/leak")
    leaked = {**splits, "id_test": [*splits["id_test"], leak]}
    report = study_contamination(study, leaked)
    assert report["dropped"] == {"id_test": ["id_test/leak"]}
    kept = drop_items(leaked, report)
    assert [it.id for it in kept["id_test"]] == [it.id for it in splits["id_test"]]
    assert kept["train"] == leaked["train"]  # training data is never dropped
    # Without `drop` the overlap is reported but nothing is left out.
    report = study_contamination(load_study("smoke")[0], leaked)
    assert report["dropped"] == {} and drop_items(leaked, report)["id_test"] == leaked["id_test"]
