"""Build report.md and a self-contained report.html from a study directory's stored files.

Every number is recomputed from runs/*/samples.jsonl (loss curves from the stored training logs), so the
report can be regenerated at any time and never depends on a live process or on scraped logs. This module
reads the study and decides the content, as a list of blocks; postfit.report_render draws the plots and renders
the blocks as markdown and as HTML.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from postfit import stats
from postfit.errors import UserError
from postfit.io import atomic_write_text, read_json, read_jsonl
from postfit.report_render import (
    Block,
    Heading,
    Para,
    Plot,
    Table,
    bar_plot,
    loss_plot,
    render_html,
    render_md,
    runs_loss_plot,
)
from postfit.report_rl import rl_blocks
from postfit.report_scaling import scaling_blocks

log = logging.getLogger(__name__)

BOOT_SEED = 0  # each CI gets a fresh generator with this seed: reruns are byte-identical, cells independent


@dataclass
class Run:
    name: str
    init: str
    recipe: str
    seed: int
    params: int | None
    samples: list[dict]
    train_log: list[dict]
    heldout: list[dict] = field(default_factory=list)  # RL runs: greedy held-out rows during training
    train: dict = field(default_factory=dict)  # run.json's training stats (times, tokens)
    examples: int | None = None  # grid.posttrain_examples: trained on the first N items

    @property
    def label(self) -> str:
        """The recipe, with N when the study scales the post-training data (runs of different N never pool)."""
        return self.recipe if self.examples is None else f"{self.recipe} N={self.examples}"


@dataclass
class Study:
    dir: Path
    config: dict
    runs: list[Run]
    unevaluated: list[str]  # run directories without samples.jsonl yet
    pretrain_log: list[dict]
    base_meta: dict | None
    contamination: dict | None
    sandbox: dict | None = None  # sandbox.json: the layers model-written code ran under (study.py)

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

    def groups(self) -> dict[tuple[str, str], list[Run]]:
        """(init, recipe) -> its runs sorted by seed, in the order the grid lists inits and recipes."""

        def rank(order: list, name: str) -> tuple[int, str]:
            return (order.index(name), "") if name in order else (len(order), name)

        out: dict[tuple[str, str], list[Run]] = {}
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


def load_study(out_dir: Path) -> Study:
    out_dir = Path(out_dir)
    if not (out_dir / "study.yaml").exists():
        raise UserError(f"{out_dir}: no study.yaml; is this a study directory?")
    config = yaml.safe_load((out_dir / "study.yaml").read_text(encoding="utf-8")) or {}
    runs, unevaluated = [], []
    for run_dir in sorted(p for p in (out_dir / "runs").glob("*") if (p / "run.json").exists()):
        if not (run_dir / "samples.jsonl").exists():
            unevaluated.append(run_dir.name)
            continue
        meta = read_json(run_dir / "run.json")
        samples, train_log = read_jsonl(run_dir / "samples.jsonl"), _maybe(run_dir / "train_log.jsonl", read_jsonl)
        name, params = meta.get("run", run_dir.name), meta.get("params")
        heldout = _maybe(run_dir / "heldout.jsonl", read_jsonl) or []
        runs.append(Run(name, meta["init"], meta["recipe"], int(meta["seed"]), params, samples, train_log or [],
                        heldout, meta.get("train") or {}, meta.get("examples")))  # fmt: skip
    if not runs:
        raise UserError(f"{out_dir}: no run has a samples.jsonl yet; evaluate before reporting")
    pretrain_log = _maybe(out_dir / "base" / "pretrain_log.jsonl", read_jsonl) or []
    base_meta = _maybe(out_dir / "base" / "meta.json", read_json)
    contamination = _maybe(out_dir / "data" / "contamination.json", read_json)
    sandbox = _maybe(out_dir / "sandbox.json", read_json)
    return Study(out_dir, config, runs, unevaluated, pretrain_log, base_meta, contamination, sandbox)


# ---- numbers --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float
    n: int  # items
    seeds: int


def _per_seed(runs: list[Run], split: str, k: int | None) -> list[np.ndarray]:
    """One array of per-item scores per run that has `split` (and, for pass@k, at least k samples per item)."""
    out = []
    for run in runs:
        if k is not None and stats.samples_per_item(run.samples, split) < k:
            continue
        per_item = stats.per_item_pass(run.samples, split, k)
        if per_item:
            out.append(np.array([per_item[i] for i in sorted(per_item)]))
    return out


def group_estimates(study: Study, k: int | None = None) -> dict[tuple[str, str], dict[str, Estimate]]:
    """(init, recipe) -> split -> pass@1 (greedy, k None) or pass@k, pooled over seeds with the hierarchical CI."""
    out: dict[tuple[str, str], dict[str, Estimate]] = {}
    for key, runs in study.groups().items():
        for split in study.splits:
            arrays = _per_seed(runs, split, k)
            if arrays:
                est = stats.bootstrap_ci(arrays, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))
                out.setdefault(key, {})[split] = Estimate(*est, n=max(a.size for a in arrays), seeds=len(arrays))
    return out


def group_drop(study: Study, runs: list[Run]) -> tuple[float, float, float] | None:
    """id_test minus the mean of the ood_* splits (greedy), seeds paired; None without both kinds of split."""
    ood = [s for s in study.splits if s.startswith("ood")]
    usable = [r for r in runs if all(stats.per_item_pass(r.samples, s) for s in ["id_test", *ood])]
    if not ood or not usable:
        return None
    id_scores, ood_scores = _per_seed(usable, "id_test", None), [_per_seed(usable, s, None) for s in ood]
    return stats.drop_ci(id_scores, ood_scores, study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))


def recovery(study: Study, recipe: str, split: str) -> dict | None:
    """random-init over pretrained greedy pass@1 on the items and seeds both have, paired by seed and item."""
    groups = study.groups()
    rand, pre = groups.get(("random", recipe)), groups.get(("pretrained", recipe))
    if not rand or not pre:
        return None
    seeds = sorted({r.seed for r in rand} & {r.seed for r in pre})
    by_seed = [{r.seed: r for r in g} for g in (rand, pre)]
    scores = [[stats.per_item_pass(g[s].samples, split) for s in seeds] for g in by_seed]
    items = sorted(set.intersection(*(set(d) for g in scores for d in g))) if seeds else []
    if not items:
        return None
    num, den = ([np.array([d[i] for i in items]) for d in g] for g in scores)
    rng = np.random.default_rng(BOOT_SEED)
    means = [float(np.mean([a.mean() for a in g])) for g in (num, den)]
    ratio = stats.ratio_ci(num, den, study.n_boot, study.ci, rng)
    return {"ratio": ratio, "random": means[0], "pretrained": means[1], "n": len(items), "seeds": len(seeds)}


# ---- tables -----------------------------------------------------------------------------------------------------


def _pct(e: tuple[float, float, float], signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * e[0])} [{f.format(100 * e[1])}, {f.format(100 * e[2])}]"


def estimate_table(study: Study, est: dict, with_drop: bool) -> Table:
    splits = [s for s in study.splits if any(s in row for row in est.values())]
    # n goes in the header when every row agrees (the normal case), else into each cell.
    ns = {split: {row[split].n for row in est.values() if split in row} for split in splits}
    header = ["init", "recipe", "seeds"] + [f"{s} (n={min(ns[s])})" if len(ns[s]) == 1 else s for s in splits]
    header += ["ID→OOD drop (pp)"] if with_drop else []
    groups = study.groups()
    rows = []
    for (init, recipe), by_split in est.items():
        cells = [init, recipe, str(max(e.seeds for e in by_split.values()))]
        for split in splits:
            e = by_split.get(split)
            n_note = "" if len(ns[split]) == 1 or e is None else f" (n={e.n})"
            cells.append("—" if e is None else _pct((e.value, e.lo, e.hi)) + n_note)
        if with_drop:
            drop = group_drop(study, groups[(init, recipe)])
            cells.append("—" if drop is None else _pct(drop, signed=True))
        rows.append(cells)
    return Table(header, rows)


RECOVERY_HEADER = "recipe|split|random pass@1 (%)|pretrained pass@1 (%)|ratio random/pretrained|n items|seeds".split(
    "|"
)


def recovery_table(study: Study) -> Table | None:
    rows = []
    for recipe in dict.fromkeys(recipe for _, recipe in study.groups()):
        for split in study.splits:
            rec = recovery(study, recipe, split)
            if rec is None:
                continue
            r = rec["ratio"]
            ratio = "undefined (pretrained score is 0)" if np.isnan(r[0]) else f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"
            scores = [f"{100 * rec['random']:.1f}", f"{100 * rec['pretrained']:.1f}"]
            rows.append([recipe, split, *scores, ratio, str(rec["n"]), str(rec["seeds"])])
    return Table(RECOVERY_HEADER, rows) if rows else None


# ---- assembling ---------------------------------------------------------------------------------------------------


def _number(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else (f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}")


def _planned(study: Study, inits: list, recipes: list, seeds: list) -> str:
    """The grid's run count; with grid.posttrain_examples every recipe but `none` runs once per N."""
    sizes = study.grid("posttrain_examples")
    if not sizes:
        return str(len(inits) * len(recipes) * len(seeds))
    per_init = sum(1 if r == "none" else len(sizes) for r in recipes)
    return f"{len(inits) * per_init * len(seeds)} (post-training recipes once per N in {sizes})"


