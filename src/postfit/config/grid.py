"""The grid of a study: one `Run` per init x recipe x data size x seed, named as its directory under runs/.

The same `Run` identifies a run everywhere: the runner trains it, the report's `RunResults` (report/results.py)
is a Run with what its directory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from postfit.config.recipes import RECIPES

if TYPE_CHECKING:
    from postfit.config import Study


@dataclass(frozen=True)
class Run:
    init: str
    recipe: str
    seed: int
    examples: int | None = None  # grid.posttrain_examples: post-trained on the first N training items

    @property
    def name(self) -> str:
        size = "" if self.examples is None else f"-n{self.examples}"
        return f"{self.init}-{self.recipe}{size}-s{self.seed}"

    @property
    def base(self) -> Run | None:
        """The run of the same init, seed and data size whose trained model this run continues (its recipe's
        `after`: the `sft` run for `sft+rl`), or None when it starts from the initialisation."""
        after = RECIPES[self.recipe].after
        return None if after is None else Run(self.init, after, self.seed, self.examples)

    @property
    def chain(self) -> list[Run]:
        """This run and the runs its model continues, the earliest last."""
        return [self, *(self.base.chain if self.base else [])]

    @property
    def label(self) -> str:
        """The recipe, with N when the study scales the post-training data (runs of different N never pool)."""
        return self.recipe if self.examples is None else f"{self.recipe} N={self.examples}"


def grid_runs(study: Study) -> list[Run]:
    g = study.grid
    sizes = g.posttrain_examples or [None]
    # A recipe that trains nothing: one run per init and seed, whatever the data-scaling axis says.
    return [Run(i, r, s, n) for i in g.inits for r in g.recipes for n in (sizes if RECIPES[r].trains else [None])
            for s in g.seeds]  # fmt: skip
