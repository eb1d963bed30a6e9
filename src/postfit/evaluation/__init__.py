"""Evaluation: batched generation and per-split verdicts (generate.py), and `postfit eval` of any checkpoint on
named benchmarks (benchmarks.py).

May import config, verify, analysis.stats, data, models, sandbox and io.
"""
