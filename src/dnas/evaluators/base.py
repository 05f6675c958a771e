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
import inspect
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
EVALUATOR_MODULES: list[str] = [
    "dnas.evaluators.tabular",
    "dnas.evaluators.training",
    "dnas.evaluators.weight_sharing",
    "dnas.evaluators.predictor",
    "dnas.evaluators.zerocost",
]

#: ``kind -> factory(arg: str[, space=SearchSpace]) -> Evaluator``; ``arg`` is the text after
#: ``kind:``. Factories that declare a ``space`` parameter receive the searched space.
EVALUATORS: Registry[Callable[..., Evaluator]] = Registry("evaluator")


def parse_options(kind: str, arg: str, allowed: dict[str, type], positional: str) -> dict[str, Any]:
    """``"3,data=digits,max_samples=200"`` -> ``{positional: "3", "data": "digits", ...}``.

    Evaluator specs carry every setting in the string, so a run directory's saved evaluator
    spec alone rebuilds the same evaluator on ``--resume``. Values are converted with the types
    of ``allowed``; unknown keys and bad values fail in one line listing what is allowed."""
    out: dict[str, Any] = {}
    parts = [p.strip() for p in arg.split(",")] if arg else []
    for i, part in enumerate(parts):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if i != 0:
                raise ConfigError(f"evaluator {kind}: {part!r} is not key=value; allowed keys: {', '.join(allowed)}")
            key, value = positional, part
        key = key.strip()
        if key not in allowed:
            raise ConfigError(f"evaluator {kind}: unknown option {key!r}; allowed: {', '.join(allowed)}")
        try:
            out[key] = allowed[key](value.strip())
        except ValueError:
            raise ConfigError(f"evaluator {kind}: option {key}={value!r} is not a valid {allowed[key].__name__}") from None
    return out


def evaluator_kind(spec: str) -> str:
    """The ``kind`` of a ``kind:arg`` spec (``""`` when it has none)."""
    kind, sep, _ = spec.partition(":")
    return kind if sep else ""


def complete_spec(spec: str, **defaults: Any) -> str:
    """``spec`` with ``key=value`` appended for every default its kind accepts (its factory's
    ``options``) and the spec does not set, e.g. the CLI's ``--data`` and ``--seed``: so the
    saved spec alone rebuilds the same evaluator. Other kinds are returned unchanged."""
    for module in EVALUATOR_MODULES:
        importlib.import_module(module)
    kind, _, arg = spec.partition(":")
    if kind not in EVALUATORS:
        return spec
    allowed = getattr(EVALUATORS.get(kind), "options", {})
    given = {p.partition("=")[0].strip() for p in arg.split(",") if "=" in p}
    extra = [f"{k}={v}" for k, v in defaults.items() if v is not None and k in allowed and k not in given]
    if not extra:
        return spec
    return f"{kind}:{','.join(([arg] if arg else []) + extra)}"


def make_evaluator(spec: "str | Evaluator", *, space: Any = None) -> Evaluator:
    """Build an evaluator from ``"kind:arg"`` (e.g. ``"tabular:nb201_cifar10"``,
    ``"train:2,data=digits"``); an evaluator object is returned unchanged. ``space`` (a
    :class:`~dnas.spaces.base.SearchSpace` or name) is handed to kinds that build networks."""
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
    factory = EVALUATORS.get(kind, "evaluator")
    if "space" in inspect.signature(factory).parameters:
        from dnas.spaces.base import get_space

        if space is None:
            raise ConfigError(f"evaluator {kind}: needs the searched space; pass space=... (the CLI passes --space)")
        return factory(arg, space=get_space(space))
    return factory(arg)
