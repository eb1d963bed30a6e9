"""Statistics: the pass@k estimator, bootstrap intervals and the per-run results rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from postfit.analysis.stats import (
    bootstrap_ci,
    crossover_ci,
    curve_ci,
    drop_ci,
    first_crossing,
    paired_diff_ci,
    pass_at_k,
    pass_at_k_curves,
    per_item_pass,
    ratio_ci,
    run_results,
    samples_per_item,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(5, 2, 1, 0.4), (4, 4, 4, 1.0), (5, 0, 3, 0.0), (5, 1, 2, 0.4), (10, 9, 2, 1.0), (4, 2, 4, 1.0)],
)
def test_pass_at_k_exact(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(6, 2, 3), (7, 3, 2), (8, 1, 5), (5, 4, 1), (9, 0, 4)])
def test_pass_at_k_matches_subset_enumeration(n: int, c: int, k: int) -> None:
    correct = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(correct[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_large_n_is_stable() -> None:
    # The literal binomial formula overflows floats here; the product form must not.
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5)
    assert math.isfinite(pass_at_k(5000, 10, 100))


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 4, 1), (3, 1, 0)])
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_bootstrap_ci_covers_true_mean_at_nominal_rate() -> None:
    rng = np.random.default_rng(123)
    p, hits, trials = 0.3, 0, 200
    for _ in range(trials):
        data = (rng.random(60) < p).astype(float)
        _, lo, hi = bootstrap_ci([data], n_boot=400, ci=0.95, rng=rng)
        hits += lo <= p <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_ci_point_estimate_and_determinism() -> None:
    seeds = [np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0])]
    est, lo, hi = bootstrap_ci(seeds)
    assert est == pytest.approx((0.75 + 0.0) / 2)  # mean of per-seed means, not of pooled items
    assert lo <= est <= hi
    assert bootstrap_ci(seeds) == (est, lo, hi)  # default rng is seeded


def test_bootstrap_ci_widens_with_seed_variance() -> None:
    rng = np.random.default_rng(0)
    items = (rng.random(100) < 0.5).astype(float)
    same = [items, items, items]
    spread = [np.clip(items + d, 0, 1) for d in (-0.4, 0.0, 0.4)]
    _, lo1, hi1 = bootstrap_ci(same)
    _, lo2, hi2 = bootstrap_ci(spread)
    assert hi2 - lo2 > 1.5 * (hi1 - lo1)


def test_paired_diff_narrower_than_unpaired_when_correlated() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(200) < 0.5).astype(float)
    b = a.copy()
    b[rng.choice(200, 10, replace=False)] = 0.0  # b = a with a few extra failures: strongly correlated
    est, lo, hi = paired_diff_ci([a], [b])
    unpaired_est, ulo, uhi = drop_ci([a], [[b]])  # items resampled independently per condition
    assert est == pytest.approx(a.mean() - b.mean()) == pytest.approx(unpaired_est)
    assert lo <= est <= hi
    assert hi - lo < 0.5 * (uhi - ulo)


def test_paired_diff_rejects_misaligned_items() -> None:
    with pytest.raises(ValueError):
        paired_diff_ci([np.ones(3)], [np.ones(4)])


def test_ratio_ci_value_and_zero_denominator() -> None:
    num, den = [np.array([1.0, 0.0, 1.0, 0.0])], [np.array([1.0, 1.0, 1.0, 0.0])]
    est, lo, hi = ratio_ci(num, den)
    assert est == pytest.approx(0.5 / 0.75)
    assert lo <= est <= hi
    assert all(math.isnan(x) for x in ratio_ci([np.ones(5)], [np.zeros(5)]))
    # Most resamples of a single success among 30 have a zero denominator: they are dropped, not inf.
    est, lo, hi = ratio_ci([np.r_[1.0, np.zeros(29)]], [np.r_[1.0, np.zeros(29)]])
    assert est == 1.0 and lo == 1.0 and hi == 1.0


def _rows(split: str, item: str, greedy: bool, sampled: list[bool]) -> list[dict]:
    out = [{"split": split, "item": item, "sample": -1, "correct": greedy}]
    return out + [{"split": split, "item": item, "sample": j, "correct": c} for j, c in enumerate(sampled)]


def test_run_results_rows() -> None:
    samples = (
        _rows("ood_harder", "x", True, [True, False])
        + _rows("ood_harder", "y", False, [False, False])
        + _rows("id_test", "a", True, [True, True, False, False])
        + _rows("id_test", "b", False, [False] * 4)
        + _rows("zzz", "q", True, [])
        + _rows("alpha", "q", False, [])
    )
    run = {"run": "pretrained-sft-s0", "init": "pretrained", "recipe": "sft", "seed": 0, "params": 10}
    rows = run_results(run, samples, ks=[1, 2, 4], n_boot=200, ci=0.95)
    got = [(r["split"], r["metric"]) for r in rows]
    assert got == [
        ("id_test", "pass@1"), ("id_test", "pass@2"), ("id_test", "pass@4"),
        ("ood_harder", "pass@1"), ("ood_harder", "pass@2"),  # only 2 samples per item: no pass@4
        ("alpha", "pass@1"), ("zzz", "pass@1"),
    ]  # fmt: skip
    by = {(r["split"], r["metric"]): r for r in rows}
    assert by["id_test", "pass@1"]["value"] == pytest.approx(0.5)
    assert by["id_test", "pass@2"]["value"] == pytest.approx((1 - 1 / 6 + 0) / 2)
    assert by["id_test", "pass@4"]["value"] == pytest.approx(0.5)
    assert by["ood_harder", "pass@2"]["value"] == pytest.approx(0.5)
    for r in rows:
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
        assert {k: r[k] for k in ("run", "init", "recipe", "seed")} == {
            k: run[k] for k in ("run", "init", "recipe", "seed")
        }
    assert by["id_test", "pass@1"]["n"] == 2 and by["zzz", "pass@1"]["n"] == 1


def test_per_item_helpers_and_duplicates() -> None:
    samples = _rows("id_test", "a", True, [True, False, False]) + _rows("id_test", "b", False, [True, True, True])
    assert per_item_pass(samples, "id_test") == {"a": 1.0, "b": 0.0}
    assert per_item_pass(samples, "id_test", 1) == pytest.approx({"a": 1 / 3, "b": 1.0})
    assert samples_per_item(samples, "id_test") == 3
    assert samples_per_item(samples, "ood_family") == 0
    with pytest.raises(ValueError, match="two greedy"):
        per_item_pass(samples + _rows("id_test", "a", False, []), "id_test")


def test_steps_to_threshold_is_the_first_m_reaching_it_with_a_bootstrap_interval():
    """Accuracy 0, then 30%, then 70%, then 100% over m = 0, 10, 40, 160: 50% is first reached at m = 40 (every
    resample agrees: 30% and 70% are far apart for 200 items), 30% at 10 or 40 by resample, 100% at 160; a level no
    m reaches is inf."""
    import numpy as np

    from postfit.analysis.stats import steps_to_threshold

    n = 200
    ramp = {m: [(np.arange(n) < p * n).astype(float)] * 2 for m, p in ((0, 0), (10, 0.3), (40, 0.7), (160, 1.0))}
    assert steps_to_threshold(ramp, 0.5, 500, 0.95) == (40.0, 40.0, 40.0)
    m, lo, hi = steps_to_threshold(ramp, 0.3, 500, 0.95)
    assert m == 10.0 and lo == 10.0 and hi == 40.0
    assert steps_to_threshold(ramp, 1.0, 500, 0.95)[0] == 160.0
    flat = {0: [np.zeros(10)], 10: [np.zeros(10)]}
    assert steps_to_threshold(flat, 0.5, 100, 0.95) == (np.inf, np.inf, np.inf)


def test_pass_at_k_curve_by_hand() -> None:
    """n = 5 samples, c = 2 correct: pass@k = 1 - C(3, k) / C(5, k) = 2/5, 1 - 3/10, 1 - 1/10, 1, 1; n = 4, c = 1:
    k/4. The study's curve is the mean over items, then over seeds: (mean of seed 0's two items + seed 1's) / 2."""
    rows = _rows("id_test", "a", False, [True, False, True, False, False])
    rows += _rows("id_test", "b", True, [False, True, False, False])
    rows += _rows("ood_near", "a", False, [True])  # another split, not read
    curves = pass_at_k_curves(rows, "id_test")
    assert set(curves) == {"a", "b"}
    assert curves["a"] == pytest.approx([0.4, 0.7, 0.9, 1.0, 1.0], abs=1e-12)
    assert curves["b"] == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=1e-12)
    seed0 = np.array([curves["a"][:4], curves["b"]])
    seed1 = np.array([[0.0, 0.0, 0.0, 0.0]])
    est = curve_ci([seed0, seed1], n_boot=200)
    assert [e[0] for e in est] == pytest.approx([(0.325 + 0) / 2, (0.6 + 0) / 2, (0.825 + 0) / 2, (1.0 + 0) / 2])
    assert all(lo <= v <= hi for v, lo, hi in est)


