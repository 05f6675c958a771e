"""Objectives of a multi-objective search and the one way dnas measures a front: hypervolume.

Every discrete strategy can run with ``objectives`` (``--objectives error,params``); all are
minimised:

* ``error``: ``100 - accuracy`` (percent) of the evaluator's result;
* ``params``: millions of parameters, ``macs``: millions of multiply-adds, ``latency``: ms;
  taken from the evaluator's :class:`~dnas.evaluators.base.EvalResult` ``cost`` when it carries
  them (tables: ``params_m``, ``flops_m``, which NAS-Bench-201/301 count as multiply-adds;
  ``macs_m``, ``latency_ms``), else asked of the space (:meth:`SearchSpace.cost`).

Hypervolume, one documented way (so NSGA-II, random search and anything else compare
directly): the objectives are normalised to ``[0, 1]`` between an *ideal* point and a
*reference* point, and the hypervolume (pymoo's exact ``HV``) of the run's non-dominated front
is measured against the reference ``(1, ..., 1)``; it is the fraction of the box between the two
points that the front dominates (0: nothing, 1: the ideal point was found). Both points come from
the evaluator, not from the run:

* an evaluator holding a finite set (a table): the ideal is the table's best and the reference the
  table's **worst** value of each objective over all its records (``hv_reference_from: table``);
* any other evaluator: ``error`` runs from 0 to 100 and each cost objective from 0 to the largest
  value the run observed (``hv_reference_from: observed``; such values compare runs of one
  space only roughly, since the box depends on what the run saw).

Points on the reference (the table's worst in some objective) add nothing, as usual.
"""
from __future__ import annotations

from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult, Evaluator, finite_archs

OBJECTIVES = ("error", "params", "macs", "latency")
_COST_KEYS = {"params": ("params_m",), "macs": ("macs_m", "flops_m"), "latency": ("latency_ms",)}


def parse_objectives(spec: "str | Sequence[str] | None") -> tuple[str, ...] | None:
    """``"error,params"`` or a list -> a validated tuple (``None`` stays ``None``)."""
    if spec is None:
        return None
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    bad = [n for n in names if n not in OBJECTIVES]
    if bad or not names:
        raise ConfigError(f"objectives: unknown {', '.join(bad) or '(empty)'}; give a comma list of {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives: {','.join(names)} names one twice; list each once")
    return tuple(names)


def objective_vector(space: Any, arch: Hashable, result: EvalResult, names: Sequence[str]) -> tuple[float, ...]:
    """The (minimised) objective values of one evaluated architecture (see the module docstring)."""
    out = []
    for n in names:
        if n == "error":
            out.append(100.0 - float(result.accuracy))
            continue
        value = next((result.cost[k] for k in _COST_KEYS[n] if k in result.cost), None)
        if value is None:
            try:
                value = space.cost(arch, n)
            except ConfigError as e:
                raise ConfigError(
                    f"objectives: {n}: the evaluator reports {', '.join(sorted(result.cost)) or 'no cost'} and space "
                    f"{space.name} cannot compute it ({e}); give an evaluator with {' or '.join(_COST_KEYS[n])}"
                ) from None
        out.append(float(value))
    return tuple(out)


def _peek(evaluator: Evaluator, arch: Hashable) -> EvalResult | None:
    """A table's result for ``arch`` without counting a query (``None``: the evaluator cannot)."""
    lookup = getattr(evaluator, "lookup", None)
    if not callable(lookup):
        inner = getattr(evaluator, "inner", None)  # wrappers (shrunk-space restriction)
        return _peek(inner, arch) if inner is not None else None
    rec = lookup(arch)
    cost = {k: v for k, v in rec.items() if k not in ("key", "val_accuracy") and isinstance(v, (int, float))}
    return EvalResult(accuracy=float(rec["val_accuracy"]), cost=cost)


def reference_box(evaluator: Evaluator, space: Any, names: Sequence[str],
                  observed: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, str]:
    """``(ideal, reference, how)`` for :func:`hypervolume` (see the module docstring)."""
    archs = finite_archs(evaluator)
    if archs is not None:
        rows = []
        for a in archs:
            r = _peek(evaluator, a)
            if r is None:
                rows = []
                break
            rows.append(objective_vector(space, a, r, names))
        if rows:
            F = np.asarray(rows, dtype=float)
            return F.min(0), F.max(0), "table"
    F = np.asarray(list(observed), dtype=float).reshape(-1, len(names))
    ideal = np.zeros(len(names))
    ref = np.array([100.0 if n == "error" else (F[:, i].max() if len(F) else 1.0) for i, n in enumerate(names)])
    return ideal, ref, "observed"


def pareto_front(F: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of ``F`` (minimisation), in row order."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return []
    return sorted(int(i) for i in NonDominatedSorting().do(F, only_non_dominated_front=True))


def hypervolume(F: np.ndarray, ideal: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of the points ``F`` normalised into the ``ideal``..``ref`` box, against
    ``(1, ..., 1)``: a number in ``[0, 1]``."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float).reshape(-1, len(ref))
    span = np.where(ref - ideal > 0, ref - ideal, 1.0)
    Z = (F - ideal) / span
    Z = Z[(Z < 1.0).all(axis=1)]  # points on or beyond the reference dominate nothing
    if len(Z) == 0:
        return 0.0
    return float(HV(ref_point=np.ones(len(ref)))(Z))


def front_summary(space: Any, evaluator: Evaluator, names: Sequence[str], archs: Sequence[Hashable],
                  values: Sequence[Sequence[float]]) -> dict:
    """The result fields of a multi-objective run: its front and, with two or more objectives,
    ``hypervolume`` and the box it was measured in."""
    F = np.asarray(values, dtype=float).reshape(-1, len(names))
    idx = pareto_front(F)
    front = sorted(({"arch": space.to_str(archs[i]), **{n: round(float(F[i, k]), 6) for k, n in enumerate(names)}}
                    for i in idx), key=lambda d: [d[n] for n in names])
    out: dict[str, Any] = {"objectives": list(names), "front": front}
    if len(names) >= 2:
        ideal, ref, how = reference_box(evaluator, space, names, F)
        out.update(hypervolume=round(hypervolume(F[idx], ideal, ref), 6), hv_reference=ref.round(6).tolist(),
                   hv_ideal=ideal.round(6).tolist(), hv_reference_from=how)
    return out
