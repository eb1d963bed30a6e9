"""Code verification: each test style passes a right program and fails wrong, crashing, timing-out and hostile ones."""

from __future__ import annotations

import pytest

from postfit.item import Item
from postfit.sandbox import allow_weak, missing_layers
from postfit.verify import score, score_batch
from postfit.verify.code import score_batch as code_batch
from postfit.verify.extract import code_block, program, truncate_continuation

# Hostile programs need the full layer set; without it (no bubblewrap) only our own programs run, opted in.
FULL = not missing_layers()
KINDS = ["right", "wrong", "crashing", "timing-out"] + (["hostile"] if FULL else [])


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\nIt runs in linear time."


def code_item(id: str, tests: dict | None, meta: dict | None = None) -> Item:
    return Item(id=id, source="t", domain="code", prompt="", split="test", tests=tests, meta=meta or {})


ASSERT = code_item("add", {"style": "assert", "entry_point": "add",
                           "code": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"})  # fmt: skip
HUMANEVAL_STYLE = code_item(
    "he", {"style": "assert", "entry_point": "double",
           "code": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-3) == -6\n"},
    meta={"code_prefix": 'def double(x):\n    """Twice x."""\n'},
)  # fmt: skip
STDIO = code_item("sum", {"style": "stdio", "cases": [{"input": "1 2\n", "output": "3\n"},
                                                      {"input": "10 -4\n", "output": "6"}]})  # fmt: skip
FUNCTIONAL = code_item("two", {"style": "functional", "entry_point": "twoSum",
                               "cases": [{"input": "[2,7,11,15]\n9", "output": "[0, 1]"},
                                         {"input": "[3,2,4]\n6", "output": "[1, 2]"}]})  # fmt: skip

RIGHT = {
    "add": fence("def add(a, b):\n    return a + b"),
    "he": "    return 2 * x\n\n\nprint(double(2))\n",  # a raw continuation, cut before the trailing print
    "sum": fence("a, b = map(int, input().split())\nprint(a + b)"),
    # LeetCode-style class, typing names from LiveCodeBench's header, a tuple where the tests say list
    "two": fence(
        "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        seen = {}\n"
        "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return (seen[target - x], i)\n            seen[x] = i"
    ),
}
WRONG = {
    "add": fence("def add(a, b):\n    return a - b"),
    "he": "    return x + 2\n",
    "sum": fence("a, b = map(int, input().split())\nprint(a * b)"),
    "two": fence("class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]"),  # passes case 0 only
}
CRASHING = {
    "add": fence("def add(a, b):\n    return a + c"),
    "he": "    return 1 / 0\n",
    "sum": fence("a, b = map(int, input().split())\nraise SystemExit(3)"),
    "two": fence("class Solution:\n    def twoSum(self, nums, target):\n        return nums[100]"),
}
TIMING_OUT = {
    "add": fence("def add(a, b):\n    while True:\n        pass"),
    "he": "    while True:\n        x += 1\n",
    "sum": fence("while True:\n    pass"),
    "two": fence("class Solution:\n    def twoSum(self, nums, target):\n        while True:\n            pass"),
}
HOSTILE = {
    # exits "successfully" before any test runs
    "add": fence("import sys\nsys.exit(0)\ndef add(a, b):\n    return 0"),
    # ends its own process with status 0 from inside the call
    "he": "    import os\n    os._exit(0)\n",
    # prints nothing, tries to kill whatever started it, then exits 0
    "sum": fence("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept Exception:\n    pass"),
    # an answer that claims to equal anything
    "two": fence(
        "class Yes(list):\n    def __eq__(self, other):\n        return True\n"
        "class Solution:\n    def twoSum(self, nums, target):\n        return Yes()"
    ),
}
ITEMS = {it.id: it for it in (ASSERT, HUMANEVAL_STYLE, STDIO, FUNCTIONAL)}


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str], float]:
    """Every (kind of program, item) scored in one parallel batch, with a 1 s limit per test."""
    kinds = {"right": RIGHT, "wrong": WRONG, "crashing": CRASHING, "timing-out": TIMING_OUT, "hostile": HOSTILE}
    keys = [(kind, iid) for kind in KINDS for iid in ITEMS]
    allow_weak(not FULL)
    try:
        results = code_batch([ITEMS[i] for _, i in keys], [kinds[k][i] for k, i in keys], timeout=1.0)
    finally:
        allow_weak(False)
    return {key: value for key, (_, value) in zip(keys, results, strict=True)}


@pytest.mark.parametrize("iid", list(ITEMS))
@pytest.mark.parametrize("kind", ["right", "wrong", "crashing", "timing-out", "hostile"])
def test_each_style(verdicts, kind, iid):
    if kind not in KINDS:
        pytest.skip("hostile programs need the sandbox's full layer set (bubblewrap; CI installs it)")
    assert verdicts[(kind, iid)] == (1.0 if kind == "right" else 0.0)


def test_score_entry_point_and_batch_agree(benign):
    """verify.score (one item, the path GRPO's reward takes) and verify.score_batch give the same results."""
    items = [ASSERT, STDIO, Item(id="m", source="t", domain="math", prompt="", split="test", answer="4")]
    completions = [RIGHT["add"], WRONG["sum"], "\\boxed{4}"]
    assert [score(it, c)[1] for it, c in zip(items, completions, strict=True)] == [1.0, 0.0, 1.0]
    batch = score_batch(items, completions)
    assert [v for _, v in batch] == [1.0, 0.0, 1.0]
    assert batch[0][0] == "def add(a, b):\n    return a + b\n"  # the program that ran is the answer


def test_memory_limit_per_test(benign):
    hog = fence("x = bytearray(4 << 30)\na, b = map(int, input().split())\nprint(a + b)")
    assert code_batch([STDIO], [hog], memory_mb=512)[0][1] == 0.0


def test_item_without_tests_is_an_error():
    with pytest.raises(ValueError, match="cannot be verified"):
        score(code_item("x", None), RIGHT["add"])


@pytest.mark.parametrize(
    ("completion", "block"),
    [
        ("```python\na = 1\n```\ntext\n```python\nb = 2\n```", "b = 2\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\ny = 1\n```", "y = 1\n"),
        ("```cpp\nint main() {}\n```", None),
        ("no code at all", None),
        ("```python\nunclosed = 1\n", None),
    ],
)
def test_code_block(completion, block):
    assert code_block(completion) == block


def test_program_assembly():
    prefix = 'def f(x):\n    """Doc."""\n'
    assert truncate_continuation("    return x\n\ndef g():\n    pass\n") == "    return x\n"
    assert program("    return x\nif True:\n    print(1)\n", prefix) == prefix + "    return x"
    # a full definition in a block redefines the prefix's stub
    assert program(fence("def f(x):\n    return x"), prefix) == prefix + "\ndef f(x):\n    return x\n"
    # a prefix that is a bare `def ...:` line gets a body, so the redefinition still compiles
    stub = "def f(x):\n    pass\n\ndef f(x):\n    return x\n"
    assert program(fence("def f(x):\n    return x"), "def f(x):\n") == stub
    assert program("print(1)", None) == "print(1)"
