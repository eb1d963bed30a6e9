"""A study's real data: `data.sft` / `data.rl` items and one evaluation split per `eval.benchmarks` name.

The items (postfit.item) take the runner's split names: SFT items become the `train` split and RL prompts the
`rl` split, replacing the procedural ones, so every later stage (grid.posttrain_examples, contamination checks,
the trainers) reads them the way it reads tasks. Each item also gets `question`, the text the contamination
checks compare (a procedural benchmark's question, else the prompt), as procedural items have.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from postfit.config import SPLITS, Study
from postfit.errors import UserError
from postfit.item import Item

log = logging.getLogger(__name__)


def _with_question(items: list[Item]) -> list[Item]:
    return [replace(it, question=it.meta.get("question") or it.prompt) for it in items]


def _unique(items: list[Item], key: str) -> list[Item]:
    """The items without repeats of a question (whitespace and case normalised), the first of each kept."""
    from postfit.tasks import normalise_question

    seen, out = set(), []
    for it in items:
        q = normalise_question(it.question)
        if q not in seen:
            seen.add(q)
            out.append(it)
    if len(out) < len(items):
        log.info("%s: %d items repeat an earlier question and are left out", key, len(items) - len(out))
    return out


def _load(block, key: str) -> list[Item]:
    """The items of a `data.sft` / `data.rl` block; a data error names the block."""
    from postfit.data.sources import load_source

    try:
        return load_source(block.source, split=block.split, limit=block.limit, skip=block.skip, subset=block.subset,
                           columns=block.columns)  # fmt: skip
    except UserError as e:
        raise UserError(f"{key}: {e}") from None


def real_splits(study: Study) -> dict[str, list[Item]]:
    """{"train": SFT items, "rl": verifiable RL prompts, <benchmark>: its items}, for the blocks that are set."""
    from postfit.data.benchmarks import load_benchmark

    out: dict[str, list[Item]] = {}
    if (sft := study.data.sft) is not None:
        out["train"] = _unique(_with_question(_load(sft, "data.sft")), "data.sft")
        if not out["train"]:
            raise UserError(f"data.sft.source: {sft.source!r} gave no items (skip {sft.skip}, limit {sft.limit}); "
                            "expected at least one")  # fmt: skip
    if (rl := study.data.rl) is not None:
        items = _load(rl, "data.rl")
        # Conversations without a reference answer or tests train SFT but give GRPO no reward to compute.
        usable = [it for it in items if it.answer is not None or it.tests is not None]
        if not usable:
            raise UserError(f"data.rl.source: none of the {len(items)} items of {rl.source!r} has a final answer or "
                            "tests, so no reward can be computed; map the column that holds the answer "
                            "(data.rl.columns.answer), or rows whose reply ends in a \\boxed{} answer")  # fmt: skip
        log.info("data.rl: %d of %d items of %s have a reference answer or tests", len(usable), len(items), rl.source)
        out["rl"] = _unique(_with_question(usable), "data.rl")
    for name in study.eval.benchmarks:
        out[name] = _with_question(load_benchmark(name, limit=study.eval.benchmark_limit,
                                                  protocol=study.eval.protocol))  # fmt: skip
    return out


def eval_split_names(study: Study, splits: dict[str, list[Item]]) -> list[str]:
    """The splits every run is evaluated on: the procedural ones present, then the benchmarks in study order."""
    return [s for s in SPLITS if s in splits] + list(study.eval.benchmarks)


def heldout_split(study: Study) -> str:
    """Where RL's held-out curve comes from: id_test, or without tasks the first benchmark."""
    return "id_test" if study.tasks is not None else study.eval.benchmarks[0]
