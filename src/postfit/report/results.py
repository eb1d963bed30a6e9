"""What a study directory holds, loaded for the report: one `RunResults` per evaluated run (a grid `Run` with its
samples, logs and stats) inside a `StudyResults`, and the estimates every table pools from them.

Read from stored files only, through postfit.layout: each run's record, samples, training and held-out logs, probe
and forgetting rows, the study file, the pre-training log, the contamination checks, the sandbox's layers and the
environments the study ran in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from postfit.analysis import stats
from postfit.config.grid import Run
from postfit.errors import UserError
from postfit.io import read_json, read_jsonl, read_jsonl_lenient
from postfit.layout import RunDir, StudyDir, damaged

BOOT_SEED = 0  # each CI gets a fresh generator with this seed: reruns are byte-identical, cells independent


@dataclass(frozen=True, kw_only=True)
class RunResults(Run):
    """A grid run (its name, init, recipe, seed, N) with what its directory holds."""

    params: int | None = None
    pretrain_tokens: int | None = None  # postfit's own pre-training behind the initial weights (random: 0)
    samples: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)
    heldout: list[dict] = field(default_factory=list)  # RL runs: greedy held-out rows during training
    train: dict = field(default_factory=dict)  # run.json's training stats (times, tokens)
    probes: list[dict] = field(default_factory=list)  # learning-to-learn probe rows
    forgetting: list[dict] = field(default_factory=list)  # per held-out corpus block: loss and KL from the start


@dataclass
class StudyResults:
    """A study directory as the report reads it; `config` is its study.yaml as stored."""

    dir: Path
    config: dict
    runs: list[RunResults]
    unevaluated: list[str]  # run directories without samples.jsonl yet
    pretrain_log: list[dict]
    base_meta: dict | None
    contamination: dict | None
    sandbox: dict | None = None  # sandbox.json: the layers model-written code ran under (study/runner.py)
    env: dict | None = None  # env.json: the environment of the start that wrote study.yaml (postfit.env)
    env_history: list[dict] = field(default_factory=list)  # env_history.jsonl: one row per invocation
    control: list[dict] = field(default_factory=list)  # probes/control.jsonl: the context probe's positive control

    def grid(self, key: str) -> list:
        return list((self.config.get("grid") or {}).get(key) or [])

    @property
    def n_boot(self) -> int:
        return int((self.config.get("report") or {}).get("bootstrap", 1000))

    @property
    def ci(self) -> float:
        return float((self.config.get("report") or {}).get("ci", 0.95))

    @property
    def splits(self) -> list[str]:
        return sorted({row["split"] for r in self.runs for row in r.samples}, key=stats.split_sort_key)

    def groups(self) -> dict[tuple[str, str], list[RunResults]]:
        """(init, recipe) -> its runs sorted by seed, in the order the grid lists inits and recipes."""

        def rank(order: list, name: str) -> tuple[int, str]:
            return (order.index(name), "") if name in order else (len(order), name)

        out: dict[tuple[str, str], list[RunResults]] = {}
        for run in sorted(
            self.runs,
            key=lambda r: (
                rank(self.grid("inits"), r.init),
                rank(self.grid("recipes"), r.recipe),
                r.examples or 0,
                r.seed,
            ),  # fmt: skip
        ):
            out.setdefault((run.init, run.label), []).append(run)
        return out


def _maybe(path: Path, reader):
    return reader(path) if path.exists() else None


def _run(d: RunDir) -> RunResults:
    meta = read_json(d.run_json)
    return RunResults(meta["init"], meta["recipe"], int(meta["seed"]), meta.get("examples"), params=meta.get("params"),
                      pretrain_tokens=meta.get("pretrain_tokens"), samples=read_jsonl(d.samples),
                      train_log=_maybe(d.train_log, read_jsonl) or [], heldout=_maybe(d.heldout, read_jsonl) or [],
                      train=meta.get("train") or {}, probes=_maybe(d.probes, read_jsonl) or [],
                      forgetting=_maybe(d.forgetting, read_jsonl) or [])  # fmt: skip


def load_study(out_dir: Path) -> StudyResults:
    layout = StudyDir(out_dir)
    if not layout.study_yaml.exists():
        raise UserError(f"{layout.root}: no {layout.study_yaml.name}; is this a study directory?")
    config = yaml.safe_load(layout.study_yaml.read_text(encoding="utf-8")) or {}
    runs, unevaluated = [], []
    for d in layout.run_dirs():
        if not d.samples.exists():
            unevaluated.append(d.name)
            continue
        if bad := damaged(d.path):
            raise UserError(f"{d.path}: {', '.join(bad)} changed since the run wrote it (its sha256 in "
                            f"{d.run_json.name} differs); restore it, or run `postfit run` on {layout.root} to redo "
                            "the run")  # fmt: skip
        runs.append(_run(d))
    if not runs:
        raise UserError(f"{layout.root}: no run has its samples yet; evaluate before reporting")
    pretrain_log = _maybe(layout.base.log, read_jsonl) or []
    base_meta = _maybe(layout.base.meta, read_json)
    contamination = _maybe(layout.contamination, read_json)
    sandbox = _maybe(layout.sandbox, read_json)
    return StudyResults(layout.root, config, runs, unevaluated, pretrain_log, base_meta, contamination, sandbox,
                        _maybe(layout.env, read_json), read_jsonl_lenient(layout.env_history),
                        _maybe(layout.control, read_jsonl) or [])  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float
    n: int  # items
    seeds: int


def _per_seed(runs: list[RunResults], split: str, k: int | None) -> list[np.ndarray]:
    """One array of per-item scores per run that has `split` (and, for pass@k, at least k samples per item)."""
    out = []
    for run in runs:
        if k is not None and stats.samples_per_item(run.samples, split) < k:
            continue
        per_item = stats.per_item_pass(run.samples, split, k)
        if per_item:
            out.append(np.array([per_item[i] for i in sorted(per_item)]))
    return out


def group_estimates(study: StudyResults, k: int | None = None) -> dict[tuple[str, str], dict[str, Estimate]]:
    """(init, recipe) -> split -> pass@1 (greedy, k None) or pass@k, pooled over seeds with the hierarchical CI."""
    out: dict[tuple[str, str], dict[str, Estimate]] = {}
    for key, runs in study.groups().items():
        for split in study.splits:
            arrays = _per_seed(runs, split, k)
            if arrays:
                est = stats.bootstrap_ci(arrays, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))
                out.setdefault(key, {})[split] = Estimate(*est, n=max(a.size for a in arrays), seeds=len(arrays))
    return out


def group_drop(study: StudyResults, runs: list[RunResults]) -> tuple[float, float, float] | None:
    """id_test minus the mean of the ood_* splits (greedy), seeds paired; None without both kinds of split."""
    ood = [s for s in study.splits if s.startswith("ood")]
    usable = [r for r in runs if all(stats.per_item_pass(r.samples, s) for s in ["id_test", *ood])]
    if not ood or not usable:
        return None
    id_scores, ood_scores = _per_seed(usable, "id_test", None), [_per_seed(usable, s, None) for s in ood]
    return stats.drop_ci(id_scores, ood_scores, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))


def pair_by_seed_and_item(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]):
    """Two {seed: {item: score}} on the seeds and items both sides have, in one order: (a's per-seed arrays, b's,
    n items, seeds), or None when they share none."""
    seeds = sorted(set(a) & set(b))
    items = sorted(set.intersection(*(set(d) for s in seeds for d in (a[s], b[s])))) if seeds else []
    if not items:
        return None
    first, second = ([np.array([side[s][i] for i in items]) for s in seeds] for side in (a, b))
    return first, second, len(items), len(seeds)


def paired_scores(a: list[RunResults], b: list[RunResults], split: str) -> tuple[list, list, int, int] | None:
    """`pair_by_seed_and_item` of two groups of runs' greedy per-item scores on `split`."""
    return pair_by_seed_and_item(*({r.seed: stats.per_item_pass(r.samples, split) for r in g} for g in (a, b)))


