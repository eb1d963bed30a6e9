"""Effective data transferred (Hernandez et al. 2021, "Scaling Laws for Transfer"), from accuracy-vs-N curves.

Question: how many post-training examples is pre-training worth? At each measured N, the pre-trained model reaches
some accuracy; N_eff is the number of examples the random-init model needs to reach that same accuracy, and the
effective data transferred is D_T = N_eff - N (Hernandez et al. read it off fitted loss curves; we use accuracy,
the quantity the report is about).

Curve family: acc(N) = sigmoid(a + b * ln N), a logistic in log N. Why: it is bounded in [0, 1] like accuracy,
monotone in N (rising when b > 0), has two parameters (enough for the 3-6 values of N a study measures, few enough
to be identified by them) and inverts in closed form. It is fitted by maximum likelihood to the per-item outcomes
(a binomial at each N, Newton's method) with half a success and half a failure added at each N, so that a cell
that is all right or all wrong still gives a finite fit. What it cannot do: plateau below 100% or start above 0%,
so we never trust it outside the measured range: an N_eff beyond the largest measured N is reported as "not
reached within the measured range", never as an extrapolated number.

Uncertainty: a percentile bootstrap that redraws seeds and then items, the same draw for every cell, because every
cell scores the same evaluation items (a paired bootstrap), and refits both curves on each resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postfit.analysis.slopes import fit_rows, sigmoid

REACHED = "reached"
NOT_REACHED = "not reached within the measured range"
BELOW = "below the measured range"  # random init already matches at less data than the smallest N measured
FLAT = "not reached: the random-init curve does not rise"
PSEUDO = 0.5  # pseudo-successes and pseudo-failures added at each N


@dataclass(frozen=True)
class Fit:
    """acc(N) = sigmoid(a + b * (ln N - centre))."""

    a: float
    b: float
    centre: float

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return sigmoid(self.a + self.b * (np.log(n) - self.centre))

    def invert(self, acc: float) -> float:
        """The N at which the curve reaches `acc`; nan when it does not rise."""
        if self.b <= 1e-9:
            return float("nan")
        return float(np.exp(self.centre + (_logit(acc) - self.a) / self.b))


@dataclass(frozen=True)
class Point:
    n: int
    target: float  # the pre-trained model's fitted accuracy at n
    n_eff: float  # random-init examples needed for it (nan unless reached)
    status: str
    lo: float  # CI of n_eff over the bootstrap; inf when the upper resamples do not reach it in range
    hi: float
    reached: float  # fraction of bootstrap resamples in which it is reached within the measured range
    n_min: int  # the measured range of N
    n_max: int

    @property
    def transferred(self) -> float:
        return self.n_eff - self.n

    @property
    def multiplier(self) -> float:
        return self.n_eff / self.n


@dataclass
class Transfer:
    pretrained: Fit
    random: Fit
    points: list[Point]
    grid: np.ndarray  # N values for drawing the fits
    bands: dict[str, tuple[np.ndarray, np.ndarray]]  # init -> (lo, hi) of the fitted curve over the bootstrap
    n_items: int
    n_seeds: int


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def fit_batch(x: np.ndarray, successes: np.ndarray, trials: np.ndarray, iters: int = 60) -> np.ndarray:
    """Maximum-likelihood (a, b) of sigmoid(a + b x) for each row of `successes` (shape (B, len(x))); (B, 2).

    Newton's method on the binomial log-likelihood (postfit.analysis.slopes.fit_rows), vectorised over the B rows
    (the bootstrap resamples).
    """
    s = np.atleast_2d(successes).astype(float) + PSEUDO
    t = np.broadcast_to(np.asarray(trials, dtype=float) + 2 * PSEUDO, s.shape)
    return fit_rows(x, s / t, t, ridge=0.0, iters=iters)  # the pseudo-counts already keep every fit finite


def _counts(cells: list[list[np.ndarray]], seed_idx: np.ndarray | None, item_idx: np.ndarray | None) -> np.ndarray:
    """Successes per cell (shape (B, cells)) for resampled seeds/items, or the observed ones when both are None."""
    out = []
    for seeds in cells:
        arr = np.stack(seeds)  # (seeds, items)
        if seed_idx is None:
            out.append(arr.sum()[None])
        else:
            # (B, seeds, items) picked with the shared draws; sums over both levels.
            out.append(arr[seed_idx[:, :, None], item_idx[:, None, :]].sum(axis=(1, 2)))
    return np.stack(out, axis=1).astype(float)


def _quantiles(values: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval that lets +inf through (resamples that never reach the target)."""
    v = np.sort(values)
    alpha = (1 - ci) / 2
    lo = v[int(np.floor(alpha * (v.size - 1)))]
    hi = v[int(np.ceil((1 - alpha) * (v.size - 1)))]
    return float(lo), float(hi)


