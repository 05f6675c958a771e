"""Locality report: does performance similarity fall with structural distance?

Shrinkage by pockets only works if neighbours of a good architecture are good too. This
measures it on evaluated samples: for every pair of architectures, their edit distance
(:mod:`dnas.shrink.distance`) and their accuracy difference, grouped by distance. Per distance
``d`` the report gives the number of pairs, the mean and median ``|acc_a - acc_b|``, and the
Pearson correlation of the two accuracies over the pairs at ``d`` (symmetrised: each pair
counted both ways), which is high when close pairs perform alike. ``random_pair_mean_abs_diff``
is the same mean over all pairs, the no-locality baseline, and ``spearman_distance_vs_diff``
summarises the trend in one number (positive = locality holds).
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
from scipy import stats

from dnas.errors import ConfigError
from dnas.shrink.distance import pairwise


def _safe(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def locality_report(archs: Sequence[Hashable], accuracies: Sequence[float], max_pairs: int = 2_000_000,
                    seed: int = 0, space: "str | None" = None) -> dict:
    """Accuracy similarity by edit distance over every pair of ``archs`` (see module docstring).

    With more than ``max_pairs`` pairs, a seeded random subset of pairs is used.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    if len(archs) != len(acc):
        raise ConfigError(f"locality: {len(archs)} archs but {len(acc)} accuracies; give one accuracy per arch")
    if len(archs) < 3:
        raise ConfigError(f"locality: needs at least 3 evaluated archs, got {len(archs)}")
    D = pairwise(list(archs), space)
    i, j = np.triu_indices(len(acc), 1)
    if len(i) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(i), max_pairs, replace=False)
        i, j = i[keep], j[keep]
    d = D[i, j]
    diff = np.abs(acc[i] - acc[j])
    rows = []
    for dist in np.unique(d):
        m = d == dist
        a = np.concatenate([acc[i][m], acc[j][m]])
        b = np.concatenate([acc[j][m], acc[i][m]])
        r = stats.pearsonr(a, b)[0] if m.sum() >= 2 and a.std() > 0 and b.std() > 0 else float("nan")
        rows.append({
            "distance": int(dist),
            "pairs": int(m.sum()),
            "mean_abs_diff": _safe(diff[m].mean()),
            "median_abs_diff": _safe(np.median(diff[m])),
            "correlation": _safe(r),
        })
    rho = stats.spearmanr(d, diff)[0] if len(set(d.tolist())) > 1 else float("nan")
    return {
        "archs": len(acc),
        "pairs": int(len(d)),
        "by_distance": rows,
        "random_pair_mean_abs_diff": _safe(diff.mean()),
        "spearman_distance_vs_diff": _safe(rho),
    }
