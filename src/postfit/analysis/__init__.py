"""Analyses of stored results and data, with no model: statistics (stats.py: pass@k, bootstrap intervals),
effective data transferred (transfer.py) and contamination checks (contamination.py).

May import config, data (the pre-training corpus), tasks and io.
"""
