"""Rendering: the report's blocks (blocks.py) as markdown and as one self-contained HTML page: plots as inline SVG
with hover values and series toggles, and the sample browser, driven by one embedded script (assets/report.js)
that makes no network request."""

from __future__ import annotations

import html
import json
import re
from importlib import resources

from postfit.report.blocks import Block, Heading, Para, Plot, Samples, Table
from postfit.report.browser import WHOLE_LIMIT

WHOLE_MB = WHOLE_LIMIT >> 20


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
        elif isinstance(b, Plot):
            parts.append(f"![{b.title}](plots/{b.name}.png)")
        else:
            parts.append(
                f"{b.count} stored samples in `runs/*/samples.jsonl`; `report.html` has a browser for them "
                "(filters by run, init, recipe, split and verdict, text search, an item's runs side by side)."
            )
    return "\n\n".join(parts) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0;display:block;max-width:100%;overflow-x:auto}"
    ".pf-nowrap td{white-space:nowrap}.pf-nowrap td:first-child{white-space:normal;min-width:13rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem}"
    "th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}img{max-width:100%}"
    "code{background:#f3f3f3;padding:0 .2rem}"
    ".pf-plot{position:relative}.pf-svg{width:100%;height:auto}.pf-series label{margin-right:.8rem;font-size:.85rem}"
    ".pf-tip{position:absolute;pointer-events:none;background:#222;color:#fff;padding:.2rem .4rem;border-radius:3px;"
    "font-size:.8rem;white-space:nowrap}"
    ".pf-controls{display:flex;flex-wrap:wrap;gap:.4rem;margin:.5rem 0}.pf-controls input[type=search]{flex:1 1 14rem}"
    "#pf-samples pre{white-space:pre-wrap;margin:0;max-width:28rem}.pf-ok{color:#176b1f}.pf-bad{color:#a31515}"
    ".pf-cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.6rem}"
    ".pf-card{border:1px solid #ccc;padding:.4rem}.pf-card h4{margin:0 0 .3rem;font-size:.9rem}"
    "#pf-item{border:2px solid #888;padding:.5rem;margin:1rem 0}.pf-prompt{background:#f7f7f7;padding:.4rem}"
    ".pf-note{font-size:.8rem;color:#555}.pf-lead{font-size:1.15rem;line-height:1.5}"
)


def _svg_ids(svg: str, prefix: str) -> str:
    """Every id of one plot's SVG (and each reference to it) prefixed, so plots on one page never share one."""
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    return re.sub(r'(url\(#|href="#)', rf"\g<1>{prefix}-", svg)


def _json_script(data: object) -> str:
    """JSON that is safe inside a <script> element: no `<` at all."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _plot_html(b: Plot) -> str:
    f = b.figure
    boxes = "".join(f'<label><input type="checkbox" checked data-series="{i}"> {html.escape(label)}</label>'
                    for i, label in enumerate(f.series))  # fmt: skip
    return (f'<figure class="pf-plot" data-name="{html.escape(b.name)}">{_svg_ids(f.svg, b.name)}'
            f'<div class="pf-series">{boxes}</div><div class="pf-tip" hidden></div>'
            f'<script type="application/json" class="pf-points">{_json_script({"points": f.points})}</script>'
            f"<figcaption>{html.escape(b.title)}</figcaption></figure>")  # fmt: skip


def _samples_html(b: Samples) -> str:
    options = {"pf-f-run": "every run", "pf-f-init": "every init", "pf-f-recipe": "every recipe",
               "pf-f-split": "every split"}  # fmt: skip
    selects = "".join(
        f'<select id="{k}" aria-label="{v}"><option value="">{v}</option></select>' for k, v in options.items()
    )
    selects += ('<select id="pf-f-verdict" aria-label="verdict"><option value="">correct and wrong</option>'
                '<option value="correct">correct</option><option value="wrong">wrong</option></select>'
                '<select id="pf-f-sample" aria-label="sample"><option value="">greedy and sampled</option>'
                '<option value="greedy">greedy</option><option value="sampled">sampled</option></select>'
                '<input type="search" id="pf-f-text" placeholder="search prompts and completions">')  # fmt: skip
    clip = b.payload["clip"]
    note = (f"<p>The samples are over {WHOLE_MB} MB: each completion here holds its first {clip} characters; the "
            "item view links the run's samples.jsonl for the rest.</p>" if clip else "")  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in ("run", "split", "item", "sample", "verdict", "answer", "reference",
                                             "completion"))  # fmt: skip
    return (f'<section id="pf-samples"><p>Every stored sample ({b.count}); choose an item to see every run\'s '
            f"completion of it side by side.</p>{note}<div class=\"pf-controls\">{selects}</div>"
            '<p><span id="pf-count"></span> <button type="button" id="pf-prev">previous</button> '
            '<button type="button" id="pf-next">next</button></p><div id="pf-item" hidden></div>'
            f'<table><thead><tr>{head}</tr></thead><tbody id="pf-rows"></tbody></table>'
            '<script type="application/json" id="pf-samples-data">'
            f"{_json_script(b.payload)}</script></section>")  # fmt: skip


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "postfit report")
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f'<p class="pf-lead">{_inline(b.text)}</p>' if b.lead else f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            attrs = ' class="pf-nowrap"' if b.nowrap else ""
            body.append(f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Plot):
            body.append(_plot_html(b))
        else:
            body.append(_samples_html(b))
    script = resources.files("postfit.report").joinpath("assets/report.js").read_text(encoding="utf-8")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + f"\n<script>{script}</script>\n</body></html>\n"
    )
