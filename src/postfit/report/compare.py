"""`postfit compare`: one page and one markdown file comparing studies that share evaluation splits.

Each study is read from its stored files only (results.load_study), as the report reads it. The page holds the
studies' greedy pass@1 tables side by side on the splits they share, and for every init × recipe two studies both
have, the difference to the first study with a bootstrap interval paired by seed and item. Items pair only where
both studies stored the same prompt and reference under the same id: a study built from other data pairs nothing.
Where studies store distances to their post-training data, one figure overlays their accuracy-against-distance curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from postfit.analysis import stats
from postfit.errors import UserError
from postfit.report.blocks import Block, Heading, Para, Plot, Table
from postfit.report.build import write_pages
from postfit.report.distance import distance_curves
from postfit.report.headline import TEXT_DISTANCE, Comparison
from postfit.report.main import pct
from postfit.report.plots import Curve, bar_plot, curves_plot, paired_styles
from postfit.report.results import (
    BOOT_SEED,
    RunResults,
    StudyResults,
    group_drop,
    group_estimates,
    load_study,
    pair_by_seed_and_item,
)


def load_studies(dirs: list[Path]) -> list[StudyResults]:
    if len(dirs) < 2:
        raise UserError(f"postfit compare needs at least two study directories, got {len(dirs)}")
    seen: dict[Path, Path] = {}
    for d in dirs:
        if Path(d).resolve() in seen:
            raise UserError(f"{d}: given twice (also as {seen[Path(d).resolve()]}); compare distinct studies")
        seen[Path(d).resolve()] = Path(d)
    return [load_study(Path(d)) for d in dirs]


def labels(studies: list[StudyResults]) -> list[str]:
    """Each study's name (study.yaml), or its directory where names clash, or its path where those clash too."""
    for label in (lambda s: str(s.config.get("name") or s.dir.name), lambda s: s.dir.name, lambda s: str(s.dir)):
        names = [label(s) for s in studies]
        if len(set(names)) == len(names):
            return names
    return [str(s.dir.resolve()) for s in studies]


def split_protocols(study: StudyResults, split: str) -> set[str]:
    return {stats.protocol(r.samples, split) for r in study.runs if any(row["split"] == split for row in r.samples)}


def shared_splits(studies: list[StudyResults], names: list[str]) -> tuple[list[str], list[str]]:
    """(the splits every study evaluated under one and the same protocol, notes on those left out because their
    protocols differ: a greedy pass@1 and lighteval's mean over n samples are not compared)."""
    splits = set.intersection(*(set(s.splits) for s in studies))
    if not splits:
        listed = "; ".join(f"{n}: {', '.join(s.splits)}" for n, s in zip(names, studies, strict=True))
        raise UserError(f"the studies share no evaluation split ({listed}); compare studies evaluated on one split")
    notes = []
    for split in sorted(splits, key=stats.split_sort_key):
        protocols = [split_protocols(s, split) for s in studies]
        if len(set.union(*protocols)) > 1:
            splits.discard(split)
            said = ", ".join(f"{n}: {'/'.join(sorted(p))}" for n, p in zip(names, protocols, strict=True))
            notes.append(f"{split} is left out: evaluated under different protocols ({said}).")
    if not splits:
        raise UserError("the studies share no split evaluated under one protocol: " + " ".join(notes))
    return sorted(splits, key=stats.split_sort_key), notes


def _greedy(runs: list[RunResults], split: str) -> dict[int, dict[str, tuple[float, tuple[str, str]]]]:
    """seed -> item -> (pass@1 score, (prompt, reference)) on `split` (greedy; lighteval's protocol: the mean of n)."""
    out: dict[int, dict[str, tuple[float, tuple[str, str]]]] = {}
    for run in runs:
        text = {str(r["item"]): (r.get("prompt") or "", str(r.get("reference", ""))) for r in run.samples
                if r["split"] == split}  # fmt: skip
        out[run.seed] = {i: (score, text[i]) for i, score in stats.per_item_pass(run.samples, split).items()}
    return out


