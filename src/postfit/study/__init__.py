"""A study as a grid of runs and their directories: the runner (runner.py), the grid's runs (grid.py), the locks
that let workers share a directory (locks.py), the checks that keep a run directory trustworthy (integrity.py), the
grid as Ray tasks or Slurm jobs (executors.py), where every run stands (status.py), the study's real data splits
(data.py) and `postfit plan`'s offline estimate (plan.py).

May import config, train, evaluation, verify, analysis, report, data, models, tasks, sandbox and io.
"""
