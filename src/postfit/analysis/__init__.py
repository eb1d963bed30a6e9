"""Analyses of stored results and data: statistics (stats.py: pass@k, bootstrap intervals), effective data
transferred (transfer.py), the learning-to-learn probes (probes.py) and contamination checks (contamination.py).

May import config, verify, evaluation, train (the adaptation probe's SFT), tasks and io.
"""
