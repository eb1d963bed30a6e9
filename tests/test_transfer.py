"""Effective data transferred: a known shift between synthetic curves is recovered; curves that never meet say so."""

from __future__ import annotations

import numpy as np
import pytest

from postfit.analysis.transfer import BELOW, FLAT, NOT_REACHED, REACHED, describe, effective_data, fit_batch

NS = [100, 200, 400, 800, 1600, 3200]


def _curve(n: float, shift: float = 1.0) -> float:
    """The 'random-init' truth: sigmoid(1.5 * (ln(n * shift) - ln 1000)); shift = data multiplier of pre-training."""
    return float(1 / (1 + np.exp(-1.5 * (np.log(n * shift) - np.log(1000)))))


def _cells(acc: dict[int, float], items: int, seeds: int, rng: np.random.Generator) -> dict[int, list[np.ndarray]]:
    return {n: [(rng.random(items) < p).astype(float) for _ in range(seeds)] for n, p in acc.items()}


def test_fit_recovers_logistic_parameters():
    x = np.log(np.array(NS, dtype=float))
    trials = np.full(len(NS), 100_000)
    true = 1 / (1 + np.exp(-(0.3 + 1.2 * x - 1.2 * 7)))
    a, b = fit_batch(x, (true * trials).round()[None, :], trials)[0]
    assert b == pytest.approx(1.2, rel=0.01) and a == pytest.approx(0.3 - 1.2 * 7, abs=0.1)


def test_recovers_a_known_shift():
    rng = np.random.default_rng(7)
    shift = 4.0  # pre-training is worth 4x the post-training data: N_eff = 4N, D_T = 3N
    pre = _cells({n: _curve(n, shift) for n in NS}, 2000, 2, rng)
    rand = _cells({n: _curve(n) for n in NS}, 2000, 2, rng)
    t = effective_data(pre, rand, n_boot=300, rng=np.random.default_rng(0))
    assert t.random.b == pytest.approx(1.5, rel=0.1) and t.pretrained.b == pytest.approx(1.5, rel=0.1)
    by_n = {p.n: p for p in t.points}
    for n in (100, 200, 400, 800):  # 4N <= 3200: inside the measured range
        p = by_n[n]
        assert p.status == REACHED, p
        assert p.multiplier == pytest.approx(shift, rel=0.15)
        assert p.transferred == pytest.approx((shift - 1) * n, rel=0.25)
        assert p.lo <= shift * n <= p.hi, p
        # 4 x 800 = 3200 sits on the edge of the range: about half the resamples fall beyond it.
        assert p.reached > (0.9 if n < 800 else 0.3)
    for n in (1600, 3200):  # 4N > 3200: never said to be reached, however good the fit
        assert by_n[n].status == NOT_REACHED and np.isnan(by_n[n].n_eff)
    assert "4." in describe(by_n[400], 0.95) or "3.9" in describe(by_n[400], 0.95)
    assert "not reached within the measured range" in describe(by_n[3200], 0.95)


def test_curves_that_never_meet_are_not_reached():
    rng = np.random.default_rng(3)
    pre = _cells({n: 0.8 for n in NS}, 500, 1, rng)
    rand = _cells({n: 0.05 for n in NS}, 500, 1, rng)  # flat: random init never gets there
    t = effective_data(pre, rand, n_boot=200, rng=np.random.default_rng(0))
    assert all(p.status in (NOT_REACHED, FLAT) for p in t.points)
    assert all(np.isnan(p.n_eff) and np.isinf(p.hi) and p.reached < 0.05 for p in t.points)
    rising = _cells({n: _curve(n) * 0.3 for n in NS}, 500, 1, rng)  # rises but stays far below 80%
    t = effective_data(pre, rising, n_boot=200, rng=np.random.default_rng(0))
    assert all(p.status == NOT_REACHED for p in t.points)


def test_random_init_better_is_below_the_range_and_bands_cover_the_fit():
    rng = np.random.default_rng(5)
    pre = _cells({n: _curve(n) for n in NS}, 1000, 1, rng)
    rand = _cells({n: _curve(n, 8.0) for n in NS}, 1000, 1, rng)  # random init is the better one here
    t = effective_data(pre, rand, n_boot=200, rng=np.random.default_rng(0))
    assert t.points[0].status == BELOW and "no more examples" in describe(t.points[0], 0.95)
    lo, hi = t.bands["random"]
    fitted = t.random.predict(t.grid)
    assert np.all(lo <= fitted + 1e-9) and np.all(fitted <= hi + 1e-9)


def test_rejects_unpaired_cells():
    with pytest.raises(ValueError, match="same number"):
        effective_data({1: [np.ones(3)], 2: [np.ones(3)]}, {1: [np.ones(4)], 2: [np.ones(3)]})
    with pytest.raises(ValueError, match="two or more N"):
        effective_data({1: [np.ones(3)]}, {1: [np.ones(3)]})
