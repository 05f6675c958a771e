"""Zero-cost proxy scores as predictor features, with train-split-only preprocessing.

Predictors take proxy scores as *node-independent* features beside the graph: the GCN
concatenates them to its graph readout before the head, the MLP and the trees to the one-hot
(``features="graph+zc"``), or use them alone (``features="zc"``). :class:`ZCFeatures` supplies
them: a table ``arch -> {proxy: score}`` (the records' proxy fields, e.g. the built-in
``nb201_cifar10_zc`` with NAS-Bench-Suite-Zero's published scores) and/or a ``scorer``
(``arch -> {proxy: score}``, e.g. a :class:`~dnas.predictors.zerocost.ProxyScorer` or a
``zc:`` evaluator) for architectures the table lacks.

Preprocessing, fitted on the training archs only (:meth:`ZCFeatures.fit`), so no test
statistics leak into the features:

1. missing = absent, ``null``, non-finite, or NASLib's failure sentinels (``|x| >= 1e8``,
   e.g. jacov's ``-1e8``);
2. ``sign(x) * log1p(|x|)``: proxies span orders of magnitude (snip 5..230, fisher 1e-3..1)
   (``transform="rank"``: the normal quantile of the value's rank among the training values
   instead - measured no better with the GCN on NB201, 0.736 vs 0.737);
3. missing values become the training median, and each proxy with any missing value in the
   training split gets a 0/1 "missing" column;
4. standardise with the training mean/std and clip to +-5 (a few extreme scores would
   otherwise dominate a network's inputs).

Optionally (``fit(archs, y, min_tau)``, used by the neural predictors) only the proxies whose
Kendall tau with the training accuracies reaches ``min_tau`` are kept - again decided on the
training split alone.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from dnas.errors import ConfigError

Scores = Mapping[str, float]


def _value(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) and abs(x) < 1e8 else math.nan


class ZCFeatures:
    """Proxy features for architectures; ``fit(train_archs)`` then ``transform(archs)``."""

    def __init__(self, proxies: Sequence[str], table: Mapping[Hashable, Scores] | None = None,
                 scorer: Callable[[Any], Scores] | None = None, transform: str = "log") -> None:
        if not proxies:
            raise ConfigError("zc proxies: need at least one proxy name")
        if transform not in ("log", "rank"):
            raise ConfigError(f"zc transform: log or rank, got {transform!r}")
        self.transform_kind = transform
        self.sorted_train: list[np.ndarray] = []
        self.proxies = list(proxies)
        self.table = dict(table or {})
        self.scorer = scorer
        self.median = self.mean = self.std = None
        self.flags: list[int] = []

    @classmethod
    def from_records(cls, records: Sequence[Mapping], proxies: Sequence[str] | None = None) -> "ZCFeatures":
        """From loaded records (:func:`dnas.evaluators.tabular.load_records`): their ``fields``.
        ``proxies=None`` takes every known proxy that some record carries."""
        from dnas.predictors.zerocost import PROXY_NAMES

        fields = [r.get("fields", {}) for r in records]
        if proxies is None:
            proxies = [p for p in PROXY_NAMES if any(p in f for f in fields)]
            if not proxies:
                raise ConfigError(
                    "features: the records carry no proxy scores; add them with `dnas proxy RECORDS --out FILE` "
                    "or use --features graph"
                )
        else:
            absent = [p for p in proxies if not any(p in f for f in fields)]
            if absent:
                raise ConfigError(f"zc-proxies: no record carries {', '.join(absent)}; compute them with `dnas proxy`")
        table = {r["key"]: {p: f[p] for p in proxies if p in f} for r, f in zip(records, fields)}
        return cls(proxies, table)

    def raw(self, archs: Sequence[Hashable]) -> np.ndarray:
        """``(n, proxies)`` scores, NaN where missing (table first, then the scorer)."""
        out = np.full((len(archs), len(self.proxies)), np.nan)
        for i, a in enumerate(archs):
            row = self.table.get(a)
            if (row is None or any(p not in row for p in self.proxies)) and self.scorer is not None:
                row = {**self.scorer(a), **(row or {})}
                self.table[a] = row
            if row:
                out[i] = [_value(row.get(p)) for p in self.proxies]
        return out

    def _map(self, x: np.ndarray) -> np.ndarray:
        """``log``: ``sign(x) log1p|x|``; ``rank``: the normal quantile of each value's position
        among the training values (robust to outliers; NaN stays NaN)."""
        if self.transform_kind == "log":
            return np.sign(x) * np.log1p(np.abs(x))
        from scipy.stats import norm

        out = np.full_like(x, np.nan)
        for j, ref in enumerate(self.sorted_train):
            col = x[:, j]
            ok = ~np.isnan(col)
            if len(ref):
                lo = np.searchsorted(ref, col[ok], side="left")
                hi = np.searchsorted(ref, col[ok], side="right")
                out[ok, j] = norm.ppf((0.5 * (lo + hi) + 0.5) / (len(ref) + 1))
        return out

    def fit(self, archs: Sequence[Hashable], y: Sequence[float] | None = None, min_tau: float = 0.0) -> "ZCFeatures":
        """Learn the imputation and scaling from the training archs; returns a fitted copy.

        With ``y`` (their accuracies) and ``min_tau > 0``, keep only the proxies whose Kendall
        tau with ``y`` on these archs reaches ``min_tau`` in absolute value (at least the best
        one): a proxy that does not rank the training archs only adds noise to a small net."""
        proxies = list(self.proxies)
        if y is not None and min_tau > 0 and len(archs) > 2:
            from scipy import stats

            r = self.raw(archs)
            taus = []
            for j in range(r.shape[1]):
                ok = ~np.isnan(r[:, j])
                t = stats.kendalltau(r[ok, j], np.asarray(y)[ok])[0] if ok.sum() > 2 else 0.0
                taus.append(0.0 if t is None or np.isnan(t) else abs(float(t)))
            keep = [p for p, t in zip(proxies, taus) if t >= min_tau] or [proxies[int(np.argmax(taus))]]
            proxies = keep
        new = ZCFeatures(proxies, self.table, self.scorer, self.transform_kind)
        r = new.raw(archs)
        new.sorted_train = [np.sort(c[~np.isnan(c)]) for c in r.T]
        x = new._map(r)
        with np.errstate(all="ignore"):
            med = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
        new.median = np.where(np.isfinite(med), med, 0.0)
        new.flags = [j for j in range(x.shape[1]) if np.isnan(x[:, j]).any()]
        filled = np.where(np.isnan(x), new.median, x)
        new.mean = filled.mean(0)
        sd = filled.std(0)
        new.std = np.where(sd > 1e-12, sd, 1.0)
        return new

    @property
    def width(self) -> int:
        """Number of feature columns :meth:`transform` returns (after :meth:`fit`)."""
        return len(self.proxies) + len(self.flags)

    def transform(self, archs: Sequence[Hashable]) -> np.ndarray:
        """Standardised features ``(n, width)`` (float32)."""
        if self.median is None:
            raise ConfigError("zc features: call fit() on the training archs first")
        x = self._map(self.raw(archs))
        miss = np.isnan(x)
        z = np.clip((np.where(miss, self.median, x) - self.mean) / self.std, -5.0, 5.0)
        if self.flags:
            z = np.concatenate([z, miss[:, self.flags].astype(np.float64)], axis=1)
        return z.astype(np.float32)


FEATURE_SETS = ("graph", "zc", "graph+zc")


def check_features(features: str, zc: "ZCFeatures | None") -> tuple[bool, bool]:
    """``(uses_graph, uses_zc)`` for a feature-set name; one-line errors for bad input."""
    if features not in FEATURE_SETS:
        raise ConfigError(f"features: {features!r} unknown; choose one of: {', '.join(FEATURE_SETS)}")
    use_zc = "zc" in features
    if use_zc and zc is None:
        raise ConfigError(
            f"features: {features!r} needs proxy scores; give records that carry them (e.g. nb201_cifar10_zc, "
            "or `dnas proxy RECORDS --out FILE`) or zc=ZCFeatures(...)"
        )
    return features != "zc", use_zc
