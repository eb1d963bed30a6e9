"""The study file's schema, the single source of truth for every option: the study (study.py), the blocks of each
stage (stages.py; training.py for SFT and RL), real data and benchmarks (data.py), scaling axes and probes
(scaling.py), the recipes (recipes.py) and the grid of runs they make (grid.py).

May import data (for the names of sources and benchmarks), models, tasks and errors.
"""

from postfit.config.stages import (
    SPLITS,
    EvalOptions,
    GridConfig,
    ModelSpec,
    PretrainConfig,
    ReportOptions,
    ResourcesOptions,
    SandboxOptions,
    TasksConfig,
    TaskSpec,
)
from postfit.config.study import Study, builtin_studies, load_study, options_markdown, options_table, parse_study
from postfit.config.training import MemoryOptions, RLOptions, SFTOptions, VLLMOptions

__all__ = [
    "SPLITS", "EvalOptions", "GridConfig", "MemoryOptions", "ModelSpec", "PretrainConfig", "RLOptions",
    "ReportOptions", "ResourcesOptions", "SFTOptions", "SandboxOptions", "Study", "TaskSpec", "TasksConfig",
    "VLLMOptions",
    "builtin_studies", "load_study", "options_markdown", "options_table", "parse_study",
]  # fmt: skip
