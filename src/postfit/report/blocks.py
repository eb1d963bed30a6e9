"""The blocks every report section is made of (headings, paragraphs, tables, plots) and the figure helpers.

Sections build lists of blocks from stored files; render.py turns the same list into markdown and HTML, so the two
outputs cannot disagree. matplotlib is imported only in `figure`, with Agg and no pyplot global state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # `code` spans are the only markup
    lead: bool = False  # the headline: set larger in report.html


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    nowrap: bool = False  # cells of numbers and short names: report.html keeps each on one line


@dataclass(frozen=True)
class Drawn:
    """A figure drawn twice: PNG for report.md, SVG for report.html with its series and hover points (svg.py)."""

    png: bytes
    svg: str
    series: list[str]
    points: list[list]  # [x, y, series index, text] in the SVG's coordinates


@dataclass
class Plot:
    name: str  # file stem under plots/
    title: str
    figure: Drawn


@dataclass
class Samples:
    """The report block of the browser: report.md names the files, report.html renders the browser."""

    payload: dict

    @property
    def count(self) -> int:
        return len(self.payload["rows"])


Block = Heading | Para | Table | Plot | Samples


def new_figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def drawn(fig) -> Drawn:
    from postfit.report.svg import figure_svg

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version string: reruns stay identical
    return Drawn(buf.getvalue(), *figure_svg(fig))
