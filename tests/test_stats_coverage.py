"""The report's intervals cover a known truth at roughly their nominal rate on simulated data (seeded, fast).

test_stats.py checks the one-seed bootstrap; these check the two resampling levels (seeds, then items) and the
paired difference between inits, the intervals behind every comparison the report states in words.
"""

from __future__ import annotations

import numpy as np

from postfit.analysis.stats import bootstrap_ci, paired_diff_ci

TRIALS = 200


def test_hierarchical_bootstrap_covers_the_mean_over_seeds_and_items():
    """Seeds differ (each training run has its own accuracy); the target is the mean over runs and items."""
    rng = np.random.default_rng(11)
    p, seed_sd, hits = 0.4, 0.05, 0
    for _ in range(TRIALS):
        run_acc = np.clip(p + seed_sd * rng.standard_normal(8), 0, 1)
        data = [(rng.random(50) < q).astype(float) for q in run_acc]
        _, lo, hi = bootstrap_ci(data, n_boot=300, ci=0.9, rng=rng)
        hits += lo <= p <= hi
    assert 0.8 <= hits / TRIALS <= 0.97  # nominal 0.90; a bootstrap over 8 seeds runs a little narrow


def test_paired_difference_covers_the_true_gap():
    """Two inits scored on the same items: item difficulty is shared, so the pairing matters."""
    rng = np.random.default_rng(12)
    gap, hits, widths = 0.1, 0, []
    for _ in range(TRIALS):
        difficulty = rng.random(80)  # an item is solved when the model's skill exceeds its difficulty + noise
        a = (difficulty + 0.15 * rng.standard_normal(80) < 0.55).astype(float)
        b = (difficulty + 0.15 * rng.standard_normal(80) < 0.45).astype(float)
        est, lo, hi = paired_diff_ci([a], [b], n_boot=300, ci=0.95, rng=rng)
        hits += lo <= gap <= hi
        widths.append(hi - lo)
    assert 0.88 <= hits / TRIALS <= 0.995
    # Pairing pays: an unpaired interval for two independent 80-item means would be about 0.3 wide.
    assert np.mean(widths) < 0.2
