"""Math answers as lighteval scores them (the lighteval protocol): math-verify's `parse` and `verify`, configured as
lighteval configures its math metric.

lighteval keeps its own copy of the extraction code that became math-verify (src/lighteval/metrics/utils/
extractive_match_utils.py and math_comparison.py) and never imports math_verify; the two take the same configs. Its
math metric -- `pass_at_k_math` / `avg_at_n_math` in src/lighteval/metrics/metrics.py (v0.13.0), built as
`PassAtK(strip_strings=True, sample_scoring_function=MultilingualExtractiveMatchMetric(language=ENGLISH,
gold_extraction_target=[ExprExtractionConfig(), LatexExtractionConfig()], pred_extraction_target=[the same],
precision=6))` -- scores one completion so (MultilingualExtractiveMatchMetric.compute, dynamic_metrics.py):

- gold and completion stripped (SamplingMetric.preprocess; an empty completion stays "");
- both extracted with the expression and LaTeX configs at lighteval's defaults (a \\boxed{} at priority 55, after
  "final answer is" anchors; its NormalizationConfig with `equations=True`), fallback "first_match" (the first
  matched string is kept even when it does not parse), extraction "any_match", 5 s per parse;
- a gold that yields nothing is compared as its raw text;
- correct when any extracted gold equals any extracted answer (`compare_gold_target(gold, pred, 6,
  timeout_seconds=5)`, i.e. math-verify's `verify(gold, pred, float_rounding=6)`).

open-r1's pinned lighteval (d3da6b9) builds its `math_pass_at_1_{n}n` metrics from the same two extraction configs.
tests/test_lighteval_protocol.py checks this module against lighteval's own code on a corpus of pairs.
"""

from __future__ import annotations

from functools import cache

from postfit.item import Item
from postfit.verify.math import timeout_s


@cache
def extraction_configs() -> tuple:
    """[ExprExtractionConfig(), LatexExtractionConfig()] with lighteval's defaults, which differ from
    math-verify's in two places: the \\boxed{} priority (55, not 50) and `equations=True`."""
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    normalization = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True, nits=True,
                                        boxed="all", equations=True)  # fmt: skip
    return (ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=55, normalization_config=normalization))


def extract(text: str) -> list:
    """What lighteval's math metric extracts from a gold or a completion (math-verify's parse, lighteval's configs)."""
    from math_verify import parse

    return parse(text.strip(), list(extraction_configs()), fallback_mode="first_match", extraction_mode="any_match",
                 parsing_timeout=timeout_s())  # fmt: skip


def equal(gold: str, completion: str) -> tuple[str | None, bool]:
    """(the answer's text as extracted from the completion, or None; whether lighteval's math metric counts
    `completion` correct)."""
    from math_verify import verify

    golds = extract(gold) or [gold.strip()]
    preds = extract(completion)
    correct = bool(preds) and verify(golds, preds, float_rounding=6, timeout_seconds=timeout_s())
    return (str(preds[-1]) if preds else None), bool(correct)  # parse gives [value, its text]


def score(item: Item, completion: str) -> tuple[str | None, float]:
    """(extracted answer, 1.0 or 0.0) of a lighteval-protocol math item (postfit.data.lighteval), against the gold
    lighteval scores it with (`meta["gold"]`: MATH-500's whole solution, AIME's answer)."""
    answer, correct = equal(item.meta["gold"], completion)
    return answer, 1.0 if correct else 0.0
