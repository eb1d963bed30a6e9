"""Each evaluated item's distance to the post-training data (postfit.analysis.distance): text and structure, stored
once per study and carried by every evaluation sample."""

from __future__ import annotations

from dataclasses import replace

import pytest

from postfit.analysis.distance import (
    annotate,
    item_text,
    jaccard_distances,
    reference_of,
    reference_sets,
    structure_distances,
    study_distances,
    token_grams,
    word_grams,
)
from postfit.config import load_study
from postfit.config.grid import grid_runs
from postfit.item import TASKS, Item, make_item
from postfit.tasks import chain_terms, make_splits, structure_terms


def text_distances(items: list[Item], train: list[Item]) -> list[float]:
    """The word distance of each item to the training items, as study_distances computes it."""
    return jaccard_distances(word_grams([item_text(it) for it in items]), word_grams([item_text(it) for it in train]))


def _chain(expression: str, split: str = "id_test", frame: str = "Solve: {q} =") -> Item:
    return Item(id=f"{split}/{expression}", source=TASKS, domain="procedural", prompt=frame.format(q=expression),
                split=split, answer=str(eval(expression)), question=expression,
                meta={"task": "chain_sum", "config": "{}", "metadata": {"expression": expression}})  # fmt: skip


@pytest.fixture(scope="module")
def default_splits():
    study = load_study("default")[0]
    return study, make_splits(study.tasks)


@pytest.fixture(scope="module")
def tokenizer(default_splits):
    """postfit's own byte-level BPE (single-digit tokens), trained on the default study's training text."""
    from postfit.train.pretrain import train_tokenizer

    _, splits = default_splits
    return train_tokenizer("\n".join(it.prompt for it in splits["train"]), 300)


def test_a_copied_training_item_is_at_distance_0(default_splits):
    _, splits = default_splits
    train = splits["train"]
    copied = replace(train[5], id="id_test/copy", split="id_test")
    text = text_distances([copied, *splits["id_test"][:20]], train)
    structure = structure_distances([copied], train, structure_terms)
    assert text[0] == 0.0 and structure == [0]
    assert all(0.0 <= d <= 1.0 for d in text) and any(d > 0 for d in text[1:])


def test_structure_grows_by_one_per_changed_operand():
    train = [_chain("4 + 1 - 3")]
    items = [_chain("4 + 1 - 3"), _chain("4 + 2 - 3"), _chain("5 + 2 - 3"), _chain("5 + 2 + 7"),
             _chain("4 + 1"), _chain("4 + 1 - 3 + 8"), _chain("4 + 1 - 3", frame="Compute {q}, please")]  # fmt: skip
    assert structure_distances(items, train, chain_terms) == [0, 1, 2, 3, 1, 1, None]
    assert chain_terms(_chain("12 + 7 - 4")) == ("12", "+7", "-4")


def test_text_distance_orders_the_default_studys_splits(default_splits):
    """Near the training data the distance is small; a changed prompt, another task family or a rule shift
    moves items further away; the reference set of a run follows its recipe."""
    study, splits = default_splits
    assert set(reference_sets(study)) == {"train", "train+rl"}
    assert {reference_of(r) for r in grid_runs(study)} == {"train", "train+rl"}
    table = study_distances(study, splits)
    assert table["n"] == 3 and set(table["sets"]) == {"train", "train+rl"}
    assert {v[2] for d in table["sets"]["train"].values() for v in d.values()} == {None}  # no tokenizer given
    mean = {s: sum(v[0] for v in d.values()) / len(d) for s, d in table["sets"]["train"].items()}
    assert mean["id_test"] < mean["ood_near"] < mean["ood_rule"] and mean["ood_near"] < mean["ood_family"]
    near = {v[1] for v in table["sets"]["train"]["ood_near"].values()}
    assert {1, 2, 3} <= near, "ood_near spans structural distances"
    assert {v[1] for v in table["sets"]["train"]["ood_format"].values()} == {None}  # another frame
    assert set(table["sets"]["train"]) == {"id_test", "ood_near", "ood_harder", "ood_family", "ood_format", "ood_rule"}


def test_token_distance_sees_what_the_model_reads(default_splits, tokenizer):
    """On token 4-grams (single-digit tokens), one changed digit is nearer than a wholly changed number, which the
    word distance cannot tell apart (one changed word each); a copy is at 0 on both."""
    train = ["What is 123 + 45 + 6?"]
    items = ["What is 123 + 45 + 6?", "What is 124 + 45 + 6?", "What is 987 + 45 + 6?"]
    word = jaccard_distances(word_grams(items), word_grams(train))
    token = jaccard_distances(token_grams(items, tokenizer), token_grams(train, tokenizer))
    assert word[0] == token[0] == 0.0 and word[1] == word[2] > 0
    assert 0 < token[1] < token[2] <= 1


