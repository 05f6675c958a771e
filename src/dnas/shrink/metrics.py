"""How good is a shrunk space? Size, quality inside vs outside, diversity, one-shot ranking.

:func:`space_metrics` compares the shrunk space with the full one using the true accuracies
(``truth``: arch -> accuracy, e.g. a table's records looked up without counting queries):

* ``size`` / ``full_size`` / ``shrink_ratio``: members of the shrunk space that ``truth``
  knows, vs the full space (the archs ``truth`` holds);
* ``mean_accuracy``, ``best_accuracy`` inside, ``outside_mean_accuracy`` outside, and the
  full space's ``full_mean_accuracy`` / ``full_best_accuracy``; ``best_kept`` says whether the
  full space's best architecture is a member; ``top_k_kept`` the fraction of the full space's
  top ``top_fraction`` (default 5%) that was kept (recall of the good region);
* diversity: ``pockets`` (how many), ``mean_distance`` (mean pairwise edit distance of the
  members, against ``full_mean_distance`` of the full space; over a seeded subset of 3000
  archs when larger, 300 where the space's distance is not the vectorised Hamming one) and ``center_min_distance`` (the
  closest two pocket centres).

:func:`ranking_taus` gives the one-shot ranking quality: ``tau_shrunk`` is Kendall's tau between
the one-shot scores of a supernet trained on the shrunk space and the true accuracies of its
members; ``tau_full`` the same for a supernet trained on the full space over all of the full
space's archs; ``tau_full_on_shrunk`` the full-space supernet's tau on the shrunk members
only. The last one separates the two effects in ``tau_shrunk - tau_full``: a narrower
accuracy range is harder to rank (lowers tau by itself), while training on fewer, better
architectures is meant to raise it.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

from dnas.errors import ConfigError
from dnas.predictors.metrics import kendall_tau
from dnas.shrink.distance import pairwise, space_of, uses_hamming
from dnas.shrink.space import ShrunkSpace


def _mean_pairwise(archs: Sequence[Hashable], space: "str | None" = None, max_archs: int | None = None,
                   seed: int = 0) -> float | None:
    if len(archs) < 2:
        return None
    sp = space_of(archs[:1], space)
    if max_archs is None:  # Hamming distances are vectorised; others (DARTS: a matching per node) are not
        max_archs = 3000 if uses_hamming(sp) else 300
    if len(archs) > max_archs:  # a seeded subset keeps the (n, n) matrix small
        idx = np.random.default_rng(seed).choice(len(archs), max_archs, replace=False)
        archs = [archs[i] for i in idx]
    D = pairwise(list(archs), sp)
    n = len(archs)
    return float(D.sum() / (n * (n - 1)))


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def space_metrics(shrunk: ShrunkSpace, truth: Mapping[Hashable, float], top_fraction: float = 0.05) -> dict:
    """Quality and diversity of ``shrunk`` against the full space ``truth`` (see module docstring)."""
    if not truth:
        raise ConfigError("metrics: truth is empty; give the true accuracy of the full space's archs")
    if not 0 < top_fraction <= 1:
        raise ConfigError(f"top_fraction: must be in (0, 1], got {top_fraction}")
    full = list(truth)
    members = [a for a in shrunk.archs() if a in truth]
    member_set = set(members)
    inside = np.array([truth[a] for a in members], dtype=float)
    outside = np.array([truth[a] for a in full if a not in member_set], dtype=float)
    everything = np.array([truth[a] for a in full], dtype=float)
    best_arch = max(full, key=lambda a: truth[a])
    k = max(1, int(round(top_fraction * len(full))))
    top = sorted(full, key=lambda a: -truth[a])[:k]
    centers = [p.center for p in shrunk.pockets]
    cd = pairwise(centers, shrunk.space) if len(centers) > 1 else None
    return {
        "size": len(members),
        "full_size": len(full),
        "shrink_ratio": _r(len(members) / len(full)),
        "mean_accuracy": _r(inside.mean()) if len(inside) else None,
        "full_mean_accuracy": _r(everything.mean()),
        "outside_mean_accuracy": _r(outside.mean()) if len(outside) else None,
        "best_accuracy": _r(inside.max()) if len(inside) else None,
        "full_best_accuracy": _r(everything.max()),
        "best_kept": best_arch in member_set,
        "top_fraction": top_fraction,
        "top_k_kept": _r(sum(a in member_set for a in top) / k),
        "pockets": len(shrunk.pockets),
        "mean_distance": _r(_mean_pairwise(members, shrunk.space)),
        "full_mean_distance": _r(_mean_pairwise(full, shrunk.space)),
        "center_min_distance": int(cd[np.triu_indices(len(centers), 1)].min()) if cd is not None else None,
    }


def ranking_taus(shrunk_archs: Sequence[Hashable], shrunk_scores: Sequence[float], full_archs: Sequence[Hashable],
                 full_scores: Sequence[float], truth: Mapping[Hashable, float]) -> dict:
    """Kendall taus of one-shot scores vs ``truth`` (see module docstring); scores are aligned
    with their arch lists, higher = better."""
    if len(shrunk_archs) != len(shrunk_scores) or len(full_archs) != len(full_scores):
        raise ConfigError("ranking_taus: give one score per arch")
    full_index = {a: s for a, s in zip(full_archs, full_scores)}
    on_shrunk = [a for a in shrunk_archs if a in full_index]
    return {
        "tau_shrunk": _r(kendall_tau(list(shrunk_scores), [truth[a] for a in shrunk_archs])),
        "tau_full": _r(kendall_tau(list(full_scores), [truth[a] for a in full_archs])),
        "tau_full_on_shrunk": _r(kendall_tau([full_index[a] for a in on_shrunk], [truth[a] for a in on_shrunk])),
    }
