"""Data in the ecosystem's formats (postfit.data.formats): TRL's conversational and prompt-completion rows, a
problem/solution pair mapped in the study file, from local files, `save_to_disk` folders, hub-shaped folders and
hub ids; what becomes the final answer; the errors that name the column or the mapping to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postfit.config import parse_study
from postfit.data.formats import Columns, detect_columns
from postfit.data.sources import SOURCES, load_source
from postfit.errors import UserError
from postfit.item import FIELDS
from test_data import hub_snapshot  # noqa: F401 (a fixture: an offline hub cache holding a fixture dataset)

BOX = "Please reason step by step, and put your final answer within \\boxed{}."


def conversations(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"What is {i}+{i}?"},
                          {"role": "assistant", "content": f"{i}+{i}={2 * i}, so \\boxed{{{2 * i}}}."}]}
            for i in range(n)]  # fmt: skip


def prompt_completions(n: int, conversational: bool = True) -> list[dict]:
    if not conversational:  # TRL's standard (text) prompt-completion
        return [{"prompt": f"Double {i}.", "completion": f"The answer is \\boxed{{{2 * i}}}."} for i in range(n)]
    return [{"prompt": [{"role": "user", "content": f"Double {i}."}],
             "completion": [{"role": "assistant", "content": f"The answer is \\boxed{{{2 * i}}}."}]}
            for i in range(n)]  # fmt: skip


def problems(n: int) -> list[dict]:
    return [{"problem": f"Triple {i}.", "solution": f"3 x {i} = {3 * i}.", "final": str(3 * i)} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def test_conversational_rows_keep_the_conversation_and_box_the_answer(tmp_path):
    items = load_source(str(write_jsonl(tmp_path / "chat.jsonl", conversations(5))), skip=1, limit=3)
    assert [it.id for it in items] == ["chat.jsonl/1", "chat.jsonl/2", "chat.jsonl/3"]
    first = items[0]
    assert first.prompt == "What is 1+1?" and first.answer == "2" and first.domain == "math"
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant"]  # verbatim, system turn kept
    assert first.traces == [first.messages[-1]["content"]] and tuple(first.to_json()) == FIELDS


@pytest.mark.parametrize("conversational", [True, False])
def test_prompt_completion_parquet(tmp_path, conversational):
    items = load_source(str(write_parquet(tmp_path / "pc.parquet", prompt_completions(4, conversational))))
    assert [it.answer for it in items] == ["0", "2", "4", "6"]
    assert items[1].prompt == "Double 1." and items[1].messages == [
        {"role": "user", "content": "Double 1."},
        {"role": "assistant", "content": "The answer is \\boxed{2}."},
    ]


def test_problem_solution_needs_a_mapping_that_names_its_columns(tmp_path):
    path = str(write_jsonl(tmp_path / "ps.jsonl", problems(4)))
    with pytest.raises(UserError, match=r"ps.jsonl: no column in a format postfit reads \(columns: \['final', "
                       r"'problem', 'solution'\]\).*columns: \{question: problem"):  # fmt: skip
        load_source(path)
    items = load_source(path, columns=Columns(question="problem", reasoning="solution", answer="final"))
    assert items[2].prompt == f"Triple 2.\n\n{BOX}" and items[2].answer == "6" and items[2].traces == ["3 x 2 = 6."]
    assert items[2].messages[-1] == {"role": "assistant", "content": "3 x 2 = 6."}
    with pytest.raises(UserError, match=r"no column 'answer' \(columns: problem, solution, final\); fix `columns`"):
        load_source(path, columns=Columns(question="problem", answer="answer"))


def test_what_the_final_answer_is():
    from postfit.data.formats import columns_item

    def answer(row, **columns):
        return columns_item(Columns(**columns), row, source="s", index=0, split="train").answer

    # an answer column: its last \boxed{} (a full solution, as open-r1's `solution`), else its text; numbers as text
    assert answer({"q": "?", "a": "So $x = \\boxed{\\frac12}$."}, question="q", answer="a") == "\\frac12"
    assert answer({"q": "?", "a": " 42 "}, question="q", answer="a") == "42"
    assert answer({"q": "?", "a": 27.0}, question="q", answer="a") == "27"
    # no answer column: the last \boxed{} of the reasoning (or reply)
    assert answer({"q": "?", "r": "\\boxed{1} then \\boxed{2}"}, question="q", reasoning="r") == "2"
    # neither: an SFT conversation without an answer (RL leaves it out); a prompt alone cannot be an item
    assert answer({"q": "?", "r": "no box"}, question="q", reasoning="r") is None
    with pytest.raises(ValueError, match=r"no final answer and no reply: map the column that holds the answer "
                       r"\(`columns.answer`; columns: \['p'\]\)"):  # fmt: skip
        answer({"p": "Double 3."}, prompt="p")
    assert answer({"p": "Double 3.", "solution": "6"}, prompt="p", answer="solution") == "6"  # TRL prompt-only (RL)


def test_dataset_folders_saved_with_datasets(tmp_path):
    import datasets

    rows = prompt_completions(4)
    full = datasets.Dataset.from_list(rows)
    datasets.DatasetDict({"train": full, "test": full.select(range(2))}).save_to_disk(str(tmp_path / "saved"))
    assert [it.id for it in load_source(str(tmp_path / "saved"), split="test")] == ["saved/test/0", "saved/test/1"]
    assert len(load_source(str(tmp_path / "saved"), skip=1)) == 3
    with pytest.raises(UserError, match="no split 'validation' in this saved dataset \\(splits: train, test\\)"):
        load_source(str(tmp_path / "saved"), split="validation")
    # data files laid out as on the hub: `datasets.load_dataset(folder)`, its configs and splits
    write_parquet(tmp_path / "hubshaped" / "data" / "train-00000-of-00001.parquet", rows)
    write_parquet(tmp_path / "hubshaped" / "data" / "test-00000-of-00001.parquet", rows[:1])
    assert [it.answer for it in load_source(str(tmp_path / "hubshaped"))] == ["0", "2", "4", "6"]
    assert len(load_source(str(tmp_path / "hubshaped"), split="test")) == 1


def test_a_hub_id_is_read_with_load_dataset_and_its_format_found(hub_snapshot):  # noqa: F811
    hub_snapshot("AI-MO/NuminaMath-CoT")
    items = load_source("AI-MO/NuminaMath-CoT", limit=2)  # not the preset: its `messages` column, as TRL reads it
    assert [it.id for it in items] == ["AI-MO/NuminaMath-CoT/0", "AI-MO/NuminaMath-CoT/1"]
    assert items[0].prompt == "What is $\\frac{3}{4}$ of $48$?" and items[0].answer == "36"
    preset = load_source("numina-cot", limit=2)  # the preset: its column mapping, with postfit's math prompt
    assert preset[0].prompt.endswith(BOX) and preset[0].messages == items[0].messages
    mapped = load_source("AI-MO/NuminaMath-CoT", limit=2, columns=SOURCES["numina-cot"].columns)
    assert [it.to_json() for it in mapped] == [{**it.to_json(), "source": "AI-MO/NuminaMath-CoT",
                                                "id": it.id.replace("numina-cot", "AI-MO/NuminaMath-CoT")}
                                               for it in preset]  # fmt: skip
    with pytest.raises(UserError, match="does not hold it"):  # `subset` is datasets' configuration name
        load_source("AI-MO/NuminaMath-CoT", subset="no-such-config")


def test_presets_are_column_mappings_where_one_says_everything():
    assert SOURCES["openr1-math"].columns.question == "problem" and SOURCES["numina-cot"].columns.reasoning
    # the other three read what a mapping cannot say: '####' answers, a per-row domain, example tests
    assert {n for n, s in SOURCES.items() if s.columns is None} == {"gsm8k-train", "openthoughts", "codeforces-cots"}


def test_detect_columns():
    assert detect_columns(["messages", "answer"]) == Columns(messages="messages", answer="answer")
    assert detect_columns(["conversations", "system"]) == Columns(messages="conversations", system="system")
    assert detect_columns(["prompt", "completion"]) == Columns(prompt="prompt", completion="completion")
    assert detect_columns(["prompt", "solution"]) == Columns(prompt="prompt")
    assert detect_columns(list(FIELDS)) is None  # postfit items


def test_the_study_file_accepts_any_source_and_a_mapping(tmp_path):
    from postfit.config import load_study

    data = load_study("smoke")[0].model_dump(mode="json")
    ok = {"source": "open-r1/Mixture-of-Thoughts", "subset": "math", "columns": {"messages": "messages"}}
    assert parse_study({**data, "data": {"sft": ok}}, "s.yaml").data.sft.subset == "math"
    local = str(tmp_path / "ps.jsonl")
    assert parse_study({**data, "data": {"sft": {"source": local}}}, "s.yaml").data.sft.source == local
    with pytest.raises(UserError, match=r"data.sft.source: unknown data source 'openr1'; expected one of "
                       r"\['codeforces-cots'.*a hub dataset id \(org/name\)"):  # fmt: skip
        parse_study({**data, "data": {"sft": {"source": "openr1"}}}, "s.yaml")
    with pytest.raises(UserError, match=r"data.sft.columns.qestion: unknown key"):
        parse_study({**data, "data": {"sft": {"source": local, "columns": {"qestion": "problem"}}}}, "s.yaml")


def test_rl_rows_without_an_answer_name_the_mapping_to_set(tmp_path):
    from postfit.config import load_study
    from postfit.study.data import real_splits

    data = load_study("smoke")[0].model_dump(mode="json")
    path = str(write_jsonl(tmp_path / "ps.jsonl", problems(3)))
    data["data"] = {"rl": {"source": path, "columns": {"question": "problem", "reasoning": "solution"}}}
    with pytest.raises(UserError, match=r"data.rl.source: none of the 3 items .* has a final answer or tests.*"
                       r"\(data.rl.columns.answer\)"):  # fmt: skip
        real_splits(parse_study(data, "s.yaml"))
    data["data"]["rl"]["columns"]["answer"] = "final"
    assert [it.answer for it in real_splits(parse_study(data, "s.yaml"))["rl"]] == ["0", "3", "6"]
    data["data"] = {"sft": {"source": path, "columns": {"question": "problem", "answer": "nope"}}}
    with pytest.raises(UserError, match=r"^data.sft: .*ps.jsonl: no column 'nope'"):
        real_splits(parse_study(data, "s.yaml"))
    data["data"] = {"sft": {"source": path, "subset": "main"}}
    with pytest.raises(UserError, match="`subset` names a configuration of a hub dataset or dataset folder"):
        real_splits(parse_study(data, "s.yaml"))


@pytest.mark.slow
def test_each_format_trains_sft_in_a_tiny_study(tmp_path):
    """A conversational jsonl, a prompt-completion parquet and a problem/solution jsonl mapped by `columns`, each the
    `data.sft` of a nano study (random init, 30 SFT steps, rg:chain_sum evaluation): the items land in data/, every
    conversation is kept for SFT and the loss falls."""
    from postfit.io import read_json, read_jsonl
    from postfit.study.runner import run_study

    n = 16
    sources = {
        "chat": {"source": str(write_jsonl(tmp_path / "chat.jsonl", conversations(n)))},
        "pc": {"source": str(write_parquet(tmp_path / "pc.parquet", prompt_completions(n)))},
        "ps": {"source": str(write_jsonl(tmp_path / "ps.jsonl", problems(n))),
               "columns": {"question": "problem", "reasoning": "solution", "answer": "final"}},
    }  # fmt: skip
    base = {
        "model": {"preset": "nano"},
        "pretrain": {"corpus": "stdlib", "tokens": 20000, "seq_len": 128, "batch_size": 16, "tokenizer_chars": 200000},
        "grid": {"inits": ["random"], "recipes": ["sft"], "seeds": [0]},
        "sft": {"steps": 30, "batch_size": 8, "learning_rate": 0.005, "max_length": 96, "logging_steps": 5},
        "eval": {"benchmarks": ["rg:chain_sum"], "benchmark_limit": 4, "batch_size": 4, "max_new_tokens": 8,
                 "samples": 0, "k": []},
        "report": {"bootstrap": 100},
    }  # fmt: skip
    for name, block in sources.items():
        out = tmp_path / name
        run_study(parse_study({**base, "name": name, "data": {"sft": block}}, f"{name}.yaml"), out)
        train = read_jsonl(out / "data" / "train.jsonl")
        assert len(train) == n and train[3]["id"] == f"{Path(block['source']).name}/3"
        assert {"chat": "6", "pc": "6", "ps": "9"}[name] == train[3]["answer"]
        counts = read_json(out / "runs" / "random-sft-s0" / "train.json")["sft_data"]
        assert counts["kept"] == n and counts["dropped"] == 0, (name, counts)
        losses = [r["loss"] for r in read_jsonl(out / "runs" / "random-sft-s0" / "train_log.jsonl") if "loss" in r]
        assert losses[-1] < losses[0], (name, losses)


def test_skip_past_the_end_reads_nothing(tmp_path):
    assert load_source(str(write_jsonl(tmp_path / "chat.jsonl", conversations(3))), skip=5) == []
