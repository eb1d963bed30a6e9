"""A study's order of work: the runner (runner.py) prepares the data and bases (prepare.py), post-trains each run
by its recipe (posttrain.py), evaluates and probes it, then writes the report; the locks that let workers share a
directory (locks.py), the checks that keep a run directory trustworthy (integrity.py), the executors (executors.py:
this process, worker processes, Ray tasks or Slurm jobs), where every run stands (status.py), the study's real data
splits (data.py) and `postfit plan`'s offline estimate (plan.py).

May import every stage below it in the README's code map: report, probes, train, evaluation, analysis, config,
data, verify, sandbox, models, tasks, layout, ui, distributed, io and errors.
"""
