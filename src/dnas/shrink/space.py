"""The shrunk space as a space: pockets any search can run on.

A :class:`ShrunkSpace` is a list of :class:`Pocket` (a centre, a radius and the member
architectures within that edit distance of it). Searches use it in two ways:

* **black-box strategies** (random, evolution, BOHB): :class:`RestrictedEvaluator` wraps any
  evaluator and exposes the shrunk set through ``archs()``, the hook every discrete strategy
  already honours (proposals are drawn from ``archs()``), so
  ``run_discrete_search(space="nb201", strategy="evolution", evaluator=RestrictedEvaluator(ev,
  shrunk), ...)`` searches only pocket members; :func:`search_shrunk` does exactly that;
* **one-shot supernets**: :meth:`ShrunkSpace.archs` to sample only pocket members, or
  :meth:`ShrunkSpace.edge_mask` (per decision of the space's encoding; NB201: per edge) to mask
  the candidates each edge may use (a looser
  space: the product of the per-edge candidates contains the pockets and more), see
  :mod:`dnas.shrink.oneshot`.

:class:`PredictorEvaluator` turns a fitted performance predictor into an evaluator, so the
shrinkage itself can be driven by a predictor instead of a table.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np

from dnas.errors import DataError, GenotypeError
from dnas.evaluators.base import EvalResult, Evaluator, finite_archs
from dnas.io import write_json
from dnas.spaces.base import SearchSpace, get_space

FORMAT = "dnas.shrunk_space"
VERSION = 1


_ENVELOPE = ("format", "version", "space", "meta")


def arch_to_json(arch: Hashable, space: "str | SearchSpace") -> Any:
    """The architecture as the space writes it (its genotype fields, without the envelope)."""
    d = get_space(space).to_dict(arch)
    return {k: v for k, v in d.items() if k not in _ENVELOPE}


def arch_from_json(obj: Any, space: "str | SearchSpace") -> Hashable:
    """Read what :func:`arch_to_json` wrote (or an older file's NB201 string / DARTS dict)."""
    if not isinstance(obj, (str, dict)):
        raise GenotypeError(f"shrunk space: expected an arch string or genotype object, got {type(obj).__name__}")
    return get_space(space).parse(obj)


@dataclass(frozen=True)
class Pocket:
    """Architectures within ``radius`` of ``center``; ``estimate`` is the mean accuracy of the
    pocket's members that the shrinkage evaluated (``evaluated`` of them), what it believed."""

    center: Hashable
    radius: int
    members: tuple[Hashable, ...]
    estimate: float | None = None
    evaluated: int = 0


@dataclass
class ShrunkSpace:
    """A union of pockets (see the module docstring). ``full_size`` is the size of the space it
    was shrunk from, for the shrink ratio."""

    space: str
    pockets: list[Pocket]
    full_size: int
    info: dict = field(default_factory=dict)

    def archs(self) -> list[Hashable]:
        """The distinct members of all pockets (pockets may overlap), in pocket order."""
        return list(dict.fromkeys(a for p in self.pockets for a in p.members))

    def __len__(self) -> int:
        return len(self.archs())

    def __contains__(self, arch: Any) -> bool:
        return any(arch in p.members for p in self.pockets)

    def pocket_of(self, arch: Hashable) -> int:
        """Index of the first pocket holding ``arch`` (``-1`` if none)."""
        for i, p in enumerate(self.pockets):
            if arch in p.members:
                return i
        return -1

    def edge_mask(self) -> np.ndarray:
        """``(decisions, max choices)`` bool over the space's categorical encoding: True where
        some member takes that choice at that decision (NB201: ``(6, 5)``, edges x ops in
        :data:`~dnas.spaces.nb201.NB201_OPS` order). A supernet masked by it samples from the
        product of the allowed choices, which contains every pocket member."""
        members = self.archs()
        if not members:
            raise GenotypeError("edge_mask: the shrunk space has no members")
        sp = get_space(self.space)
        mask = np.zeros((len(sp.cardinalities), max(sp.cardinalities)), dtype=bool)
        for a in members:
            mask[np.arange(len(sp.cardinalities)), sp.encode(a)] = True
        return mask

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "space": self.space,
            "full_size": self.full_size,
            "pockets": [
                {"center": arch_to_json(p.center, self.space), "radius": p.radius, "estimate": p.estimate,
                 "evaluated": p.evaluated, "members": [arch_to_json(a, self.space) for a in p.members]}
                for p in self.pockets
            ],
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "shrunk space") -> "ShrunkSpace":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"{where}: not a dnas shrunk space (format {FORMAT!r}); write one with 'dnas shrink --out'")
        if d.get("version") != VERSION:
            raise DataError(f"{where}.version: expected {VERSION}, got {d.get('version')!r}")
        space = str(d.get("space", "nb201"))
        try:
            pockets = [
                Pocket(arch_from_json(p["center"], space), int(p["radius"]),
                       tuple(arch_from_json(a, space) for a in p["members"]), p.get("estimate"), int(p.get("evaluated", 0)))
                for p in d["pockets"]
            ]
        except (KeyError, TypeError, GenotypeError) as e:
            raise DataError(f"{where}.pockets: malformed pocket ({e}); expected center, radius, members") from None
        return cls(space, pockets, int(d.get("full_size", 0)), dict(d.get("info", {})))

    def save(self, path: "str | os.PathLike") -> Path:
        return write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "ShrunkSpace":
        p = Path(path)
        from dnas.errors import DnasError
        from dnas.io import read_json

        try:
            d = read_json(p, "shrunk space")
        except DnasError as e:
            raise DataError(f"shrunk space: {e}") from None
        return cls.from_dict(d, str(p))


