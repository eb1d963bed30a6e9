"""Every post-training recipe of a study, declared once: a recipe is one trainer run on the model of another recipe
(or on the initialisation itself).

Everything else reads this table: the study schema (which names `grid.recipes` accepts, which data each needs),
the grid (which run a run continues), the runner (what to train, in which order, under whose lock), the
executors (which task waits for which), `postfit plan` (the cost of each trainer) and the report (the model a
recipe is compared with before and after). A recipe built from the existing trainers is one row of `RECIPES`.
"""

from __future__ import annotations

from dataclasses import dataclass

SFT, RL = "sft", "rl"  # the trainers: postfit.study.posttrain.TRAINERS runs them
NONE = "none"  # the recipe that trains nothing: the initialisation as it is, the "before" of every comparison


@dataclass(frozen=True)
class Recipe:
    name: str
    trainer: str | None  # SFT or RL, run last; None: no training
    after: str | None = None  # the recipe whose trained model this one continues (trained once, reused); None: init
    help: str = ""

    @property
    def trains(self) -> bool:
        return self.trainer is not None

    @property
    def before(self) -> str:
        """The recipe whose model this one starts from: what the report compares it with, before and after."""
        return self.after or NONE


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(NONE, None, help="evaluates the initialisation as is"),
        Recipe(SFT, SFT, help="fine-tunes it on the SFT data"),
        Recipe(RL, RL, help="runs GRPO on it"),
        Recipe("sft+rl", RL, after=SFT, help="runs GRPO from the `sft` run's model (reused if it exists)"),
    )
}


def trainers(name: str) -> tuple[str, ...]:
    """The trainers a recipe's model went through, in order (its `after` chain first)."""
    recipe = RECIPES[name]
    earlier = trainers(recipe.after) if recipe.after else ()
    return (*earlier, recipe.trainer) if recipe.trains else earlier


def check_recipe(name: str) -> str:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return name


def describe() -> str:
    """The recipes in words, for the option table: '`none` evaluates ...; `sft` ...'."""
    return "; ".join(f"`{r.name}` {r.help}" for r in RECIPES.values()) + "."