def test_study_token_distances_follow_the_splits(default_splits, tokenizer):
    study, splits = default_splits
    table = study_distances(study, splits, tokenizer)
    assert table["token_n"] == 4
    rows = table["sets"]["train"]
    assert all(0.0 <= v[2] <= 1.0 for d in rows.values() for v in d.values())
    mean = {s: sum(v[2] for v in d.values()) / len(d) for s, d in rows.items()}
    assert mean["id_test"] < mean["ood_near"] < mean["ood_family"] and mean["id_test"] < mean["ood_rule"]
    copied = replace(splits["train"][5], id="id_test/copy", split="id_test")
    table = study_distances(study, {**splits, "id_test": [copied]}, tokenizer)
    assert table["sets"]["train"]["id_test"]["id_test/copy"] == [0.0, 0, 0.0]


def test_samples_carry_their_runs_distances():
    table = {"n": 3, "sets": {"train": {"id_test": {"a": [0.25, 2, 0.3]}},
                              "train+rl": {"id_test": {"a": [0.1, 1, 0.2]}}}}  # fmt: skip
    rows = [{"split": "id_test", "item": "a", "sample": -1}, {"split": "math500", "item": "b", "sample": -1}]
    unknown = {"distance": None, "structure": None, "token_distance": None}
    assert annotate(rows, table, "train+rl") == [
        {**rows[0], "distance": 0.1, "structure": 1, "token_distance": 0.2},
        {**rows[1], **unknown},
    ]
    assert annotate(rows, {}, "") == [{**row, **unknown} for row in rows]  # `postfit eval`: no known SFT data
    before = {"n": 3, "sets": {"train": {"id_test": {"a": [0.25, 2]}}}}  # stored before token distances
    assert annotate(rows[:1], before, "train") == [{**rows[0], "distance": 0.25, "structure": 2,
                                                    "token_distance": None}]  # fmt: skip


def test_real_benchmark_items_get_a_text_distance_to_the_sft_corpus():
    """Real data has no structure, but every benchmark item is measured against the SFT items' text (prompt and
    answer): an item that repeats a training problem is at 0, an unrelated one near 1."""
    sft = [make_item(id=str(i), source="openr1-math", domain="math", prompt=p, split="train", answer=a)
           for i, (p, a) in enumerate([("Find x if 2x + 3 = 7.", "2"), ("What is the sum of the first 10 positive "
                                       "integers?", "55")])]  # fmt: skip
    bench = [make_item(id="m/0", source="math500", domain="math", prompt="Find x if 2x + 3 = 7.", split="math500",
                       answer="2"),
             make_item(id="m/1", source="math500", domain="math", prompt="What is the sum of the first 20 positive "
                       "integers?", split="math500", answer="210"),
             make_item(id="m/2", source="math500", domain="math", prompt="Compute the determinant of the matrix "
                       "[[1, 2], [3, 4]].", split="math500", answer="-2")]  # fmt: skip
    text = text_distances(bench, sft)
    assert text[0] == 0.0 and 0.0 < text[1] < text[2] and text[2] > 0.8
    assert structure_distances(bench, sft, structure_terms) == [None, None, None]


@pytest.mark.slow
def test_a_studys_samples_carry_distances(smoke_dir):
    """`postfit run` stores the distances with the data and every evaluated sample carries its run's."""
    from postfit.io import read_json, read_jsonl
    from postfit.layout import StudyDir

    study = StudyDir(smoke_dir)
    table = read_json(study.distance)
    for run in study.run_dirs():
        rows = [r for r in read_jsonl(run.samples) if not r["split"].startswith(("adapt:", "icl:"))]
        assert rows and all(0.0 <= r["distance"] <= 1.0 for r in rows)
        meta = read_json(run.run_json)
        reference = "train" if meta["recipe"] in ("none", "sft") else "train+rl"
        assert all(0.0 <= r["token_distance"] <= 1.0 for r in rows)
        for r in rows[:20]:
            stored = table["sets"][reference][r["split"]][r["item"]]
            assert [r["distance"], r["structure"], r["token_distance"]] == stored


def test_a_study_stored_before_token_distances_gets_them_on_resume(default_splits, tokenizer, tmp_path):
    """A study directory whose data/distance.json predates token distances is not ready: preparing it again
    measures them in the study's tokenizer (the one under base/architecture) and stores them."""
    from postfit.io import atomic_write_json, read_json
    from postfit.layout import StudyDir
    from postfit.study.prepare import distances_ready, ensure_distances

    study, splits = default_splits
    layout = StudyDir(tmp_path)
    tokenizer.save_pretrained(layout.base.architecture)
    old = study_distances(study, splits)
    old.pop("token_n")
    atomic_write_json(layout.distance, old)
    assert not distances_ready(layout)
    ensure_distances(study, layout, splits)
    assert distances_ready(layout)
    assert read_json(layout.distance) == study_distances(study, splits, tokenizer)