def matched_difference(a: list[RunResults], b: list[RunResults], split: str, n_boot: int, ci: float) -> dict:
    """b minus a greedy pass@1, paired by seed and by items holding the same prompt and reference on both sides:
    {"diff": (est, lo, hi) or None, "n", "seeds", "differing": shared ids whose prompt or reference differ}."""
    ga, gb = _greedy(a, split), _greedy(b, split)
    differing = {i for s in set(ga) & set(gb) for i in set(ga[s]) & set(gb[s]) if ga[s][i][1] != gb[s][i][1]}
    scores = [{s: {i: v[0] for i, v in items.items() if i not in differing} for s, items in g.items()}
              for g in (gb, ga)]  # fmt: skip
    paired = pair_by_seed_and_item(*scores)
    if paired is None:
        return {"diff": None, "n": 0, "seeds": 0, "differing": len(differing)}
    first, second, n, seeds = paired
    diff = stats.paired_diff_ci(first, second, n_boot, ci, np.random.default_rng(BOOT_SEED))
    return {"diff": diff, "n": n, "seeds": seeds, "differing": len(differing)}


def side_by_side(studies: list[StudyResults], names: list[str], splits: list[str]) -> tuple[Table, dict]:
    """One greedy pass@1 table over every study's init × recipe rows; also the estimates keyed for the bar plot."""
    header = ["study", "init", "recipe", "seeds", *splits, "ID→OOD drop (pp)"]
    rows, bars = [], {}
    for name, study in zip(names, studies, strict=True):
        groups = study.groups()
        for (init, recipe), by_split in group_estimates(study).items():
            cells = [name, init, recipe, str(max(e.seeds for e in by_split.values()))]
            for split in splits:
                e = by_split.get(split)
                cells.append("—" if e is None else f"{pct((e.value, e.lo, e.hi))} (n={e.n})")
            drop = group_drop(study, groups[(init, recipe)])
            rows.append([*cells, "—" if drop is None else pct(drop, signed=True)])
            bars[(f"{name}: {init}", recipe)] = {s: e for s, e in by_split.items() if s in splits}
    return Table(header, rows), bars


def differences(studies: list[StudyResults], names: list[str], splits: list[str]) -> tuple[Table, list[str], list]:
    """Every later study minus the first, for each init × recipe both have, on each shared split: the table, its
    notes, and the same differences as comparisons (postfit.report.headline) for the headline."""
    base, base_groups = studies[0], studies[0].groups()
    header = ["comparison", "init", "recipe", "split", "difference (pp)", "n items", "seeds"]
    rows, notes, comps = [], [], []
    for name, study in zip(names[1:], studies[1:], strict=True):
        for key, runs in study.groups().items():
            if key not in base_groups:
                notes.append(f"{name} has {key[0]} × {key[1]}, which {names[0]} has not: no difference for it.")
                continue
            for split in splits:
                d = matched_difference(base_groups[key], runs, split, base.n_boot, base.ci)
                cell = "— (no item and seed in common)" if d["diff"] is None else pct(d["diff"], signed=True)
                rows.append([f"{name} − {names[0]}", *key, split, cell, str(d["n"]), str(d["seeds"])])
                if d["diff"] is not None:
                    comps.append(Comparison("study", f"{name} − {names[0]}", f"{key[0]} + {key[1]}", key[1], split,
                                            d["diff"], d["n"], d["seeds"], better=name, worse=names[0]))  # fmt: skip
                if d["differing"]:
                    where = f"{name} vs {names[0]}, {key[0]} × {key[1]}, {split}"
                    notes.append(f"{where}: {d['differing']} item ids hold a different prompt or reference in the "
                                 "two studies and are left out.")  # fmt: skip
    return Table(header, rows), notes, comps


def compare_headline(comps: list[Comparison]) -> list[str]:
    """One sentence per later study (at most three): its largest difference to the first study whose interval
    excludes zero, and how many of its differences do; or that none does, naming the largest estimate."""
    out = []
    for quantity in list(dict.fromkeys(c.quantity for c in comps))[:3]:
        mine = [c for c in comps if c.quantity == quantity]
        supported = [c for c in mine if c.supported]
        top = max(supported or mine, key=lambda c: abs(c.est[0]))
        where = f"{top.text()} for {top.subject} on {top.split}"
        if supported:
            out.append(f"{quantity}: {len(supported)} of {len(mine)} differences exclude zero; the largest is {where} "
                       f"({top.verdict()}).")  # fmt: skip
        else:
            out.append(f"{quantity}: no detectable difference on any shared split (the largest estimate, {where}, "
                       "has an interval that reaches zero).")  # fmt: skip
    return out