def _n_eff(target: np.ndarray, rand: np.ndarray, centre: float, n_min: float, n_max: float) -> np.ndarray:
    """N_eff per resample (rows of `rand` = (a, b)); +inf where not reached within the range, 0 below it."""
    a, b = rand[:, 0], rand[:, 1]
    logit_t = np.log(np.clip(target, 1e-9, 1 - 1e-9) / (1 - np.clip(target, 1e-9, 1 - 1e-9)))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(b > 1e-9, (logit_t - a) / b, np.inf)
    n = np.exp(np.minimum(centre + x, 700.0))
    n = np.where(n > n_max * (1 + 1e-9), np.inf, n)
    return np.where(n < n_min * (1 - 1e-9), 0.0, n)


def effective_data(
    pretrained: dict[int, list[np.ndarray]],
    random: dict[int, list[np.ndarray]],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> Transfer:
    """Fit both curves and compute N_eff at each N the pre-trained model was measured at.

    Each argument maps N -> one array of per-item 0/1 scores per seed; every array holds the same items in the
    same order, and every cell the same number of seeds (seed positions are paired: seed i is the i-th array).
    """
    ns = sorted(set(pretrained) & set(random))
    if len(ns) < 2:
        raise ValueError(f"need both inits measured at two or more N, got {ns}")
    cells = [[np.asarray(a, dtype=float) for a in d[n]] for d in (pretrained, random) for n in ns]
    n_seeds, n_items = len(cells[0]), cells[0][0].size
    if any(len(c) != n_seeds or any(a.size != n_items for a in c) for c in cells):
        raise ValueError("every (init, N) cell needs the same number of seeds and of items per seed")
    rng = np.random.default_rng(0) if rng is None else rng
    x_raw = np.log(np.array(ns, dtype=float))
    centre = float(x_raw.mean())
    x, trials = x_raw - centre, n_seeds * n_items
    k = len(ns)
    obs = _counts(cells, None, None)
    obs_fits = [fit_batch(x, obs[:, :k], np.full(k, trials)), fit_batch(x, obs[:, k:], np.full(k, trials))]
    seed_idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    item_idx = rng.integers(0, n_items, size=(n_boot, n_items))
    boot = _counts(cells, seed_idx, item_idx)
    boot_fits = [fit_batch(x, boot[:, :k], np.full(k, trials)), fit_batch(x, boot[:, k:], np.full(k, trials))]
    fits = [Fit(float(f[0, 0]), float(f[0, 1]), centre) for f in obs_fits]
    points = []
    for n in ns:
        target = float(fits[0].predict(n))
        point_n = _n_eff(np.array([target]), obs_fits[1], centre, min(ns), max(ns))[0]
        pre_boot = sigmoid(boot_fits[0][:, 0] + boot_fits[0][:, 1] * (np.log(n) - centre))
        dist = _n_eff(pre_boot, boot_fits[1], centre, min(ns), max(ns))
        lo, hi = _quantiles(dist, ci)
        if fits[1].b <= 1e-9:
            status = FLAT
        elif np.isinf(point_n):
            status = NOT_REACHED
        else:
            status = BELOW if point_n == 0.0 else REACHED
        value = float(point_n) if status == REACHED else float("nan")
        reached = float(np.mean(np.isfinite(dist) & (dist > 0)))
        points.append(Point(n, target, value, status, lo, hi, reached, min(ns), max(ns)))
    grid = np.exp(np.linspace(x_raw.min(), x_raw.max(), 60))
    bands = {}
    for name, bf in zip(("pretrained", "random"), boot_fits, strict=True):
        curves = sigmoid(bf[:, :1] + bf[:, 1:] * (np.log(grid) - centre)[None, :])
        alpha = (1 - ci) / 2
        bands[name] = (np.quantile(curves, alpha, axis=0), np.quantile(curves, 1 - alpha, axis=0))
    return Transfer(fits[0], fits[1], points, grid, bands, n_items, n_seeds)


def _bound(v: float, p: Point) -> str:
    if np.isinf(v):
        return f"> {p.n_max:,}"
    return f"< {p.n_min:,}" if v == 0.0 else f"{v:,.0f}"


def describe(point: Point, ci: float) -> str:
    """One sentence for the report: N_eff and the multiplier with their CI, or why there is none."""
    interval = f"{ci:.0%} CI {_bound(point.lo, point)} to {_bound(point.hi, point)}"
    if point.status == BELOW:
        return (
            f"N={point.n:,}: the random-init model already matches the pre-trained one at less data than the "
            f"smallest N measured ({point.n_min:,}), so pre-training is worth no more examples here ({interval})"
        )
    if point.status != REACHED:
        return f"N={point.n:,}: {point.status} ({interval}; reached in {point.reached:.0%} of the resamples)"
    return (
        f"N={point.n:,}: the random-init model needs N_eff={point.n_eff:,.0f} examples ({interval}) to match the "
        f"pre-trained model's {100 * point.target:.1f}%, {point.multiplier:.2f}x as many; effective data "
        f"transferred {point.transferred:,.0f}"
    )
