"""Performance predictors: encodings, GCN / MLP / tree accuracy predictors, zero-cost proxy
features (:mod:`.zcfeatures`, proxies themselves in :mod:`.zerocost`) and ranking metrics.

``make_predictor("gcn", seed=0)`` returns an object with ``fit(archs, accuracies)`` and
``predict(archs)``; register new ones in :data:`PREDICTORS`. Evaluate one on held-out records
with :func:`dnas.predictors.metrics.predictor_evaluate` or ``dnas predictor evaluate``.
"""
from __future__ import annotations

from typing import Any, Callable

from dnas.predictors.gcn import GCNPredictor
from dnas.predictors.metrics import kendall_tau, predictor_evaluate, spearman
from dnas.predictors.mlp import MLPPredictor, NeuralPredictor
from dnas.predictors.trees import BoostingPredictor, RandomForestPredictor, TreePredictor
from dnas.predictors.zcfeatures import FEATURE_SETS, ZCFeatures
from dnas.registry import Registry

#: ``name -> factory(**options)`` of accuracy predictors.
PREDICTORS: Registry[Callable[..., Any]] = Registry("predictor")
PREDICTORS.register("gcn", GCNPredictor)
PREDICTORS.register("mlp", MLPPredictor)
PREDICTORS.register("rf", RandomForestPredictor)
PREDICTORS.register("gbm", BoostingPredictor)


def make_predictor(name: str, **options: Any) -> Any:
    """Build a registered predictor; unknown options are a one-line ConfigError."""
    from dnas.errors import ConfigError

    factory = PREDICTORS.get(name, "predictor")
    try:
        return factory(**options)
    except TypeError as e:
        raise ConfigError(f"predictor {name}: bad option ({e})") from None


__all__ = [
    "PREDICTORS",
    "make_predictor",
    "GCNPredictor",
    "MLPPredictor",
    "NeuralPredictor",
    "TreePredictor",
    "RandomForestPredictor",
    "BoostingPredictor",
    "ZCFeatures",
    "FEATURE_SETS",
    "kendall_tau",
    "spearman",
    "predictor_evaluate",
]
