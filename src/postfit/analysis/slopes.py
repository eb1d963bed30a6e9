"""Accuracy against distance to the post-training data: a logistic slope per arm, its bootstrap interval, the
difference of slopes between two arms, and accuracy per distance bin.

The slope is a logistic regression of greedy correctness (0/1) on distance, P(correct) = sigmoid(a + b x), fitted by
Newton-Raphson on all of an arm's (seed, item) rows at once: b is the change in log-odds of a right answer per unit
of distance (negative: accuracy falls away from the training data). A small ridge penalty, RIDGE/2 (a^2 + b^2) with
x centred, keeps the fit finite when the data are separable (every item right, or right exactly below some
distance), where the unpenalised maximum lies at infinity; with a few hundred rows it moves a non-separable fit by
far less than its interval.

Intervals are the hierarchical percentile bootstrap of postfit.analysis.stats: draw seeds with replacement, then
items within each drawn seed, refit on every resample. Two arms scored on the same seeds and items (pre-trained and
random init after one recipe) share both draws, so their difference of slopes is paired by seed and item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postfit.analysis import stats

RIDGE = 1e-2  # a N(0, 1/RIDGE) prior on the centred intercept and the slope: sd 10 log-odds, flat where data speak
BINS = 5  # distance bins of about equal item counts
CHUNK = 128  # bootstrap resamples fitted at once (bounds memory: CHUNK x seeds x items floats per array)
MAX_STEP = 5.0  # largest Newton step per coefficient: a separable start cannot overshoot into overflow

Arm = tuple[list[np.ndarray], list[np.ndarray]]  # (distances per seed, 0/1 correctness per seed), items aligned


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_rows(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = RIDGE, iters: int = 100) -> np.ndarray:
    """Penalised maximum-likelihood (a, b) of sigmoid(a + b x) for each row of x, y, w (shape (B, n), or broadcast
    to it); (B, 2).

    `w` weighs each observation (0 drops a padded one; y = successes / trials with w = trials is a binomial).
    Newton-Raphson (IRLS) on the log-likelihood minus ridge/2 (a_c^2 + b^2), a_c the intercept at the row's weighted
    mean x, from zero; the ridge makes the objective strictly concave with a finite maximum, and clipping each step
    to MAX_STEP keeps a separable row from overshooting. A row not converged after `iters` keeps its last iterate.
    """
    x, y, w = np.broadcast_arrays(*(np.atleast_2d(np.asarray(v, dtype=float)) for v in (x, y, w)))
    centre = (w * x).sum(1) / np.maximum(w.sum(1), 1e-12)
    xc = x - centre[:, None]
    a, b = np.zeros(len(x)), np.zeros(len(x))
    for _ in range(iters):
        p = sigmoid(a[:, None] + b[:, None] * xc)
        r, v = w * (y - p), w * p * (1 - p)
        g0, g1 = r.sum(1) - ridge * a, (r * xc).sum(1) - ridge * b
        h00, h01, h11 = v.sum(1) + ridge, (v * xc).sum(1), (v * xc * xc).sum(1) + ridge
        det = h00 * h11 - h01**2
        da = np.clip((h11 * g0 - h01 * g1) / det, -MAX_STEP, MAX_STEP)
        db = np.clip((h00 * g1 - h01 * g0) / det, -MAX_STEP, MAX_STEP)
        a, b = a + da, b + db
        if np.max(np.abs(da) + np.abs(db)) < 1e-9:
            break
    return np.stack([a - b * centre, b], axis=1)


def logistic_slope(x, y, ridge: float = RIDGE) -> tuple[float, float]:
    """(intercept, slope) of the logistic regression of y (0/1) on x, with the ridge of this module's docstring."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size != y.size or x.size == 0:
        raise ValueError(f"need as many x as y and at least one, got {x.size} and {y.size}")
    a, b = fit_rows(x[None], y[None], np.ones((1, x.size)), ridge)[0]
    return float(a), float(b)


def _padded(values_by_seed: list[np.ndarray]) -> np.ndarray:
    n_max = max(v.size for v in values_by_seed)
    return np.stack([np.pad(v, (0, n_max - v.size)) for v in values_by_seed])


def _resample(xs: list[np.ndarray], ys: list[np.ndarray], seeds: np.ndarray, u: np.ndarray):
    """The rows (x, y, weight), each (rows, n_seeds * n_max), of the resamples whose drawn seeds are `seeds` (rows,
    n_seeds) and whose items are drawn by the uniforms `u` (rows, n_seeds, n_max); padding weighs 0."""
    sizes = np.array([x.size for x in xs])
    n = sizes[seeds][..., None]
    idx = np.minimum((u * n).astype(int), n - 1)
    x, y = _padded(xs)[seeds[..., None], idx], _padded(ys)[seeds[..., None], idx]
    w = (np.arange(u.shape[-1]) < n).astype(float)
    return (v.reshape(len(seeds), -1) for v in (x, y, w))


