"""Study-file blocks for real post-training data and benchmarks (part of the study schema in config.py).

A study trains on reasoning-gym tasks (`tasks:`), on real data (`data:`), or both: `data.sft` and
`data.rl` replace the tasks' train split for their recipe, and `eval.benchmarks` are evaluated next to
(or, without `tasks:`, instead of) the procedural splits. Names are checked against the loaders' own
tables, so a typo fails before anything runs and the message lists the valid names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postfit.data.formats import Columns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_source(name: str) -> str:
    """A preset name, a local file or folder, or a hub dataset id (`org/name`); ValueError listing the presets."""
    from postfit.data.formats import source_kind
    from postfit.data.sources import SOURCES

    if source_kind(name, SOURCES) is not None:
        return name
    raise ValueError(f"unknown data source {name!r}; expected one of {sorted(SOURCES)}, a hub dataset id "
                     "(org/name), or a local .jsonl/.json/.parquet file or dataset folder")  # fmt: skip


def check_benchmark(name: str) -> str:
    """A name `postfit.data.benchmarks.load_benchmark` accepts; ValueError listing the valid names."""
    from postfit.data.benchmarks import BENCHMARKS, RG_PREFIX, benchmark_names

    if name in benchmark_names():
        return name
    raise ValueError(f"unknown benchmark {name!r}; expected one of {list(BENCHMARKS)} or {RG_PREFIX}TASK for a "
                     f"reasoning-gym task (e.g. {RG_PREFIX}chain_sum)")  # fmt: skip


class _SourceRef(_Strict):
    """Where items come from: a source name, a hub dataset or a local file, and its rows."""

    source: str = Field(description="A preset (`openr1-math`, `openthoughts`, `numina-cot`, `gsm8k-train`, "
                        "`codeforces-cots`: a hub dataset with its column mapping), a hub dataset id (org/name, "
                        "read with `datasets.load_dataset`), or a local .jsonl/.json/.parquet file or a folder "
                        "(`save_to_disk`, or data files as the hub lays them out). Rows in postfit's item schema, "
                        "in TRL's formats, or mapped by `columns`.")  # fmt: skip
    subset: str | None = Field(None, description="The dataset's configuration (`datasets.load_dataset`'s `name`); "
                               "null: a preset's own, else the dataset's default.")  # fmt: skip
    split: str = Field("train", description="The source's split to read.")
    columns: Columns | None = Field(
        None,
        description="Which column holds what; null: found from the column names (postfit items; `messages`; "
        "`prompt` with `completion`; `conversations`) or a preset's own mapping.",
    )
    skip: int = Field(
        0, ge=0, description="Leave out the source's first N rows, so SFT and RL can read disjoint ranges of a source."
    )

    def rows(self) -> tuple[int, int | None]:
        """[start, stop) of the source's rows this block reads (stop None: to the end)."""
        limit = getattr(self, "limit", None)
        return self.skip, None if limit is None else self.skip + limit

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        return check_source(v)


class SFTData(_SourceRef):
    """Supervised fine-tuning examples from a post-training set: its reasoning traces, chat-templated."""

    limit: int | None = Field(
        None, gt=0, description="Read the source's first N items (the filters may keep fewer); null: all."
    )
    overlong: Literal["drop", "truncate"] = Field(
        "drop",
        description="Examples longer than `sft.max_length` tokens: `drop` them or `truncate` them "
        "(counts go to the run's train.json).",
    )
    verified_only: bool = Field(
        True, description="Keep only traces the dataset marks as verified correct (where it marks them)."
    )


class RLData(_SourceRef):
    """RL prompts with reference answers (math, procedural) or tests (code); the reward is `verify.score`."""

    limit: int | None = Field(
        None, gt=0, description="Read the source's first N items (those without answer or tests are left out)."
    )


class DataConfig(_Strict):
    """Real post-training data: each block replaces the procedural train split for its recipe."""

    sft: SFTData | None = Field(None, description="SFT data for recipes `sft` and `sft+rl`.")
    rl: RLData | None = Field(None, description="RL prompts for recipes `rl` and `sft+rl`.")

    def row_overlap(self) -> str | None:
        """Why the SFT and RL rows of one source overlap, or None (different sources, or disjoint ranges)."""
        sft, rl = self.sft, self.rl
        if sft is None or rl is None or (sft.source, sft.subset, sft.split) != (rl.source, rl.subset, rl.split):
            return None
        (a, b), (c, d) = sft.rows(), rl.rows()
        if (b is None or c < b) and (d is None or a < d):
            return (f"data.rl reads rows {describe_rows(rl.rows())} of {rl.source!r} ({rl.split}), which overlap "
                    f"data.sft's rows {describe_rows(sft.rows())}: RL would train on prompts the SFT model has "
                    f"memorised; set data.rl.skip to {b if b is not None else 'a row past data.sft.limit'} or more "
                    "(or contamination.drop: true to leave the overlapping RL prompts out)")  # fmt: skip
        return None


def describe_rows(rows: tuple[int, int | None]) -> str:
    start, stop = rows
    return f"[{start:,}, {stop:,})" if stop is not None else f"[{start:,}, end)"