def _summary(study: Study) -> str:
    inits = study.grid("inits") or sorted({r.init for r in study.runs})
    recipes = study.grid("recipes") or sorted({r.recipe for r in study.runs})
    seeds = study.grid("seeds") or sorted({r.seed for r in study.runs})
    params = sorted({r.params for r in study.runs if r.params is not None})
    text = (
        f"Grid: {len(inits)} inits ({', '.join(map(str, inits))}) × {len(recipes)} recipes "
        f"({', '.join(map(str, recipes))}) × {len(seeds)} seeds ({', '.join(map(str, seeds))}) = "
        f"{_planned(study, inits, recipes, seeds)} planned runs, {len(study.runs)} evaluated. "
        f"Model: {' / '.join(_number(p) for p in params) or 'unknown'} parameters (from run.json). "
        f"Intervals are {study.ci:.0%} percentile bootstrap CIs with {study.n_boot} resamples, "
        f"drawing seeds and then items within each seed."
    )
    if study.unevaluated:
        text += f" Not yet evaluated, left out: {', '.join(study.unevaluated)}."
    return text


def _loss_blocks(study: Study) -> list[Block]:
    blocks: list[Block] = []
    for recipe in dict.fromkeys(recipe for _, recipe in study.groups()):
        runs = [r for (_, rec), runs in study.groups().items() if rec == recipe for r in runs if r.train_log]
        png = runs_loss_plot(f"Post-training loss: {recipe}", runs)
        if png:
            blocks.append(Plot(f"loss_{re.sub(r'[^A-Za-z0-9_.-]+', '_', recipe)}", f"Training loss, {recipe}", png))
    png = loss_plot("Pre-training loss", [("pretrain", study.pretrain_log, {})]) if study.pretrain_log else None
    if png:
        blocks.append(Plot("pretrain_loss", "Pre-training loss", png))
    if study.base_meta:
        meta_rows = [[k, _number(v)] for k, v in sorted(study.base_meta.items())]
        blocks += [Para("Pre-training (base/meta.json):"), Table(["quantity", "value"], meta_rows)]
    return [Heading("Training loss"), *blocks] if blocks else []


