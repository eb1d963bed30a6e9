"""Recipes are one table (postfit/config/recipes.py): the schema, the grid, the runner, the executors, the plan and
the report all read it, so a recipe built from the existing trainers is one row."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import TINY_STUDY
from postfit.config.recipes import RECIPES, RL, SFT, Recipe, trainers


def test_every_recipe_continues_a_recipe_of_the_table_and_names_a_trainer():
    for recipe in RECIPES.values():
        assert recipe.after is None or recipe.after in RECIPES, recipe
        assert recipe.trainer in (None, SFT, RL), recipe
    assert trainers("sft+rl") == (SFT, RL) and trainers("none") == () and RECIPES["rl"].before == "none"


def test_an_unknown_recipe_is_refused_with_the_valid_names(tmp_path):
    from postfit.config import parse_study
    from postfit.errors import UserError

    bad = {**copy.deepcopy(TINY_STUDY), "grid": {"recipes": ["none", "sft+dpo"]}}
    with pytest.raises(UserError, match=r"grid.recipes: unknown recipe 'sft\+dpo'; expected one of none, sft, rl"):
        parse_study(bad, "study.yaml")


@pytest.mark.slow
def test_a_throwaway_recipe_is_one_row_and_runs(monkeypatch, tmp_path):
    """`sft+sft` (SFT again on the `sft` run's model), registered as one row: the study accepts it, plan counts
    its trainings, the runner trains the `sft` run once (it is not in the grid) and continues from its model, the
    executors' task graph waits for nothing it does not need, and the report shows the recipe."""
    from postfit.config import parse_study
    from postfit.layout import StudyDir
    from postfit.study.executors import task_graph
    from postfit.study.plan import make_plan
    from postfit.study.runner import run_study

    monkeypatch.setitem(RECIPES, "sft+sft", Recipe("sft+sft", SFT, after=SFT, help="SFT again"))
    spec = copy.deepcopy(TINY_STUDY)
    spec["grid"] = {"inits": ["random"], "recipes": ["none", "sft+sft"], "seeds": [0]}
    spec["sft"] = {**spec["sft"], "steps": 8}
    spec["tasks"] = {**spec["tasks"], "test_size": 8}
    study = parse_study(spec, "study.yaml")
    assert [s.runs for s in make_plan(study, "study.yaml").stages if s.name == "SFT"] == [2]
    assert task_graph(study)["random-sft+sft-s0"] == [":prepare"]  # its base run is not a task of this grid
    layout = StudyDir(tmp_path / "out")
    md = run_study(study, layout.root)
    base, run = layout.run("random-sft-s0"), layout.run("random-sft+sft-s0")
    assert base.trained() and not base.done()  # trained as the base, never evaluated: not in the grid
    train = yaml.safe_load(run.train_json.read_text())
    assert train["sft_from"] == str(base.model) and train["steps"] == 8
    assert run.done() and sorted(p.name for p in layout.runs.iterdir()) == [
        "random-none-s0", "random-sft+sft-s0", "random-sft-s0"]  # fmt: skip
    assert "| random | sft+sft |" in md.read_text()
