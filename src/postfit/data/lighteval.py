"""The lighteval protocol's benchmarks (`eval.protocol: lighteval`, `postfit eval --protocol lighteval`): the
benchmarks open-r1 reports, prompted and sampled as its lighteval tasks are, so scores compare with published ones.

open-r1 evaluates with lighteval pinned at commit d3da6b9bbf38104c8b5e1acc86f83541f9a502d1 (open-r1's setup.py)
and these settings (its README, "Evaluating models"): `lighteval vllm "model_name=$MODEL,...,generation_parameters=
{max_new_tokens:32768,temperature:0.6,top_p:0.95}" "lighteval|$TASK|0|0" --use-chat-template`. At that commit
(src/lighteval/tasks/default_tasks.py) each task samples n completions per item and reports pass@1 as their mean
correctness: `math_500` with n up to 4 (`math_pass_at_1_4n`), `aime24` and `aime25` up to 64
(`math_pass_at_1_64n`). Prompts: src/lighteval/tasks/default_prompts.py, `math_500` and `aime_prompt_fn` (one
template, MATH_TEMPLATE below). The gold each is scored against: MATH-500's whole `solution` (its \\boxed{} answer is
extracted from it), AIME's `answer`. How answers are extracted and compared: postfit.verify.lighteval.

GPQA Diamond (`gpqa:diamond`) is the third benchmark open-r1 reports; postfit has no GPQA loader (a gated
dataset, multiple-choice letters rather than math), so it is not offered here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from postfit.item import Item

LIGHTEVAL = "lighteval"
POSTFIT = "postfit"
PROTOCOLS = (POSTFIT, LIGHTEVAL)

# lighteval@d3da6b9 src/lighteval/tasks/default_prompts.py, `math_500` and `aime_prompt_fn` (the same text; the two
# spaces after "clearly." are lighteval's). lighteval fills it with str.format, so {{ANSWER}} reads {ANSWER}.
MATH_TEMPLATE = """
Solve the following math problem efficiently and clearly.  The last line of your response should be of the following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step before answering.

{Question}
""".strip()  # noqa: E501

# open-r1's generation settings (README, MODEL_ARGS' generation_parameters)
OPEN_R1 = {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32768}


@dataclass(frozen=True)
class LightevalTask:
    """One of lighteval's tasks as open-r1 runs it: its name (`lighteval|NAME|0|0`), the largest n its metrics
    sample, the row column lighteval scores against, and the task's `version` in lighteval."""

    name: str
    n: int
    gold: str
    version: int


# postfit benchmark name -> lighteval@d3da6b9's task (default_tasks.py: math_500, aime24, aime25; all version 2)
TASKS = {
    "math500": LightevalTask("math_500", 4, "solution", 2),
    "aime24": LightevalTask("aime24", 64, "answer", 2),
    "aime25": LightevalTask("aime25", 64, "answer", 2),
}


def math_prompt(problem: str) -> str:
    return MATH_TEMPLATE.format(Question=problem)


def protocol_of(item: Item) -> str:
    """The protocol an item is prompted and scored under (what every sample row records)."""
    return item.meta.get("protocol", POSTFIT)


def check_lighteval(name: str) -> str:
    """`name` when the lighteval protocol covers it, else ValueError listing the benchmarks it covers."""
    if name not in TASKS:
        raise ValueError(f"benchmark {name!r} has no lighteval task; the lighteval protocol covers "
                         f"{', '.join(TASKS)} (open-r1's math benchmarks)")  # fmt: skip
    return name


def as_lighteval(item: Item, row: dict, name: str) -> Item:
    """The benchmark item prompted as lighteval's task prompts it, carrying the gold text lighteval scores against
    (`meta["gold"]`) and its protocol (`meta["protocol"]`, which postfit.verify dispatches on); id, answer and the
    rest stay, so items pair with the same benchmark under postfit's protocol."""
    task = TASKS[name]
    gold = item.answer if task.gold == "answer" else str(row[task.gold])  # AIME's answer as loaded (27.0 -> 27)
    return replace(item, prompt=math_prompt(row["problem"]), meta={**item.meta, "protocol": LIGHTEVAL, "gold": gold})
