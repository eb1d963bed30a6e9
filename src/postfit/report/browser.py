"""The sample browser of report.html: every stored sample of every run, as data the page's script filters.

Prompts and references are stored once per item, samples refer to them; above `WHOLE_LIMIT` bytes of text a page
holds the first `CLIP` characters of each completion and links the run's samples.jsonl for the rest.
"""

from __future__ import annotations

from pathlib import Path

from postfit.layout import StudyDir
from postfit.report.blocks import Samples
from postfit.report.results import StudyResults

WHOLE_LIMIT = 50 * 2**20  # bytes of prompt and completion text held whole in one page
CLIP = 2000  # characters of each completion kept above that


def samples_block(study: StudyResults) -> Samples:
    """runs: [name, init, recipe, seed, samples file]; items: [split, item id, prompt, reference];
    rows: [run, item, sample (-1 greedy), completion, extracted answer, correct 0/1, stopped 0/1]."""
    runs = [run for group in study.groups().values() for run in group]
    items: dict[tuple[str, str], int] = {}
    payload: dict = {"runs": [], "items": [], "rows": [], "clip": 0}
    for r, run in enumerate(runs):
        link = StudyDir(Path()).run(run).samples.as_posix()  # relative: the page moves with its directory
        payload["runs"].append([run.name, run.init, run.label, run.seed, link])
        for s in run.samples:
            key = (s["split"], str(s["item"]))
            if key not in items:
                items[key] = len(payload["items"])
                payload["items"].append([*key, s.get("prompt") or "", str(s.get("reference", ""))])
            answer = s.get("answer")
            payload["rows"].append([r, items[key], int(s.get("sample", -1)), s.get("completion") or "",
                                    None if answer is None else str(answer), int(bool(s.get("correct"))),
                                    int(bool(s.get("stopped", True)))])  # fmt: skip
    size = sum(len(row[3].encode()) for row in payload["rows"]) + sum(len(i[2].encode()) for i in payload["items"])
    if size > WHOLE_LIMIT:
        payload["clip"] = CLIP
        for row in payload["rows"]:
            row[3] = row[3][:CLIP]
    return Samples(payload)
