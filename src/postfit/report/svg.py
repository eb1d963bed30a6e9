"""A matplotlib figure as inline SVG for report.html, with what the page's script needs to make it interactive:
the SVG groups of each series (for toggling them) and the position and value of every data point (for hovering).

Nothing is re-plotted: the artists the report's plot functions drew are tagged with SVG ids (matplotlib's `gid`),
and their data points are mapped through the axes' own transforms to the SVG's coordinates.
"""

from __future__ import annotations

import io
import re

import numpy as np

SVG_DPI = 72  # matplotlib's SVG backend: one user unit per point


def _num(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "nan"


def _rgb(color) -> tuple:
    from matplotlib.colors import to_rgb

    try:
        return tuple(round(c, 3) for c in to_rgb(color))
    except (ValueError, TypeError):
        return ()


class _Tagger:
    """Series labels in first-seen order across the figure's panels; gids `pf-s{series}-{n}` on their artists."""

    def __init__(self, fig):
        self.fig, self.labels, self.n, self.pending = fig, [], 0, []

    def series(self, label: str) -> int:
        if label not in self.labels:
            self.labels.append(label)
        return self.labels.index(label)

    def tag(self, artist, s: int) -> None:
        artist.set_gid(f"pf-s{s}-{self.n}")
        self.n += 1

    def point(self, transform, s: int, x: float, y: float, text: str) -> None:
        """A hover point at (x, y) in `transform`'s coordinates (an artist's own: data, or axes for axhline)."""
        self.pending.append((transform, s, x, y, text))

    def points(self) -> list[list]:
        """[x, y, series, text] of every point, through the transforms of the figure's last draw (the SVG's)."""
        height, out = self.fig.get_figheight() * SVG_DPI, []
        for transform, s, x, y, text in self.pending:
            px, py = transform.transform((x, y)) * SVG_DPI / self.fig.dpi
            if np.isfinite(px) and np.isfinite(py):
                out.append([round(float(px), 1), round(float(height - py), 1), s, text])
        return out


def _xtick(ax, x: float) -> str:
    ticks = [(abs(t.get_position()[0] - x), t.get_text()) for t in ax.get_xticklabels() if t.get_text()]
    return min(ticks)[1].replace("\n", " ") if ticks else _num(x)


def _tag_axes(t: _Tagger, ax) -> None:
    from matplotlib.container import BarContainer, ErrorbarContainer

    xlabel, owned, colors = ax.get_xlabel() or "x", set(), {}
    for c in ax.containers:
        label = c.get_label()
        if label.startswith("_"):
            continue
        s = t.series(label)
        if isinstance(c, BarContainer):
            err = c.errorbar.lines[2][0].get_segments() if c.errorbar and c.errorbar.lines[2] else None
            for i, bar in enumerate(c.patches):
                t.tag(bar, s)
                x, h = bar.get_x() + bar.get_width() / 2, bar.get_height()
                ci = f" [{_num(err[i][0][1])}, {_num(err[i][1][1])}]" if err is not None and i < len(err) else ""
                t.point(ax.transData, s, x, h, f"{label} · {_xtick(ax, x)}: {_num(h)}{ci}")
            parts = list(c.errorbar.get_children()) if c.errorbar else []
        elif isinstance(c, ErrorbarContainer):
            data, _, bars = c.lines
            segs = bars[0].get_segments() if bars else []
            for i, (x, y) in enumerate(zip(*data.get_data(), strict=True)):
                ci = f" [{_num(segs[i][0][1])}, {_num(segs[i][1][1])}]" if i < len(segs) else ""
                t.point(ax.transData, s, x, y, f"{label} · {xlabel} {_num(x)}: {_num(y)}{ci}")
            parts = [a for a in c.get_children() if a is not None]
        else:
            continue
        for a in parts:
            t.tag(a, s)
            owned.add(id(a))
    for line in ax.lines:
        label = line.get_label()
        if id(line) in owned or label.startswith("_"):
            continue
        s = t.series(label)
        t.tag(line, s)
        colors.setdefault(_rgb(line.get_color()), s)
        transform = line.get_transform()  # an axhline's x is in axes coordinates: its points name only its level
        for x, y in zip(*line.get_data(), strict=True):
            at = f" · {xlabel} {_num(float(x))}" if transform is ax.transData else ""
            t.point(transform, s, float(x), float(y), f"{label}{at}: {_num(float(y))}")
    for coll in ax.collections:  # confidence bands (fill_between) join the line of their colour
        if id(coll) in owned:
            continue
        face = coll.get_facecolor()
        s = colors.get(_rgb(face[0][:3])) if len(face) else None
        if s is not None:
            t.tag(coll, s)


def figure_svg(fig) -> tuple[str, list[str], list[list]]:
    """(inline SVG markup, series labels, points [x, y, series, text] in the SVG's coordinates) of `fig`.

    Ids are `pf-s{series}-{n}`; the renderer prefixes them per plot. Byte-identical for identical figures.
    """
    from matplotlib import rc_context

    t = _Tagger(fig)
    for ax in fig.axes:  # the gids go on before the SVG is drawn; the points are placed after it
        _tag_axes(t, ax)
    fig.set_dpi(SVG_DPI)  # kept after savefig: the transforms are then the SVG's, laid out by its own draw
    buf = io.StringIO()
    with rc_context({"svg.hashsalt": "postfit", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", dpi=SVG_DPI, metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML declaration or doctype inside HTML
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="pf-svg"', svg, count=1)
    return svg, t.labels, t.points()