def recovery(study: StudyResults, recipe: str, split: str) -> dict | None:
    """random-init over pretrained greedy pass@1 on the items and seeds both have, paired by seed and item."""
    groups = study.groups()
    rand, pre = groups.get(("random", recipe)), groups.get(("pretrained", recipe))
    paired = paired_scores(rand, pre, split) if rand and pre else None
    if paired is None:
        return None
    num, den, n, seeds = paired
    rng = np.random.default_rng(BOOT_SEED)
    means = [float(np.mean([a.mean() for a in g])) for g in (num, den)]
    ratio = stats.ratio_ci(num, den, study.n_boot, study.ci, rng)
    return {"ratio": ratio, "random": means[0], "pretrained": means[1], "n": n, "seeds": seeds}


def paired_estimate(study, a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]):
    """((a - b, lo, hi), n items, seeds) for two {seed: {item: score}}, with the bootstrap CI paired by seed and
    item: every stated difference of the report is this one; None when they share no seed and item."""
    paired = pair_by_seed_and_item(a, b)
    if paired is None:
        return None
    first, second, n, seeds = paired
    return stats.paired_diff_ci(first, second, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED)), n, seeds


def paired_difference(study: StudyResults, a: list[RunResults], b: list[RunResults], split: str) -> dict | None:
    """`paired_estimate` of two groups of runs' greedy pass@1 on `split`: {"diff": (est, lo, hi), "n", "seeds"}."""
    got = paired_estimate(study, *({r.seed: stats.per_item_pass(r.samples, split) for r in g} for g in (a, b)))
    return None if got is None else {"diff": got[0], "n": got[1], "seeds": got[2]}
