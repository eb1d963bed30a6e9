"""Evaluation: batched generation and per-split verdicts (generate.py), and `postfit eval` of any checkpoint on
named benchmarks (benchmarks.py), its results also in lm-eval's JSON layout (lm_eval_json.py).

May import config, verify, analysis.stats, data, models, sandbox and io.
"""
