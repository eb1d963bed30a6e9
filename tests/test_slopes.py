"""The statistics of accuracy against distance (postfit.analysis.slopes): the logistic slope, its bootstrap interval,
the paired difference of two slopes, and the distance bins, on simulated data (seeded, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from postfit.analysis.slopes import (
    binned_accuracy,
    logistic_slope,
    quantile_bins,
    slope_ci,
    slope_diff_ci,
    value_bins,
)


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_the_slope_is_the_maximum_likelihood_one():
    """A binary x has a closed-form fit: the logits of the two groups' accuracies. The ridge moves it by < 0.01."""
    x = np.r_[np.zeros(100), np.ones(100)]
    y = np.r_[np.ones(70), np.zeros(30), np.ones(40), np.zeros(60)]
    a, b = logistic_slope(x, y)
    assert a == pytest.approx(_logit(0.7), abs=0.01) and b == pytest.approx(_logit(0.4) - _logit(0.7), abs=0.01)
    assert logistic_slope(x, y, ridge=0.0) == pytest.approx((_logit(0.7), _logit(0.4) - _logit(0.7)), abs=1e-8)


def test_separable_data_give_a_finite_fit():
    """Every item right, or right exactly below a distance: no finite maximum without the ridge; with it, a finite
    slope of the right sign."""
    x = np.linspace(0, 1, 50)
    for y in (np.ones(50), (x < 0.5).astype(float), np.zeros(50)):
        a, b = logistic_slope(x, y)
        assert np.isfinite(a) and np.isfinite(b) and abs(a) < 100 and abs(b) < 100
    assert logistic_slope(x, (x < 0.5).astype(float))[1] < -10
    assert logistic_slope(x, np.ones(50))[1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        logistic_slope([], [])


def test_the_slope_interval_covers_the_truth():
    """P(correct) = sigmoid(1 - 3 d), 2 seeds x 300 items: the 90% interval holds b = -3 at about its rate."""
    rng = np.random.default_rng(3)
    hits, trials = 0, 60
    for _ in range(trials):
        d = rng.random(300)
        ys = [(rng.random(300) < 1 / (1 + np.exp(-(1 - 3 * d)))).astype(float) for _ in range(2)]
        _, lo, hi = slope_ci([d, d], ys, n_boot=200, ci=0.9, rng=rng)
        hits += lo <= -3 <= hi
    assert 0.8 <= hits / trials <= 0.99


def test_the_paired_difference_and_its_checks():
    rng = np.random.default_rng(4)
    d = rng.random(400)
    arm = lambda a, b: ([d, d], [(rng.random(400) < 1 / (1 + np.exp(-(a + b * d)))).astype(float) for _ in range(2)])  # noqa: E731
    steep, flat = arm(2.0, -4.0), arm(0.5, -0.5)
    est, lo, hi = slope_diff_ci(flat, steep, n_boot=300)
    assert lo <= 3.5 <= hi and lo > 0
    unpaired = slope_diff_ci(flat, steep, n_boot=300, paired=False)
    assert unpaired[0] == est and unpaired[1] <= 3.5 <= unpaired[2]
    assert slope_diff_ci(flat, flat, n_boot=50) == (0.0, 0.0, 0.0)  # one draw for both: identical arms never differ
    with pytest.raises(ValueError, match="same number"):
        slope_diff_ci(flat, ([d[:10]], [d[:10]]), n_boot=10)
    with pytest.raises(ValueError, match="n_boot"):
        slope_ci(*flat, n_boot=0)


def test_quantile_bins_hold_equal_counts_and_keep_ties_together():
    bins = quantile_bins(np.arange(100.0))
    assert np.bincount(bins.of(np.arange(100.0))).tolist() == [20] * 5
    assert bins.centres.tolist() == [9.5, 29.5, 49.5, 69.5, 89.5]
    # 40% of the items at 1.0 (no shared 3-gram), 10% copies at 0: no empty bin, each tie in one bin of its own.
    values = np.r_[np.zeros(10), np.linspace(0.1, 0.9, 50), np.ones(40)]
    bins = quantile_bins(values)
    counts = np.bincount(bins.of(values), minlength=len(bins.centres))
    assert counts.min() > 0 and counts.sum() == 100 and counts[-1] == 40 and bins.centres[-1] == 1.0
    assert counts[0] >= 10 and bins.centres[0] < 0.1
    assert quantile_bins(np.full(7, 0.3)).centres.tolist() == [0.3]  # every distance alike: one bin
    assert value_bins([3, 0, 1, 1, 3]).centres.tolist() == [0, 1, 3]
    assert value_bins([3, 0, 1, 1, 3]).of([0, 1, 1, 3, 3]).tolist() == [0, 1, 1, 2, 2]


def test_binned_accuracy_is_the_mean_per_bin():
    bins = value_bins([0, 1, 2])
    x = [np.array([0, 0, 1, 1, 2, 2.0]), np.array([0, 0, 1, 1, 1, 1.0])]
    y = [np.array([1, 1, 1, 0, 0, 0.0]), np.array([1, 0, 0, 0, 0, 0.0])]
    points = binned_accuracy(bins, x, y, n_boot=100)
    assert [(c, round(e[0], 4), n) for c, e, n in points] == [(0.0, 0.75, 2), (1.0, 0.25, 4), (2.0, 0.0, 2)]
    assert all(lo <= v <= hi for _, (v, lo, hi), _ in points)
