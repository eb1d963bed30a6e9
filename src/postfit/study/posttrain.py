"""Post-training one run by its recipe (config/recipes.py): the run whose model it continues is trained first,
once, under that run's lock, and reused; then the recipe's own trainer runs in this run's directory.

train.json is written after the final model, so its presence means "trained": a run interrupted during
evaluation reloads its model, and a run that continues another reuses that run's model instead of training it
again (the worker that trains a run's `base` holds the base's lock while it does).
"""

from __future__ import annotations

import logging

from postfit.config import Study
from postfit.config.grid import Run
from postfit.config.recipes import RECIPES, RL, SFT
from postfit.distributed import barrier, is_main
from postfit.io import atomic_write_json, read_json
from postfit.item import Item
from postfit.layout import RunDir, StudyDir
from postfit.study.integrity import sweep
from postfit.study.locks import claim
from postfit.train.tracking import tracking

log = logging.getLogger(__name__)


def _sft(study: Study, run: Run, model, tokenizer, splits: dict[str, list[Item]], d: RunDir) -> dict:
    from postfit.train.sft import train_sft

    return train_sft(model, tokenizer, splits["train"], study.sft, d.path, run.seed, study.data.sft)


def _rl(study: Study, run: Run, model, tokenizer, splits: dict[str, list[Item]], d: RunDir) -> dict:
    from postfit.study.data import heldout_split
    from postfit.train.rl import train_rl

    heldout = splits[heldout_split(study)][: study.rl.heldout_items]
    prompts = splits.get("rl") or splits["train"]
    return train_rl(model, tokenizer, prompts, heldout, study.rl, study.eval, d.path, run.seed)


TRAINERS = {SFT: _sft, RL: _rl}  # a recipe's `trainer` -> what trains it in place, returning its stats


def _forget_lost_weights(layout: StudyDir, run: Run) -> None:
    """A run of the chain whose train.json survived but whose weights did not is trained again."""
    from postfit.train.common import has_weights

    for d in {layout.run(r) for r in run.chain}:
        if d.trained() and not has_weights(d.model):
            log.warning("%s: train.json without weights in model/; training again", d.path)
            if is_main():
                d.train_json.unlink()
            barrier()


def posttrain(study: Study, run: Run, model, tokenizer, splits: dict[str, list[Item]], layout: StudyDir):
    """(post-trained model, training stats) of `run`, whose recipe trains (every recipe but `none`)."""
    from transformers import AutoModelForCausalLM

    from postfit.train.common import discard_checkpoints

    _forget_lost_weights(layout, run)
    d, recipe = layout.run(run), RECIPES[run.recipe]
    if d.trained():
        discard_checkpoints(d.checkpoints)  # left by a kill between train.json and their removal
        return AutoModelForCausalLM.from_pretrained(d.model), read_json(d.train_json)
    stats: dict = {}
    if run.base is not None:
        base = layout.run(run.base)
        # The base run trains under its own lock: its worker may be this one (it holds it already) or another.
        with claim(base.path, done=base.trained) as mine:
            if mine:
                sweep(base.path)
                posttrain(study, run.base, model, tokenizer, splits, layout)
        model = AutoModelForCausalLM.from_pretrained(base.model)
        stats[f"{recipe.after}_from"] = str(base.model)
    with tracking(study.report.to, layout.root, d.name, study.name):
        stats.update(TRAINERS[recipe.trainer](study, run, model, tokenizer, splits, d))
    if is_main():
        atomic_write_json(d.train_json, stats)
    barrier()
    discard_checkpoints(d.checkpoints)
    return model, stats
