"""Tree-ensemble baselines: random forest and gradient boosting (scikit-learn).

The reference point a learned graph predictor must beat: NAS-Bench-Suite-Zero and the
predictor surveys (White et al. 2021, "How Powerful are Performance Predictors in NAS?")
find trees on proxy scores or encodings strong at small training sets. Features are the space's
flat one-hot (:meth:`~dnas.spaces.base.SearchSpace.onehot`; ``features="graph"``), the proxy
features of :class:`~dnas.predictors.zcfeatures.ZCFeatures` (``"zc"``) or both concatenated.
Trees are invariant to monotone rescaling, so the proxy preprocessing only matters for the
median imputation and the missing flags.

``rf``: ``RandomForestRegressor(n_estimators=500, max_features=1/3)``, the usual regression
forest setting; ``gbm``: ``GradientBoostingRegressor(n_estimators=300, learning_rate=0.05,
max_depth=3, subsample=0.8)``. ``random_state=seed``, one job (deterministic). The forest's
per-tree predictions are its ensemble members (:meth:`predict_members`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dnas.errors import ConfigError
from dnas.predictors.zcfeatures import check_features


class TreePredictor:
    """``fit(archs, accuracies)`` / ``predict(archs)`` with a scikit-learn tree ensemble."""

    def __init__(self, *, kind: str = "rf", seed: int = 0, space: Any = "nb201", features: str = "graph",
                 zc: Any = None, n_estimators: int | None = None, fusion: str | None = None, **_ignored: Any) -> None:
        from dnas.spaces.base import get_space

        if fusion is not None:  # accepted by name so that it is refused, not silently ignored
            raise ConfigError(f"tree predictor fusion: trees always concatenate proxy scores to the one-hot; "
                              f"drop fusion={fusion!r} (gated / auto are gcn options)")

        if kind not in ("rf", "gbm"):
            raise ConfigError(f"tree predictor: kind must be rf or gbm, got {kind!r}")
        self.kind, self.seed = kind, int(seed)
        self.space = get_space(space)
        self.feature_set = features
        self.use_graph, self.use_zc = check_features(features, zc)
        self.zc, self._zc = zc, None
        self.n_estimators = n_estimators
        self.model = None
        #: No training epochs (the evaluation protocol's "untrained" baseline does not apply).
        self.epochs = None

    def _x(self, archs: Sequence[Any]) -> np.ndarray:
        parts = []
        if self.use_graph:
            parts.append(np.stack([self.space.onehot(a) for a in archs]).astype(np.float64))
        if self.use_zc:
            parts.append(self._zc.transform(archs).astype(np.float64))
        return np.concatenate(parts, axis=1)

    def fit(self, archs: Sequence[Any], accuracies: Sequence[float]) -> "TreePredictor":
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        archs = [self.space.parse(a) for a in archs]
        y = np.asarray(accuracies, dtype=np.float64)
        if len(archs) != len(y) or len(y) < 2:
            raise ConfigError(f"predictor fit: need >= 2 archs with one accuracy each, got {len(archs)} and {len(y)}")
        self._zc = self.zc.fit(archs) if self.use_zc else None
        if self.kind == "rf":
            self.model = RandomForestRegressor(n_estimators=self.n_estimators or 500, max_features=1 / 3,
                                               random_state=self.seed, n_jobs=1)
        else:
            self.model = GradientBoostingRegressor(n_estimators=self.n_estimators or 300, learning_rate=0.05,
                                                   max_depth=3, subsample=0.8, random_state=self.seed)
        self.model.fit(self._x(archs), y)
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self.model is None:
            raise ConfigError("predictor: call fit() before predict()")
        return self.model.predict(self._x([self.space.parse(a) for a in archs]))

    def predict_members(self, archs: Sequence[Any]) -> np.ndarray:
        """``(trees, archs)`` per-tree predictions (random forest); gradient boosting has no
        independent members, so it returns its single prediction as one row."""
        if self.model is None:
            raise ConfigError("predictor: call fit() before predict()")
        x = self._x([self.space.parse(a) for a in archs])
        if self.kind == "rf":
            return np.stack([t.predict(x) for t in self.model.estimators_])
        return self.model.predict(x)[None, :]


def RandomForestPredictor(**options: Any) -> TreePredictor:
    """The random-forest baseline (``make_predictor("rf")``)."""
    return TreePredictor(kind="rf", **options)


def BoostingPredictor(**options: Any) -> TreePredictor:
    """The gradient-boosting baseline (``make_predictor("gbm")``)."""
    return TreePredictor(kind="gbm", **options)
