"""Ranking metrics and the held-out evaluation protocol for performance predictors.

A predictor is judged the way a search uses it: trained on ``train_size`` evaluated archs, it
must *order* the rest. :func:`predictor_evaluate` reports Kendall tau and Spearman rho on the
records not used for training, per seed and averaged, next to baselines that cost nothing
(ranking by parameter count or FLOPs) and the same predictor untrained, so a number can be
read in context: on NB201 ranking by parameter count alone already gives tau ~0.56.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

from dnas.errors import ConfigError, DataError
from dnas.spaces.nb201 import NB201Arch


def _finite(x: float) -> float:
    # scipy returns NaN when one side is constant (e.g. an untrained net predicting one value):
    # no ranking information, so report 0.
    return 0.0 if x is None or math.isnan(x) else float(x)


def kendall_tau(pred: Sequence[float], target: Sequence[float]) -> float:
    """Kendall's tau-b between predictions and targets (0.0 if either is constant)."""
    return _finite(stats.kendalltau(pred, target)[0])


def spearman(pred: Sequence[float], target: Sequence[float]) -> float:
    """Spearman's rank correlation (0.0 if either is constant)."""
    return _finite(stats.spearmanr(pred, target)[0])


def _load(records: "str | os.PathLike | list") -> list[dict]:
    from dnas.evaluators.tabular import load_records

    src, recs = load_records(records)
    return recs


def records_space(recs: list[dict]) -> str:
    """The space a records list holds (NB201 'arch' strings or DARTS-style genotypes)."""
    return "nb201" if isinstance(recs[0]["key"], NB201Arch) else "darts"


def predictor_evaluate(
    records: "str | os.PathLike | list",
    predictor: "str | Callable[..., Any]",
    train_size: int = 100,
    seeds: "int | Sequence[int]" = 3,
    *,
    features: str = "graph",
    zc_proxies: "Sequence[str] | None" = None,
    untrained: bool = True,
    **options: Any,
) -> dict:
    """Train on ``train_size`` random records per seed, score the rest.

    ``records`` is a file, a built-in table name or a list of record dicts; ``predictor`` a
    registered name (``gcn``, ``mlp``) or a factory ``f(seed=..., **options)`` returning an
    object with ``fit(archs, accuracies)`` and ``predict(archs)``. Returns mean ``kendall_tau``
    and ``spearman`` (with their std over seeds), ``per_seed`` values and ``baselines``.

    ``features`` (``graph``, ``zc``, ``graph+zc``) chooses the inputs; proxy scores come from the
    records' fields (``zc_proxies``: which ones; default every known proxy some record
    carries), preprocessed on each seed's training split only. With proxies, ``baselines``
    also holds each proxy's own ranking of the held-out archs (``<proxy>_kendall_tau``).
    ``untrained=False`` skips the untrained-predictor baseline (half the time of a neural one).
    """
    from dnas.predictors import make_predictor

    recs = _load(records)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds: need at least one seed")
    if not 2 <= train_size <= len(recs) - 2:
        raise ConfigError(f"train_size: must be in [2, {len(recs) - 2}] for {len(recs)} records, got {train_size}")
    zc = None
    if "zc" in str(features):
        from dnas.predictors.zcfeatures import ZCFeatures

        zc = ZCFeatures.from_records(recs, zc_proxies)
    shown = dict(options, features=features, **({"zc_proxies": zc.proxies} if zc is not None else {}))
    if isinstance(predictor, str):
        options = {"space": records_space(recs), **options}
        factory = lambda **kw: make_predictor(predictor, **kw)  # noqa: E731
    else:
        factory = predictor
    if isinstance(predictor, str) or features != "graph":
        options = {**options, "features": features, "zc": zc}
    archs = [r["key"] for r in recs]
    acc = np.array([r["val_accuracy"] for r in recs])
    cost = {k: np.array([r.get(k, np.nan) for r in recs]) for k in ("params_m", "flops_m")}

    per_seed, base_rows = [], []
    for s in seed_list:
        idx = np.random.default_rng(s).permutation(len(recs))
        tr, te = idx[:train_size], idx[train_size:]
        t0 = time.perf_counter()
        model = factory(seed=s, **options).fit([archs[i] for i in tr], acc[tr])
        fit_s = time.perf_counter() - t0
        pred = model.predict([archs[i] for i in te])
        per_seed.append(
            {"seed": s, "kendall_tau": kendall_tau(pred, acc[te]), "spearman": spearman(pred, acc[te]),
             "fit_seconds": round(fit_s, 3)}
        )
        row: dict[str, float] = {}
        for k, v in cost.items():
            if not np.isnan(v[te]).any():
                row[f"{k.split('_')[0]}_kendall_tau"] = kendall_tau(v[te], acc[te])
                row[f"{k.split('_')[0]}_spearman"] = spearman(v[te], acc[te])
        if zc is not None:  # each proxy alone; a missing score ranks last
            raw = zc.raw([archs[i] for i in te])
            for j, name in enumerate(zc.proxies):
                col = np.where(np.isnan(raw[:, j]), -np.inf, raw[:, j])
                row[f"{name}_kendall_tau"] = kendall_tau(col, acc[te])
        if untrained and getattr(model, "epochs", None) is not None:
            untrained = factory(seed=s, **{**options, "epochs": 0}).fit([archs[i] for i in tr], acc[tr])
            row["untrained_kendall_tau"] = kendall_tau(untrained.predict([archs[i] for i in te]), acc[te])
        base_rows.append(row)

    def mean(key: str, rows: list[dict]) -> float:
        return round(float(np.mean([r[key] for r in rows])), 4)

    taus = [r["kendall_tau"] for r in per_seed]
    return {
        "predictor": predictor if isinstance(predictor, str) else getattr(predictor, "__name__", "custom"),
        "train_size": train_size,
        "test_size": len(recs) - train_size,
        "seeds": seed_list,
        "kendall_tau": mean("kendall_tau", per_seed),
        "kendall_tau_std": round(float(np.std(taus)), 4),
        "spearman": mean("spearman", per_seed),
        "per_seed": per_seed,
        "baselines": {k: mean(k, base_rows) for k in base_rows[0]},
        "features": features,
        "options": {k: v for k, v in shown.items() if k != "features"},
    }
