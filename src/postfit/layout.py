"""A study's output directory, owned in one place: every path, file name and done-marker.

    DIR/
        study.yaml                  the resolved study (a rerun must match it)
        data/<split>.jsonl          the items; data/manifest.json their list (written last: "data made");
                                    data/contamination.json the overlap checks; data/distance.json each
                                    evaluated item's distance to the post-training data
        base/                       postfit's tokenizer, config and pre-trained weights (presets); heldout.jsonl
                                    the corpus blocks pre-training never saw
        runs/<init>-<recipe>[-n<N>]-s<seed>/   one per grid run (RunDir)
        sandbox.json                the sandbox's layers (studies with code items)
        env.json                    the environment of the start that wrote study.yaml (postfit.env)
        env_history.jsonl           one line per invocation that prepared the study (each worker, each task)
        results.jsonl, report.md, report.html, plots/

Nothing else joins these names: the runner, the executors, `postfit status` and the report all go through
`StudyDir` and `RunDir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postfit.io import changed_files, read_json

DEFAULT_PARENT = Path("runs")  # `postfit run STUDY` without --out writes runs/<study name>/


@dataclass(frozen=True)
class RunDir:
    """One run's directory: what it writes, and which file marks which state."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    run_json = property(lambda self: self.path / "run.json")  # init, recipe, seed, params, stats, file hashes
    samples = property(lambda self: self.path / "samples.jsonl")  # every completion with its verdict
    results = property(lambda self: self.path / "results.jsonl")  # written last: its presence means "done"
    train_json = property(lambda self: self.path / "train.json")  # written after the final model: "trained"
    train_log = property(lambda self: self.path / "train_log.jsonl")  # the trainer's logged rows
    heldout = property(lambda self: self.path / "heldout.jsonl")  # RL: held-out greedy rows during training
    probes = property(lambda self: self.path / "probes.jsonl")  # learning-to-learn probe rows
    forgetting = property(lambda self: self.path / "forgetting.jsonl")  # loss and KL on the held-out corpus blocks
    model = property(lambda self: self.path / "model")  # final weights and tokenizer (trained recipes)
    checkpoints = property(lambda self: self.path / "checkpoints")  # resumable trainer checkpoints
    log = property(lambda self: self.path / "log.txt")  # the run's own log
    failed = property(lambda self: self.path / "failed.json")  # the error of a run that raised
    lock = property(lambda self: self.path / ".lock")  # held while a worker trains it (study/locks.py)
    launch = property(lambda self: self.path / "launch.yaml")  # the study file of a multi-GPU launch
    adapt_work = property(lambda self: self.path / "adapt_work")  # the adaptation probe's scratch directory

    def done(self) -> bool:
        return self.results.exists()

    def trained(self) -> bool:
        return self.train_json.exists()


@dataclass(frozen=True)
class BaseDir:
    """DIR/base: postfit's own tokenizer, config and pre-trained weights, as train/pretrain.py writes them."""

    path: Path

    architecture = property(lambda self: self.path / "architecture")  # tokenizer and config: made before weights
    pretrained = property(lambda self: self.path / "pretrained")  # the final weights
    meta = property(lambda self: self.path / "meta.json")  # written after the weights: pre-training is done
    heldout = property(lambda self: self.path / "heldout.jsonl")  # the corpus blocks pre-training never saw
    log = property(lambda self: self.path / "pretrain_log.jsonl")
    checkpoints = property(lambda self: self.path / "pretrain_checkpoints")

    def snapshot(self, tokens: int) -> Path:
        """The weights after `tokens` tokens of the same pre-training (init `pretrained@TOKENS`)."""
        return self.path / f"pretrained@{tokens}"


@dataclass(frozen=True)
class StudyDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def default(cls, study_name: str) -> StudyDir:
        return cls(DEFAULT_PARENT / study_name)

    study_yaml = property(lambda self: self.root / "study.yaml")
    data = property(lambda self: self.root / "data")
    manifest = property(lambda self: self.root / "data" / "manifest.json")
    contamination = property(lambda self: self.root / "data" / "contamination.json")
    distance = property(lambda self: self.root / "data" / "distance.json")
    base = property(lambda self: BaseDir(self.root / "base"))
    sandbox = property(lambda self: self.root / "sandbox.json")
    env = property(lambda self: self.root / "env.json")
    env_history = property(lambda self: self.root / "env_history.jsonl")
    results = property(lambda self: self.root / "results.jsonl")
    report_md = property(lambda self: self.root / "report.md")
    runs = property(lambda self: self.root / "runs")
    control = property(lambda self: self.root / "probes" / "control.jsonl")  # the context probe's positive control
    control_work = property(lambda self: self.root / "probes" / "control_work")  # its training's scratch directory

    def split(self, name: str) -> Path:
        return self.data / f"{name}.jsonl"

    def run(self, run) -> RunDir:
        """The directory of a grid run (`postfit.config.grid.Run`) or of a run name."""
        return RunDir(self.runs / (run if isinstance(run, str) else run.name))

    def run_dirs(self) -> list[RunDir]:
        """Every run directory that a run has started writing (it holds run.json), by name."""
        return [d for d in map(RunDir, sorted(self.runs.glob("*"))) if d.run_json.exists()]


def damaged(run_dir: Path) -> list[str]:
    """Files of a finished run that changed since it recorded their sha256 in run.json (truncated, edited, lost);
    ["run.json"] if that cannot be read. Empty for an intact run (or one from before the hashes were recorded)."""
    record = RunDir(run_dir).run_json
    try:
        recorded = read_json(record).get("files", {})
    except (OSError, ValueError):
        return [record.name]
    return changed_files(run_dir, recorded)
