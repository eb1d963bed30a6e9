"""The report, from stored files only: what a study directory holds (results.py), the blocks every section is made
of (blocks.py), the sections (main.py, rl.py, scaling.py, probes.py), plots (plots.py), rendering to md and
self-contained html (render.py), and writing both (build.py).

May import analysis, study.grid, study.integrity, errors and io; never a model or a trainer.
"""