# ---------------------------------------------------------------------------- evaluators
class RestrictedEvaluator:
    """An evaluator whose ``archs()`` is the shrunk set (intersected with the wrapped
    evaluator's own architectures when it holds a finite set), so every discrete strategy
    searches only pocket members. Evaluating anything else raises :class:`DataError`."""

    def __init__(self, evaluator: Evaluator, shrunk: ShrunkSpace):
        self.inner = evaluator
        self.shrunk = shrunk
        inner = finite_archs(evaluator)
        members = shrunk.archs()
        if inner is not None:
            held = set(inner)
            members = [a for a in members if a in held]
        if not members:
            raise DataError("restricted evaluator: no pocket member is held by the evaluator; shrink with this evaluator")
        self._archs = members
        self._set = set(members)
        self.space = getattr(evaluator, "space", shrunk.space)

    def archs(self) -> Sequence[Hashable]:
        return list(self._archs)

    def __len__(self) -> int:
        return len(self._archs)

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        if arch not in self._set:
            raise DataError(f"restricted evaluator: {arch} is outside the shrunk space; propose from archs()")
        return self.inner.evaluate(arch, budget)


class PredictorEvaluator:
    """A fitted predictor (``predict(archs) -> scores``, e.g. :mod:`dnas.predictors`) as an
    evaluator: the predicted score stands in for the accuracy."""

    def __init__(self, predictor: Any, space: str = "nb201"):
        if not callable(getattr(predictor, "predict", None)):
            raise DataError("predictor evaluator: the predictor needs a predict(archs) method; fit one first")
        self.predictor = predictor
        self.space = space

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        return EvalResult(accuracy=float(np.asarray(self.predictor.predict([arch])).reshape(-1)[0]), budget=budget)


def search_shrunk(shrunk: ShrunkSpace, evaluator: "str | Evaluator", *, strategy: str, budget: int, seed: int,
                  **options: Any) -> dict:
    """Run a registered discrete strategy (random, evolution, bohb...) on the pocket members."""
    from dnas.evaluators.base import make_evaluator
    from dnas.strategies.discrete import run_discrete_search

    ev = RestrictedEvaluator(make_evaluator(evaluator), shrunk)
    return run_discrete_search(space=shrunk.space, strategy=strategy, evaluator=ev, budget=budget, seed=seed, **options)
