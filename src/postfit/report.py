"""Build report.md and a self-contained report.html from a study directory's stored files.

Every number is recomputed from runs/*/samples.jsonl (loss curves from the stored training logs), so the
report can be regenerated at any time and never depends on a live process or on scraped logs. Both outputs
are rendered from the same list of blocks, so they cannot disagree.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from postfit import stats
from postfit.errors import UserError
from postfit.io import atomic_write_text, read_json, read_jsonl

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


@dataclass
class Study:
    dir: Path
    config: dict
    runs: list[Run]
    unevaluated: list[str]  # run directories without samples.jsonl yet
    pretrain_log: list[dict]
    base_meta: dict | None
    contamination: dict | None

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
        for run in sorted(self.runs, key=lambda r: (rank(self.grid("inits"), r.init),
                                                    rank(self.grid("recipes"), r.recipe), r.seed)):
            out.setdefault((run.init, run.recipe), []).append(run)
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
        runs.append(Run(name=meta.get("run", run_dir.name), init=meta["init"], recipe=meta["recipe"],
                        seed=int(meta["seed"]), params=meta.get("params"),
                        samples=read_jsonl(run_dir / "samples.jsonl"),
                        train_log=_maybe(run_dir / "train_log.jsonl", read_jsonl) or []))
    if not runs:
        raise UserError(f"{out_dir}: no run has a samples.jsonl yet; evaluate before reporting")
    return Study(dir=out_dir, config=config, runs=runs, unevaluated=unevaluated,
                 pretrain_log=_maybe(out_dir / "base" / "pretrain_log.jsonl", read_jsonl) or [],
                 base_meta=_maybe(out_dir / "base" / "meta.json", read_json),
                 contamination=_maybe(out_dir / "data" / "contamination.json", read_json))


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
    return stats.drop_ci(_per_seed(usable, "id_test", None), [_per_seed(usable, s, None) for s in ood],
                         study.n_boot, study.ci, np.random.default_rng(BOOT_SEED))


def recovery(study: Study, recipe: str, split: str) -> dict | None:
    """random-init over pretrained greedy pass@1 on the items and seeds both have, paired by seed and item."""
    groups = study.groups()
    rand, pre = groups.get(("random", recipe)), groups.get(("pretrained", recipe))
    if not rand or not pre:
        return None
    seeds = sorted({r.seed for r in rand} & {r.seed for r in pre})
    scores = [[stats.per_item_pass(next(r for r in g if r.seed == s).samples, split) for s in seeds]
              for g in (rand, pre)]
    items = sorted(set.intersection(*(set(d) for g in scores for d in g))) if seeds else []
    if not items:
        return None
    num, den = ([np.array([d[i] for i in items]) for d in g] for g in scores)
    rng = np.random.default_rng(BOOT_SEED)
    return {"ratio": stats.ratio_ci(num, den, study.n_boot, study.ci, rng), "random": np.mean([a.mean() for a in num]),
            "pretrained": np.mean([a.mean() for a in den]), "n": len(items), "seeds": len(seeds)}


# ---- blocks -----------------------------------------------------------------------------------------------------

@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # `code` spans are the only markup


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Plot:
    name: str  # file stem under plots/
    title: str
    png: bytes


Block = Heading | Para | Table | Plot


def _pct(e: tuple[float, float, float], signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * e[0])} [{f.format(100 * e[1])}, {f.format(100 * e[2])}]"


def estimate_table(study: Study, est: dict, with_drop: bool) -> Table:
    splits = [s for s in study.splits if any(s in row for row in est.values())]
    header = ["init", "recipe", "seeds"]
    for split in splits:
        ns = {row[split].n for row in est.values() if split in row}
        header.append(f"{split} (n={ns.pop()})" if len(ns) == 1 else split)
    header += ["ID→OOD drop (pp)"] if with_drop else []
    groups = study.groups()
    rows = []
    for (init, recipe), by_split in est.items():
        cells = [init, recipe, str(max(e.seeds for e in by_split.values()))]
        for split in splits:
            e = by_split.get(split)
            cells.append("—" if e is None else _pct((e.value, e.lo, e.hi)) + ("" if "(n=" in header[len(cells)]
                                                                               else f" (n={e.n})"))
        if with_drop:
            drop = group_drop(study, groups[(init, recipe)])
            cells.append("—" if drop is None else _pct(drop, signed=True))
        rows.append(cells)
    return Table(header, rows)


def recovery_table(study: Study) -> Table | None:
    rows = []
    for recipe in dict.fromkeys(recipe for _, recipe in study.groups()):
        for split in study.splits:
            rec = recovery(study, recipe, split)
            if rec is None:
                continue
            ratio = ("undefined (pretrained score is 0)" if np.isnan(rec["ratio"][0])
                     else "{:.2f} [{:.2f}, {:.2f}]".format(*rec["ratio"]))
            rows.append([recipe, split, f"{100 * rec['random']:.1f}", f"{100 * rec['pretrained']:.1f}", ratio,
                         str(rec["n"]), str(rec["seeds"])])
    header = ["recipe", "split", "random pass@1 (%)", "pretrained pass@1 (%)", "ratio random/pretrained",
              "n items", "seeds"]
    return Table(header, rows) if rows else None


# ---- plots (matplotlib imported only here, rendered with Agg, no pyplot global state) --------------------------

def _figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version string: reruns stay identical
    return buf.getvalue()


def loss_plot(title: str, curves: list[tuple[str, list[dict]]]) -> bytes | None:
    """Loss vs step, one line per (label, log rows); None when no row holds a loss."""
    fig = _figure()
    ax = fig.subplots()
    drawn = False
    for label, rows in curves:
        points = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, lw=1.5)
            drawn = True
    if not drawn:
        return None
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def bar_plot(est: dict[tuple[str, str], dict[str, Estimate]], splits: list[str], ci: float) -> bytes:
    fig = _figure(max(7.0, 1.8 * len(est)), 4.5)
    ax = fig.subplots()
    x, width = np.arange(len(est)), 0.8 / len(splits)
    for j, split in enumerate(splits):
        cells = [row.get(split) for row in est.values()]
        height = [100 * e.value if e else np.nan for e in cells]
        err = [[100 * (e.value - e.lo) if e else 0.0 for e in cells], [100 * (e.hi - e.value) if e else 0.0
                                                                          for e in cells]]
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, height, width, yerr=err, capsize=3, label=split)
    ax.set_xticks(x, [f"{init}\n{recipe}" for init, recipe in est])
    ax.set(ylabel=f"greedy pass@1 (%), {ci:.0%} CI", ylim=(0, 100), title="Greedy pass@1 by init × recipe")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, len(splits)), loc="upper right")
    return _png(fig)


# ---- assembling and rendering ------------------------------------------------------------------------------------

def _number(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else (f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}")


def _summary(study: Study) -> str:
    inits = study.grid("inits") or sorted({r.init for r in study.runs})
    recipes = study.grid("recipes") or sorted({r.recipe for r in study.runs})
    seeds = study.grid("seeds") or sorted({r.seed for r in study.runs})
    params = sorted({r.params for r in study.runs if r.params is not None})
    text = (f"Grid: {len(inits)} inits ({', '.join(map(str, inits))}) × {len(recipes)} recipes "
            f"({', '.join(map(str, recipes))}) × {len(seeds)} seeds ({', '.join(map(str, seeds))}) = "
            f"{len(inits) * len(recipes) * len(seeds)} planned runs, {len(study.runs)} evaluated. "
            f"Model: {' / '.join(_number(p) for p in params) or 'unknown'} parameters (from run.json). "
            f"Intervals are {study.ci:.0%} percentile bootstrap CIs with {study.n_boot} resamples, "
            f"drawing seeds and then items within each seed.")
    if study.unevaluated:
        text += f" Not yet evaluated, left out: {', '.join(study.unevaluated)}."
    return text


def build_blocks(study: Study) -> list[Block]:
    ci = f"{study.ci:.0%}"
    main = group_estimates(study)
    blocks: list[Block] = [
        Heading(f"postfit study: {study.config.get('name', study.dir.name)}", 1), Para(_summary(study)),
        Heading("Greedy pass@1 (%)"),
        Para(f"Rows pool the seeds of one init × recipe: mean over seeds of per-seed accuracy, {ci} CI in brackets, "
             "n = items per split. ID→OOD drop = id_test minus the mean of the ood_* splits, in percentage "
             "points, with the seeds paired."),
        estimate_table(study, main, with_drop=True)]
    for k in sorted({int(k) for k in (study.config.get("eval") or {}).get("k") or [] if int(k) > 1}):
        est = group_estimates(study, k)
        if est:
            blocks += [Heading(f"pass@{k} (%)"),
                       Para(f"Unbiased pass@{k} per item from the sampled completions, then as above."),
                       estimate_table(study, est, with_drop=False)]
    rec = recovery_table(study)
    if rec is not None:
        blocks += [Heading("Recovery ratio"),
                   Para(f"Random-init greedy pass@1 divided by pretrained greedy pass@1 for the same recipe, on the "
                        f"items and seeds both share; {ci} CI from a bootstrap paired by seed and item."), rec]
    blocks += [Heading("Training loss")]
    for recipe in dict.fromkeys(r.recipe for runs in study.groups().values() for r in runs):
        runs = [r for runs in study.groups().values() for r in runs if r.recipe == recipe and r.train_log]
        png = loss_plot(f"Post-training loss: {recipe}", [(f"{r.init} s{r.seed}", r.train_log) for r in runs])
        if png:
            blocks.append(Plot(f"loss_{re.sub(r'[^A-Za-z0-9_.-]+', '_', recipe)}", f"Training loss, {recipe}", png))
    png = loss_plot("Pre-training loss", [("pretrain", study.pretrain_log)]) if study.pretrain_log else None
    if png:
        blocks.append(Plot("pretrain_loss", "Pre-training loss", png))
    if study.base_meta:
        blocks += [Para("Pre-training (base/meta.json):"),
                   Table(["quantity", "value"], [[k, _number(v)] for k, v in sorted(study.base_meta.items())])]
    if main:
        blocks += [Heading("Greedy pass@1 by split"),
                   Plot("pass1_bars", "Greedy pass@1 by split", bar_plot(main, study.splits, study.ci))]
    if study.contamination:
        c = study.contamination
        rows = [[str(p.get("source")), str(p.get("split")), _number(p.get("overlapping")), _number(p.get("total")),
                 f"{100 * p['overlapping'] / p['total']:.1f}" if p.get("total") else "—"] for p in c.get("pairs", [])]
        blocks += [Heading("Contamination"),
                   Para(f"Items sharing an n-gram (n={c.get('n')}) with the other side (corpus: {c.get('corpus')})."),
                   Table(["source", "split", "overlapping", "total", "overlapping (%)"], rows)]
    blocks.append(Para(f"Provenance: every number above comes from `{study.dir}/runs/*/samples.jsonl` (loss "
                       f"curves from the stored training logs); regenerate with `postfit report {study.dir}`."))
    return blocks


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_md(blocks: list[Block]) -> str:
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Table):
            parts.append("\n".join([_md_row(b.header), _md_row(["---"] * len(b.header)), *map(_md_row, b.rows)]))
        else:
            parts.append(f"![{b.title}](plots/{b.name}.png)")
    return "\n\n".join(parts) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem}"
        "th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}img{max-width:100%}"
        "code{background:#f3f3f3;padding:0 .2rem}")


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "postfit report")
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.title)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b.title)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