def _contamination_blocks(c: dict) -> list[Block]:
    rows = [[str(p.get("source")), str(p.get("check", f"word {c.get('n')}-gram")), str(p.get("split")),
             _number(p.get("overlapping")), _number(p.get("total")),
             f"{100 * p['overlapping'] / p['total']:.1f}" if p.get("total") else "—"]
            for p in c.get("pairs", [])]  # fmt: skip
    text = "Evaluation items found in each training source: the post-training data by exact question, the "
    text += f"pre-training corpus ({c.get('corpus')}) by shared word {c.get('n')}-gram. Overlapping item ids are "
    text += "listed in data/contamination.json."
    header = ["source", "check", "split", "overlapping", "total", "overlapping (%)"]
    blocks: list[Block] = [Heading("Contamination"), Para(text), Table(header, rows)]
    if c.get("drop"):
        dropped = c.get("dropped") or {}
        listed = "; ".join(f"{split}: {', '.join(ids)}" for split, ids in dropped.items())
        blocks.append(
            Para(
                f"contamination.drop is on: overlapping items were left out of evaluation ({listed})."
                if dropped
                else "contamination.drop is on: no evaluation item overlapped, none dropped."
            )
        )
    return blocks


def build_blocks(study: Study) -> list[Block]:
    """The report's content, in order, as blocks that render_md and render_html both draw from."""
    ci = f"{study.ci:.0%}"
    main = group_estimates(study)
    description = str(study.config.get("description") or "").strip()
    blocks: list[Block] = [Heading(f"postfit study: {study.config.get('name', study.dir.name)}", 1)]
    blocks += [Para(description)] if description else []
    if study.sandbox and study.sandbox.get("weak"):
        missing = ", ".join(study.sandbox.get("missing") or [])
        blocks.append(Para(f"Weak sandbox: model-written code ran without the layers {missing} "
                           "(sandbox.allow_weak / --unsafe-weak-sandbox); see sandbox.json."))  # fmt: skip
    blocks += [
        Para(_summary(study)),
        Heading("Greedy pass@1 (%)"),
        Para(
            f"Rows pool the seeds of one init × recipe: mean over seeds of per-seed accuracy, {ci} CI in brackets, "
            "n = items per split. ID→OOD drop = id_test minus the mean of the ood_* splits, in percentage "
            "points, with the seeds paired."
        ),
        estimate_table(study, main, with_drop=True),
    ]
    # "pass@1" names the greedy metric, so a sampled pass@1 (k=1) gets no table of its own.
    for k in sorted({int(k) for k in (study.config.get("eval") or {}).get("k") or [] if int(k) > 1}):
        est = group_estimates(study, k)
        if est:
            text = f"Unbiased pass@{k} per item from the sampled completions, then pooled as above."
            blocks += [Heading(f"pass@{k} (%)"), Para(text), estimate_table(study, est, with_drop=False)]
    rec = recovery_table(study)
    if rec is not None:
        text = "Random-init greedy pass@1 divided by pretrained greedy pass@1 for the same recipe, on the items and "
        text += f"seeds both share; {ci} CI from a bootstrap paired by seed and item."
        blocks += [Heading("Recovery ratio"), Para(text), rec]
    blocks += _loss_blocks(study)
    blocks += rl_blocks(study)
    if main:
        bars = bar_plot(main, study.splits, study.ci)
        blocks += [Heading("Greedy pass@1 by split"), Plot("pass1_bars", "Greedy pass@1 by split", bars)]
    blocks += scaling_blocks(study)
    if study.contamination:
        blocks += _contamination_blocks(study.contamination)
    # Relative paths: a copied or moved study directory regenerates the identical report.
    text = "Provenance: every number above comes from `runs/*/samples.jsonl` in this directory (loss curves from "
    text += "the stored training logs); regenerate with `postfit report DIR`, DIR being this directory."
    return [*blocks, Para(text)]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Like postfit.io.atomic_write_text, for bytes: the file appears whole or not at all, with 0666 & ~umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Created by os.open with 0o666 rather than mkstemp (0600), so the umask alone sets the permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/report.md (plots in DIR/plots/) and a self-contained DIR/report.html; return their paths."""
    out_dir = Path(out_dir)
    blocks = build_blocks(load_study(out_dir))
    for b in blocks:
        if isinstance(b, Plot):
            _atomic_write_bytes(out_dir / "plots" / f"{b.name}.png", b.png)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, render_md(blocks))
    atomic_write_text(html_path, render_html(blocks))
    log.info("wrote %s and %s", md_path, html_path)
    return md_path, html_path