def _checked(xs_by_seed, ys_by_seed) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs = stats.checked(xs_by_seed, "x_by_seed")
    ys = stats.checked(ys_by_seed, "y_by_seed")
    if len(xs) != len(ys) or any(a.size != b.size for a, b in zip(xs, ys, strict=True)):
        raise ValueError("x and y need the same number of seeds and of items per seed")
    return xs, ys


def _boot_slopes(arms: list[Arm], n_boot: int, rng: np.random.Generator, paired: bool) -> np.ndarray:
    """Bootstrap slopes, shape (len(arms), n_boot). `paired`: one seed and item draw for every arm, which then
    needs the same number of seeds and of items per seed; else each arm draws its own."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    out = np.zeros((len(arms), n_boot))
    for start in range(0, n_boot, CHUNK):
        rows, draw = min(CHUNK, n_boot - start), None
        for i, (xs, ys) in enumerate(arms):
            if draw is None or not paired:
                n_seeds, n_max = len(xs), max(x.size for x in xs)
                draw = rng.integers(0, n_seeds, size=(rows, n_seeds)), rng.random((rows, n_seeds, n_max))
            out[i, start : start + rows] = fit_rows(*_resample(xs, ys, *draw))[:, 1]
    return out


def _pooled_slope(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    return logistic_slope(np.concatenate(xs), np.concatenate(ys))[1]


def slope_ci(
    x_by_seed: list[np.ndarray],
    y_by_seed: list[np.ndarray],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(slope, lo, hi): the logistic slope of correctness on distance over every seed's items, with a hierarchical
    percentile bootstrap interval (seeds, then items within each seed, refitted each time)."""
    xs, ys = _checked(x_by_seed, y_by_seed)
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_slopes([(xs, ys)], n_boot, rng, paired=True)[0]
    return (_pooled_slope(xs, ys), *stats.percentile_interval(dist, ci))


def slope_diff_ci(
    a: Arm, b: Arm, n_boot: int = 1000, ci: float = 0.95, rng: np.random.Generator | None = None, paired: bool = True
) -> tuple[float, float, float]:
    """(slope(a) - slope(b), lo, hi) for two arms given as (x_by_seed, y_by_seed). `paired`: the arms hold the same
    items in the same order per seed (one draw for both); else each arm is resampled on its own."""
    arms = [_checked(*a), _checked(*b)]
    if paired:
        stats.checked_pairs(arms[0][0], arms[1][0])
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_slopes(arms, n_boot, rng, paired)
    return (_pooled_slope(*arms[0]) - _pooled_slope(*arms[1]), *stats.percentile_interval(dist[0] - dist[1], ci))


@dataclass(frozen=True)
class Bins:
    """Distance bins: bin i holds edges[i] <= x < edges[i + 1], the last one its right edge too; `centres` is the
    mean pooled distance in each bin (where its points are drawn)."""

    edges: np.ndarray
    centres: np.ndarray

    def of(self, x) -> np.ndarray:
        """The bin of each x."""
        return np.clip(np.searchsorted(self.edges, np.asarray(x, dtype=float), "right") - 1, 0, len(self.centres) - 1)


def _bins(pooled: np.ndarray, left: np.ndarray) -> Bins:
    edges = np.append(left, pooled.max())
    inside = np.clip(np.searchsorted(edges, pooled, "right") - 1, 0, len(left) - 1)
    return Bins(edges, np.array([pooled[inside == i].mean() for i in range(len(left))]))


def quantile_bins(pooled, bins: int = BINS) -> Bins:
    """Up to `bins` bins of about equal counts: bin j starts at the pooled value of rank j * n / bins. Those starts
    are data values and tied ones merge, so a value shared by many items keeps them in one bin and no bin is empty
    (there are then fewer, unequal bins)."""
    values = np.sort(np.asarray(pooled, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("no distances to bin")
    starts = values[(np.arange(bins) * values.size) // bins]
    return _bins(values, np.unique(starts))


def value_bins(pooled) -> Bins:
    """One bin per distinct value (an integer distance such as the structural one)."""
    values = np.asarray(pooled, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("no distances to bin")
    return _bins(values, np.unique(values))


def binned_accuracy(
    bins: Bins, x_by_seed: list[np.ndarray], y_by_seed: list[np.ndarray], n_boot: int = 1000, ci: float = 0.95
) -> list[tuple[float, tuple[float, float, float], int]]:
    """(bin centre, (mean, lo, hi), items) per bin the arm has items in: mean over seeds of each seed's accuracy on
    its items in the bin, with the hierarchical bootstrap of postfit.analysis.stats (seeds without items in the bin
    left out of it)."""
    xs, ys = _checked(x_by_seed, y_by_seed)
    out = []
    for i, centre in enumerate(bins.centres):
        per_seed = [y[bins.of(x) == i] for x, y in zip(xs, ys, strict=True)]
        per_seed = [v for v in per_seed if v.size]
        if per_seed:
            est = stats.bootstrap_ci(per_seed, n_boot, ci, np.random.default_rng(0))
            out.append((float(centre), est, max(v.size for v in per_seed)))
    return out