def distance_overlay(studies: list[StudyResults], names: list[str]) -> list[Block]:
    """Greedy pass@1 against text distance, one panel per recipe, one line per study × init; nothing when no study
    stores distances."""
    panels: dict[str, list[Curve]] = {}
    groups: dict[str, tuple[str, str]] = {}
    for name, study in zip(names, studies, strict=True):
        for (init, recipe), (_, x, est) in distance_curves(study, TEXT_DISTANCE).items():
            panels.setdefault(f"after {recipe}", []).append((f"{name}: {init}", x, est))
            groups[f"{name}: {init}"] = (name, init)
    if not panels:
        return []
    title, styles = "Accuracy against distance, by study", paired_styles(groups)
    figure = curves_plot(panels, "text distance to the post-training data", "greedy pass@1 (%)", title,
                         xscale="linear", styles=styles, min_width=8.0)  # fmt: skip
    text = ("Greedy pass@1 against each item's text distance to its run's post-training data, one panel per recipe, "
            "one line per study × init: each study's items binned on its own pooled distances, with its own CIs; "
            "each study's report states the slopes.")  # fmt: skip
    return [Plot("compare_distance", "Greedy pass@1 against distance to the post-training data", figure), Para(text)]


def compare_blocks(studies: list[StudyResults]) -> list[Block]:
    names = labels(studies)
    splits, left_out = shared_splits(studies, names)
    base = studies[0]
    listing = Table(["study", "directory", "evaluated runs", "splits"],
                    [[n, str(s.dir), str(len(s.runs)), ", ".join(s.splits)]
                     for n, s in zip(names, studies, strict=True)])  # fmt: skip
    main, bars = side_by_side(studies, names, splits)
    diff, notes, comps = differences(studies, names, splits)
    ci = f"{base.ci:.0%}"
    sentences = compare_headline(comps)
    blocks: list[Block] = [Heading(f"postfit comparison: {' vs '.join(names)}", 1)]
    blocks += [Para(" ".join(sentences), lead=True)] if sentences else []
    if bars:
        blocks += [Plot("compare_pass1", "Greedy pass@1 by study, init × recipe", bar_plot(bars, splits, base.ci))]
    blocks += distance_overlay(studies, names)
    blocks += [
        Heading(f"Differences to {names[0]} (pp)"),
        Para(
            f"Each later study minus {names[0]}, greedy pass@1 in percentage points, for the init × recipe rows "
            f"both have: {ci} CI from a bootstrap ({base.n_boot} resamples) paired by seed and by item, on the "
            "seeds both ran and the items both evaluated with the same prompt and reference."
        ),  # fmt: skip
        diff,
        *[Para(n) for n in [*left_out, *notes]],
        Heading("Studies"),
        listing,
        Heading("Greedy pass@1 (%)"),
        Para(
            f"On the splits every study has ({', '.join(splits)}). Each row pools the seeds of one init × recipe of "
            f"one study, with its own bootstrap CI ({ci} unless that study's report settings differ); ID→OOD drop "
            "= id_test minus the mean of the ood_* splits of that study."
        ),  # fmt: skip
        main,
    ]
    dirs = " ".join(str(s.dir) for s in studies)
    blocks.append(Para(f"Provenance: every number above comes from the studies' `runs/*/samples.jsonl`; regenerate "
                       f"with `postfit compare {dirs} --out DIR`."))  # fmt: skip
    return blocks


def write_comparison(dirs: list[Path], out_dir: Path) -> tuple[Path, Path]:
    """Write OUT/compare.md (its plot in OUT/plots/) and a self-contained OUT/compare.html; return their paths."""
    blocks = compare_blocks(load_studies(dirs))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out is a file; give a directory")
    return write_pages(blocks, out_dir, "compare")
