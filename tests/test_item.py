"""One item type: study directories written before it load into Items and write back byte for byte, items cross
to `datasets` and back, and the verifier picks its judge by the item's domain alone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from postfit.config import load_study
from postfit.config.scaling import ProbesConfig
from postfit.io import jsonl_text, read_json
from postfit.item import TASKS, Item, make_item
from postfit.layout import StudyDir
from postfit.probes import ensure_probe_data
from postfit.study.prepare import ensure_data
from postfit.verify import score

# data/ of a study directory as postfit wrote it when items were dicts: the default study's procedural items
# (flat: task, config, metadata beside the fields), a local source's RL item and an rg: benchmark's item (the schema's
# fields, with the `question` the study adds), the probes' items.
OLD = StudyDir(Path(__file__).parent / "fixtures" / "study_before_item")


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Item]]:
    return ensure_data(load_study("default")[0], OLD)  # the manifest exists: read, nothing made


def test_an_old_study_directory_loads_into_items_and_writes_back_byte_for_byte(splits):
    assert list(splits) == ["id_test", "ood_rule", "train", "rl", "rg:chain_sum"]
    for split, items in splits.items():
        assert all(isinstance(it, Item) for it in items)
        assert jsonl_text(it.to_json() for it in items) == OLD.split(split).read_text(), split
    train, rule, rl, bench = splits["train"][0], splits["ood_rule"][0], splits["rl"][0], splits["rg:chain_sum"][0]
    assert (train.source, train.domain, train.meta["task"]) == (TASKS, "procedural", "chain_sum")
    assert train.target.endswith(f"Answer: {train.answer}") and splits["id_test"][0].target is None
    assert rule.meta["rule_shift"] == "swap" and rule.meta["original_answer"] != rule.answer
    assert (rl.source, rl.domain, rl.question) == ("local-sums", "math", rl.prompt)
    assert (bench.domain, bench.question) == ("procedural", bench.meta["question"])
    for items in splits.values():  # every reference answer verifies, read from either layout
        assert all(score(it, f"Answer: {it.answer}")[1] == 1.0 for it in items)


def test_old_probe_items_load_into_items_and_write_back():
    data = ensure_probe_data(ProbesConfig(), OLD.root)  # probes.json exists: read, nothing made
    raw = read_json(OLD.data / "probes.json")
    for part in ("queries", "pool"):
        assert [it.to_json() for it in data["icl"]["gcd"][part]] == raw["icl"]["gcd"][part]
    for part in ("train", "test"):
        assert [it.to_json() for it in data["adapt"][part]] == raw["adapt"][part]
    assert data["adapt"]["train"][0].target == f"Answer: {data['adapt']['train'][0].answer}"


def test_items_cross_to_datasets_and_back(splits):
    """GRPO's reward functions get the item as a JSON column; SFT conversations, traces and targets stay behind."""
    from postfit.train.rl import rl_dataset

    items = [splits["train"][0], splits["rl"][0], splits["rg:chain_sum"][0]]
    column = rl_dataset(items)["item"]
    assert [Item.from_json(json.loads(c)) for c in column] == [
        replace(it, messages=[], traces=[], target=None) for it in items
    ]


def test_make_item_keeps_its_checks_and_its_json_layout():
    item = make_item(id=7, source="s", domain="math", prompt="1+1?", split="test", answer=2)
    assert list(item.to_json()) == ["id", "source", "domain", "prompt", "messages", "answer", "tests", "traces",
                                    "difficulty", "split", "meta"]  # fmt: skip
    assert (item.id, item.answer) == ("7", "2") and Item.from_json(item.to_json()) == item
    with pytest.raises(ValueError, match="s/x: math items need a reference answer"):
        make_item(id="x", source="s", domain="math", prompt="p", split="test", answer=" ")


def test_the_verifier_dispatches_on_domain_only(splits):
    """The same item and completion: reasoning-gym judges it as a procedural item, math-verify as a math item, though
    both carry a reasoning-gym task in `meta`; an unknown domain is an error, whatever the item's keys."""
    procedural = splits["id_test"][0]
    as_math = replace(procedural, source="t", domain="math")
    fraction = f"Answer: \\frac{{{2 * int(procedural.answer)}}}{{2}}"
    assert score(procedural, fraction)[1] == 0.0 and score(as_math, fraction)[1] == 1.0
    assert score(procedural, f"Answer: {procedural.answer}")[1] == score(as_math, f"Answer: {procedural.answer}")[1]
    with pytest.raises(ValueError, match="unknown domain 'poetry'"):
        score(replace(procedural, domain="poetry"), f"Answer: {procedural.answer}")
