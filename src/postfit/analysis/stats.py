"""Statistics behind every reported number: the unbiased pass@k estimator and bootstrap confidence intervals.

Two sources of variance matter: the training run (a seed) and the test items. Confidence intervals therefore
come from a hierarchical percentile bootstrap: draw seeds with replacement, then items within each drawn seed.
When two conditions share seeds (one training run scored on two splits) or items (two models scored on the
same questions), they are resampled jointly so the interval reflects the pairing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from postfit.config import SPLITS
from postfit.data.lighteval import LIGHTEVAL, POSTFIT

log = logging.getLogger(__name__)

SPLIT_ORDER = SPLITS  # the evaluation splits, in pipeline order
GREEDY = -1  # the `sample` index of the greedy completion in samples.jsonl


def split_sort_key(split: str) -> tuple[int, str]:
    """Known splits in pipeline order, then any others alphabetically."""
    return (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), split)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k, 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), from n samples of which c are correct.

    The product form avoids the huge binomial coefficients of the literal formula.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def checked(values_by_seed: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=float).ravel() for v in values_by_seed]
    if not arrays:
        raise ValueError(f"{what}: no seeds")
    if any(a.size == 0 for a in arrays):
        raise ValueError(f"{what}: a seed has no items")
    return arrays


def checked_pairs(a_by_seed: Sequence[np.ndarray], b_by_seed: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    a, b = checked(a_by_seed, "a"), checked(b_by_seed, "b")
    if len(a) != len(b) or any(x.size != y.size for x, y in zip(a, b, strict=True)):
        raise ValueError("paired conditions need the same number of seeds and of items per seed")
    return [a, b]


def _boot_means(
    conditions: list[list[np.ndarray]], n_boot: int, rng: np.random.Generator, shared_items: bool
) -> np.ndarray:
    """Bootstrap distribution, shape (len(conditions), n_boot), of each condition's mean of per-seed item means.

    The seed draw is shared by all conditions (they are paired by seed position). With `shared_items` the item
    draw is shared too, which requires every condition to have the same number of items per seed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_seeds = len(conditions[0])
    seed_draw = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    out = np.zeros((len(conditions), n_boot))
    for slot in range(n_seeds):
        for seed in range(n_seeds):
            rows = np.flatnonzero(seed_draw[:, slot] == seed)
            if rows.size == 0:
                continue
            idx = None
            for c, cond in enumerate(conditions):
                values = cond[seed]
                if idx is None or not shared_items:
                    idx = rng.integers(0, values.size, size=(rows.size, values.size))
                out[c, rows] += values[idx].mean(axis=1)
    return out / n_seeds


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def percentile_interval(dist: np.ndarray, ci: float) -> tuple[float, float]:
    _check_ci(ci)
    if dist.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(dist, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _mean_of_means(arrays: list[np.ndarray]) -> float:
    return float(np.mean([a.mean() for a in arrays]))


def bootstrap_ci(
    values_by_seed: list[np.ndarray], n_boot: int = 1000, ci: float = 0.95, rng: np.random.Generator | None = None
) -> tuple[float, float, float]:
    """(estimate, lo, hi): mean over seeds of per-seed item means, with a hierarchical percentile bootstrap CI."""
    arrays = checked(values_by_seed, "values_by_seed")
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means([arrays], n_boot, rng, shared_items=True)[0]
    return (_mean_of_means(arrays), *percentile_interval(dist, ci))


def steps_to_threshold(
    by_m: dict[int, list[np.ndarray]],
    threshold: float,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(m, lo, hi): the first m of `by_m` (m -> per-seed 0/1 arrays over the same items) whose mean accuracy reaches
    `threshold`, with the interval of that first m under the hierarchical bootstrap (seeds, then items, one draw
    for every m); inf where it is never reached."""
    ms = sorted(by_m)
    conditions = [checked(by_m[m], f"m={m}") for m in ms]
    if any([x.size for x in c] != [x.size for x in conditions[0]] for c in conditions):
        raise ValueError("every m needs the same seeds and items")
    rng = np.random.default_rng(0) if rng is None else rng
    at = np.array([*ms, np.inf])  # first_crossing's k (1-based; len(ms) + 1: never) -> the m it stands for
    means = np.array([[_mean_of_means(c)] for c in conditions])
    draws = _boot_means(conditions, n_boot, rng, shared_items=True)
    point = at[first_crossing(np.full_like(means, threshold), means)[0] - 1]
    lo, hi = discrete_interval(at[first_crossing(np.full_like(draws, threshold), draws) - 1], ci)
    return float(point), lo, hi


def discrete_interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    """The percentile interval of a discrete bootstrap quantity (a k, a step count; inf allowed): its ends are
    values some resample took."""
    _check_ci(ci)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(lo), float(hi)


def paired_diff_ci(
    a_by_seed: list[np.ndarray],
    b_by_seed: list[np.ndarray],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(estimate, lo, hi) of mean(a) - mean(b) for two conditions scored on the same items (paired bootstrap)."""
    conditions = checked_pairs(a_by_seed, b_by_seed)
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means(conditions, n_boot, rng, shared_items=True)
    return (_mean_of_means(conditions[0]) - _mean_of_means(conditions[1]), *percentile_interval(dist[0] - dist[1], ci))


def ratio_ci(
    num_by_seed: list[np.ndarray],
    den_by_seed: list[np.ndarray],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(estimate, lo, hi) of mean(num) / mean(den) on the same items (paired bootstrap).

    All nan when mean(den) is 0. Resamples whose denominator is 0 are dropped: they have no ratio.
    """
    conditions = checked_pairs(num_by_seed, den_by_seed)
    den = _mean_of_means(conditions[1])
    if den == 0.0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means(conditions, n_boot, rng, shared_items=True)
    keep = dist[1] != 0.0
    return (_mean_of_means(conditions[0]) / den, *percentile_interval(dist[0][keep] / dist[1][keep], ci))


def drop_ci(
    id_by_seed: list[np.ndarray],
    ood_by_split: list[list[np.ndarray]],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(estimate, lo, hi) of mean(id) minus the average over OOD splits of mean(ood split).

    Splits hold different items, so items are resampled independently per split; seeds are paired by position
    (each seed is one training run scored on every split).
    """
    conditions = [checked(id_by_seed, "id_by_seed")] + [checked(s, "ood_by_split") for s in ood_by_split]
    if len(conditions) < 2 or any(len(c) != len(conditions[0]) for c in conditions):
        raise ValueError("drop_ci needs at least one OOD split and the same number of seeds in every split")
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means(conditions, n_boot, rng, shared_items=False)
    estimate = _mean_of_means(conditions[0]) - float(np.mean([_mean_of_means(c) for c in conditions[1:]]))
    return (estimate, *percentile_interval(dist[0] - dist[1:].mean(axis=0), ci))


def _by_item(samples: list[dict], split: str) -> dict[str, tuple[bool | None, list[bool]]]:
    """item -> (greedy correctness or None, sampled correctness list), refusing duplicate rows."""
    greedy: dict[str, bool] = {}
    sampled: dict[str, dict[int, bool]] = {}
    for row in samples:
        if row["split"] != split:
            continue
        item, sample = str(row["item"]), int(row["sample"])
        if sample == GREEDY:
            if item in greedy:
                raise ValueError(f"split {split!r}: two greedy completions for item {item!r}")
            greedy[item] = bool(row["correct"])
        else:
            seen = sampled.setdefault(item, {})
            if sample in seen:
                raise ValueError(f"split {split!r}: sample {sample} of item {item!r} appears twice")
            seen[sample] = bool(row["correct"])
    items = sorted(set(greedy) | set(sampled))
    return {i: (greedy.get(i), list(sampled.get(i, {}).values())) for i in items}


def splits_of(samples: list[dict]) -> list[str]:
    return sorted({row["split"] for row in samples}, key=split_sort_key)


def samples_per_item(samples: list[dict], split: str) -> int:
    """The smallest number of sampled (non-greedy) completions any item of `split` has; 0 if none."""
    counts = [len(s) for _, s in _by_item(samples, split).values()]
    return min(counts, default=0)


def protocol(samples: list[dict], split: str) -> str:
    """The protocol `split` was evaluated under (postfit.data.lighteval; rows from before protocols: postfit's).
    Two protocols in one split is an error: their pass@1 mean different things."""
    found = {row.get("protocol", POSTFIT) for row in samples if row["split"] == split}
    if len(found) > 1:
        raise ValueError(f"split {split!r}: samples of two evaluation protocols ({', '.join(sorted(found))})")
    return found.pop() if found else POSTFIT


def per_item_pass(samples: list[dict], split: str, k: int | None = None) -> dict[str, float]:
    """item -> score on `split`: pass@1 when k is None, else unbiased pass@k of the sampled completions.

    pass@1 is the greedy completion's correctness (0/1) under postfit's protocol, and under lighteval's (which
    samples only) the mean correctness of the item's n sampled completions, lighteval's pass@1. Items without a
    greedy completion (k None, postfit's protocol) or without sampled ones are left out; an item with fewer than k
    sampled completions is an error, since its pass@k is undefined.
    """
    if k is None and protocol(samples, split) == LIGHTEVAL:
        k = 1  # the unbiased pass@1 estimate from n samples is their mean
    out: dict[str, float] = {}
    for item, (greedy, sampled) in _by_item(samples, split).items():
        if k is None:
            if greedy is not None:
                out[item] = float(greedy)
        elif sampled:
            out[item] = pass_at_k(len(sampled), sum(sampled), k)
    return out


def pass_at_k_curves(samples: list[dict], split: str) -> dict[str, np.ndarray]:
    """item -> its unbiased pass@k for k = 1..n (n: its sampled completions), items without samples left out."""
    out = {}
    for item, (_, sampled) in _by_item(samples, split).items():
        if sampled:
            out[item] = np.array([pass_at_k(len(sampled), sum(sampled), k) for k in range(1, len(sampled) + 1)])
    return out


def curve_ci(curves_by_seed: Sequence[np.ndarray], n_boot: int = 1000, ci: float = 0.95,
             rng: np.random.Generator | None = None) -> list[tuple[float, float, float]]:  # fmt: skip
    """(estimate, lo, hi) at each k of a curve given per seed as an (items, K) array: the mean over seeds of the
    per-seed item means, with one hierarchical bootstrap draw for every k, so the band is a band of curves."""
    arrays = [np.asarray(a, dtype=float) for a in curves_by_seed]
    columns = [[a[:, k] for a in arrays] for k in range(arrays[0].shape[1])]
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means([checked(c, "curves_by_seed") for c in columns], n_boot, rng, shared_items=True)
    return [(_mean_of_means(c), *percentile_interval(d, ci)) for c, d in zip(columns, dist, strict=True)]


def first_crossing(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The smallest k (1-based) at which `before` >= `after`, per column of two (K, ...) arrays of pass@k curves;
    K + 1 where `after` stays above at every k. Differences under 1e-9 count as ties (float sums of equal counts)."""
    level = np.asarray(before) >= np.asarray(after) - 1e-9
    return np.where(level.any(axis=0), level.argmax(axis=0) + 1, level.shape[0] + 1)


def crossover_ci(
    after_by_seed: Sequence[np.ndarray],
    before_by_seed: Sequence[np.ndarray],
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[tuple[float, float, float], float]:
    """((k, lo, hi), share) for two pass@k curves on the same items and seeds, each an (items, K) array per seed:
    the first k at which the `before` model's pass@k reaches the `after` model's, with a percentile interval from
    the hierarchical bootstrap paired by seed and item (one draw for both curves and every k). A curve pair that
    never crosses up to K (the estimate, or a resample) counts as infinity ("> K"); `share` is the fraction of
    resamples that cross."""
    after, before = ([np.asarray(a, dtype=float) for a in side] for side in (after_by_seed, before_by_seed))
    if any(a.shape != b.shape for a, b in zip(after, before, strict=True)):
        raise ValueError("crossover_ci needs both curves on the same items and k per seed")
    k_max = after[0].shape[1]
    columns = [[a[:, k] for a in side] for side in (after, before) for k in range(k_max)]
    rng = np.random.default_rng(0) if rng is None else rng
    dist = _boot_means([checked(c, "curves") for c in columns], n_boot, rng, shared_items=True)
    means = np.array([_mean_of_means(c) for c in columns])
    point = first_crossing(means[:k_max], means[k_max:])
    ks = first_crossing(dist[:k_max], dist[k_max:])
    lo, hi = discrete_interval(ks, ci)
    inf = lambda k: float("inf") if k > k_max else float(k)  # noqa: E731
    return (inf(point), inf(lo), inf(hi)), float(np.mean(ks <= k_max))


def run_results(run: dict, samples: list[dict], ks: list[int], n_boot: int, ci: float) -> list[dict]:
    """results.jsonl rows for one run: "pass@1" and sampled "pass@K" per split, with item-bootstrap CIs, each
    naming the split's protocol.

    "pass@1" is greedy under postfit's protocol and the mean over the n samples under lighteval's (`per_item_pass`),
    so K=1 in `ks` is skipped rather than written under a clashing name. A pass@K row is written only when every
    item of the split has at least K sampled completions.
    """
    base = {key: run.get(key) for key in ("run", "init", "recipe", "seed")}
    rows: list[dict] = []
    for split in splits_of(samples):
        metrics: list[tuple[str, int | None]] = [("pass@1", None)]
        n_min = samples_per_item(samples, split)
        metrics += [(f"pass@{k}", k) for k in sorted(set(ks)) if k > 1 and n_min >= k]
        for metric, k in metrics:
            per_item = per_item_pass(samples, split, k)
            if not per_item:
                continue
            values = np.array([per_item[i] for i in sorted(per_item)])
            value, lo, hi = bootstrap_ci([values], n_boot, ci, rng=np.random.default_rng(0))
            rows.append(
                {
                    **base,
                    "split": split,
                    "metric": metric,
                    "value": value,
                    "n": int(values.size),
                    "ci_low": lo,
                    "ci_high": hi,
                    "protocol": protocol(samples, split),
                }
            )
    return rows
