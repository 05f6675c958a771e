"""The evaluator interface shared by every discrete search strategy.

A strategy only ever calls ``evaluator.evaluate(arch, budget)`` and, when the evaluator holds a
finite set of architectures (a table), ``evaluator.archs()`` to restrict its proposals; so random
search, evolution and BOHB run unchanged on a table, on short real training or on a predictor.

To add an evaluator kind, register a factory taking the text after ``kind:``::

    from dnas.evaluators.base import EVALUATORS

    @EVALUATORS.register("train")
    def _make_train(arg: str) -> Evaluator:
        return TrainEvaluator(epochs=int(arg or 1))

and ``make_evaluator("train:3")`` (and the CLI's ``--evaluator train:3``) builds it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol, Sequence, runtime_checkable

from dnas.errors import ConfigError
from dnas.registry import Registry


@dataclass(frozen=True)
class EvalResult:
    """The score of one architecture.

    ``accuracy`` is in percent (higher is better); ``cost`` holds whatever the evaluator knows
    (``params_m``, ``flops_m``, ``seconds``...); ``budget`` is the fidelity actually used
    (``None`` = full); ``cached`` says no new work was paid for (a repeated query).
    """

    accuracy: float
    cost: dict[str, float] = field(default_factory=dict)
    budget: float | None = None
    cached: bool = False


@runtime_checkable
class Evaluator(Protocol):
    """Scores architectures. ``budget`` is a fidelity (epochs, or a fraction) that multi-fidelity
    strategies such as BOHB pass; evaluators without fidelities ignore it."""

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult: ...


@runtime_checkable
class FiniteEvaluator(Evaluator, Protocol):
    """An evaluator that can only score a known, finite set of architectures (e.g. a table).
    Strategies must draw their proposals from :meth:`archs`."""

    def archs(self) -> Sequence[Hashable]: ...


def finite_archs(evaluator: Evaluator) -> Sequence[Hashable] | None:
    """The evaluator's architectures if it holds a finite set, else ``None``."""
    fn = getattr(evaluator, "archs", None)
    return fn() if callable(fn) else None


#: Modules that register the built-in evaluator kinds (imported on first use).
EVALUATOR_MODULES: list[str] = ["dnas.evaluators.tabular", "dnas.evaluators.zerocost"]

#: ``kind -> factory(arg: str) -> Evaluator``; ``arg`` is the text after ``kind:``.
EVALUATORS: Registry[Callable[[str], Evaluator]] = Registry("evaluator")


def make_evaluator(spec: "str | Evaluator") -> Evaluator:
    """Build an evaluator from ``"kind:arg"`` (e.g. ``"tabular:nb201_cifar10"``,
    ``"tabular:records.json"``); an evaluator object is returned unchanged."""
    if not isinstance(spec, str):
        if isinstance(spec, Evaluator):
            return spec
        raise ConfigError(f"evaluator: expected 'kind:arg' or an Evaluator, got {type(spec).__name__}")
    for module in EVALUATOR_MODULES:  # built-in kinds register themselves on import
        importlib.import_module(module)

    kind, sep, arg = spec.partition(":")
    if not sep or not kind:
        raise ConfigError(
            f"evaluator: {spec!r} is not 'kind:arg'; e.g. 'tabular:nb201_cifar10' or 'tabular:records.json' "
            f"(kinds: {', '.join(sorted(EVALUATORS.names()))})"
        )
    return EVALUATORS.get(kind, "evaluator")(arg)