def test_first_crossing_counts_ties_and_reports_none_as_k_plus_one() -> None:
    after = np.array([[0.5, 0.5, 0.9], [0.6, 0.7, 0.95], [0.7, 0.8, 0.99]])  # columns: three curve pairs, K = 3
    before = np.array([[0.2, 0.5, 0.1], [0.6, 0.9, 0.2], [0.9, 0.9, 0.3]])
    assert first_crossing(after, before).tolist() == [2, 1, 4]  # level at k = 2 (a tie), at k = 1, never


def test_crossover_ci_known_k_and_no_crossover() -> None:
    """Two seeds of 200 items, 8 samples each. Post-trained: half the items 6 of 8 right, half 0; start: every item 2
    of 8. Their pass@k: 0.375 vs 0.25 (k = 1), 0.482 vs 0.464 (k = 2), 0.5 vs 0.643 (k = 3): the start catches up at
    k = 3. A start that never answers (c = 0) is never reached: infinity, and no resample crosses."""
    post = [np.array([[pass_at_k(8, 6 if (i + s) % 2 else 0, k) for k in range(1, 9)] for i in range(200)])
            for s in range(2)]  # fmt: skip
    start = [np.array([[pass_at_k(8, 2, k) for k in range(1, 9)] for _ in range(200)]) for _ in range(2)]
    (k, lo, hi), share = crossover_ci(post, start, n_boot=500)
    assert k == 3 and lo <= 3 <= hi and hi < math.inf and share == 1.0
    zero = [np.zeros((200, 8)) for _ in range(2)]
    assert crossover_ci(post, zero, n_boot=200) == ((math.inf, math.inf, math.inf), 0.0)
    with pytest.raises(ValueError, match="same items"):
        crossover_ci(post, [a[:100] for a in start])
