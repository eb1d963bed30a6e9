"""Plots and rendering for the report: matplotlib figures, and the blocks turned into markdown or HTML.

postfit.report decides what the report says (as a list of blocks); this module decides how it looks. Both
outputs are rendered from the same list of blocks, so they cannot disagree.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from postfit.report import Estimate, Run

# ---- blocks: the report's content, as postfit.report builds it -------------------------------------------------


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


def loss_plot(title: str, curves: list[tuple[str, list[dict], dict]]) -> bytes | None:
    """Loss vs step, one line per (label, log rows, matplotlib line style); None when no row holds a loss."""
    fig = _figure()
    ax = fig.subplots()
    drawn = False
    for label, rows, style in curves:
        points = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, lw=1.5, **style)
            drawn = True
    if not drawn:
        return None
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def runs_loss_plot(title: str, runs: list[Run]) -> bytes | None:
    """Loss curves of one recipe's runs: colour says init, line style says seed, so the init comparison stands out."""
    inits, seeds = sorted({r.init for r in runs}), sorted({r.seed for r in runs})
    styles = [{"color": f"C{inits.index(r.init) % 10}", "ls": "- -- : -.".split()[seeds.index(r.seed) % 4]}
              for r in runs]  # fmt: skip
    curves = [(f"{r.init} s{r.seed}", r.train_log, style) for r, style in zip(runs, styles, strict=True)]
    return loss_plot(title, curves)


def bar_plot(est: dict[tuple[str, str], dict[str, Estimate]], splits: list[str], ci: float) -> bytes:
    fig = _figure(max(7.0, 1.8 * len(est)), 4.5)
    ax = fig.subplots()
    x, width = np.arange(len(est)), 0.8 / len(splits)
    for j, split in enumerate(splits):
        cells = [row.get(split) for row in est.values()]
        height = [100 * e.value if e else np.nan for e in cells]
        err = [
            [100 * (e.value - e.lo) if e else 0.0 for e in cells],
            [100 * (e.hi - e.value) if e else 0.0 for e in cells],
        ]
        ax.bar(x + (j - (len(splits) - 1) / 2) * width, height, width, yerr=err, capsize=3, label=split)
    ax.set_xticks(x, [f"{init}\n{recipe}" for init, recipe in est])
    ax.set(ylabel=f"greedy pass@1 (%), {ci:.0%} CI", ylim=(0, 100), title="Greedy pass@1 by init × recipe")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")  # outside: a bar at 100% must not hide under it
    return _png(fig)


# ---- rendering ----------------------------------------------------------------------------------------------------


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


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem}"
    "th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}img{max-width:100%}"
    "code{background:#f3f3f3;padding:0 .2rem}"
)


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
            body.append(
                f'<figure><img alt="{html.escape(b.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(b.title)}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
