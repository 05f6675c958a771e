"""The ``predictor:`` evaluator: score architectures with a performance predictor fitted on records.

``predictor:RECORDS[,model=gcn|mlp,epochs=E,ensemble=M,seed=K]`` fits the predictor (the GCN
on ``space.graph`` or the MLP on ``space.onehot``, pairwise ranking loss, an ensemble) once on
every record of a records file (a built-in table name or a JSON file in the tabular format),
then answers each query with the predicted accuracy. Unlike ``tabular:`` it scores *any*
architecture of the space, so a strategy can search beyond the records: the usual way a
surrogate benchmark (NAS-Bench-301) is used. A query costs one predictor forward pass.

Predicted accuracies are on the records' scale (the ensemble's standardised scores mapped back
with the training accuracies' mean and spread), so ``best_accuracy`` reads like a table value,
but it is a prediction: the history marks every row with ``cost["predicted"] = 1``.
"""
from __future__ import annotations

from typing import Any

from dnas.errors import ConfigError, DnasError
from dnas.evaluators.base import EVALUATORS, EvalResult, parse_options

PREDICTOR_OPTIONS: dict[str, type] = {"records": str, "model": str, "epochs": int, "ensemble": int, "seed": int}


class PredictorEvaluator:
    """Predicted accuracy of a predictor fitted on ``records`` (see the module docstring)."""

    def __init__(self, space: Any, *, records: str, model: str = "gcn", epochs: int = 200, ensemble: int = 3,
                 seed: int = 0) -> None:
        from dnas.evaluators.tabular import load_records
        from dnas.predictors import make_predictor

        self.arch_space = space
        self.source, recs = load_records(records)
        archs = []
        for i, r in enumerate(recs):
            try:
                archs.append(space.parse(r["key"]))
            except DnasError as e:
                raise ConfigError(f"evaluator predictor: record {i} of {self.source} is not a {space.name} "
                                  f"architecture ({e}); fit on records of the searched space") from None
        self.predictor = make_predictor(model, seed=seed, epochs=epochs, ensemble=ensemble, space=space)
        self.predictor.fit(archs, [r["val_accuracy"] for r in recs])
        self._cache: dict[str, float] = {}

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        key = self.arch_space.hash(arch)
        cached = key in self._cache
        if not cached:
            self._cache[key] = float(self.predictor.predict([arch])[0])
        return EvalResult(accuracy=self._cache[key], cost={"predicted": 1.0}, budget=budget, cached=cached)


@EVALUATORS.register("predictor")
def _make_predictor(arg: str, space: Any) -> PredictorEvaluator:
    opts = parse_options("predictor", arg, PREDICTOR_OPTIONS, "records")
    if "records" not in opts:
        raise ConfigError("evaluator predictor: give records to fit on, e.g. 'predictor:nb201_cifar10' or 'predictor:FILE.json'")
    return PredictorEvaluator(space, **opts)


_make_predictor.options = PREDICTOR_OPTIONS  # type: ignore[attr-defined]  (read by complete_spec)
