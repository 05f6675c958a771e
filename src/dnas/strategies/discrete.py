"""Run a discrete (black-box) architecture search: space + strategy + evaluator + query budget.

This is what ``dnas search --space nb201 --strategy random|evolution|bohb --evaluator
tabular:FILE --budget N --seed S`` calls. The result dict (and ``result.json``) holds
``best_arch``, ``best_accuracy``, ``queries`` and the per-query ``history``; ``events.jsonl``
gets one line per evaluation as it happens, so a long run can be followed and a killed one
inspected.
"""
from __future__ import annotations

import importlib
import inspect
import time
from pathlib import Path
from typing import Any

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult, Evaluator, finite_archs, make_evaluator
from dnas.io import append_jsonl, write_json
from dnas.strategies.base import STRATEGIES, DiscreteStrategy, Proposal, get_space
from dnas.strategies.objectives import front_summary, objective_vector, parse_objectives

#: Modules that register discrete strategies; optional ones may be missing.
STRATEGY_MODULES = (
    "dnas.strategies.random_search",
    "dnas.strategies.evolution",
    "dnas.strategies.bohb",
    "dnas.strategies.local_search",
    "dnas.strategies.nsga2",
    "dnas.strategies.bananas",
    "dnas.strategies.npenas",
)


def load_strategies() -> list[str]:
    """Import every strategy module so its registration runs; return the registered names."""
    for mod in STRATEGY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    return STRATEGIES.names()


def make_strategy(name: str, space: str, *, seed: int, candidates=None, **options: Any) -> DiscreteStrategy:
    """Build a registered strategy, turning bad options into a one-line :class:`ConfigError`."""
    load_strategies()
    cls = STRATEGIES.get(name, "strategy")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = {k for k, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"seed", "candidates"}
        unknown = set(options) - allowed
        if unknown:
            raise ConfigError(
                f"strategy {name}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}"
            )
    return cls(get_space(space), seed=seed, candidates=candidates, **options)


def run_discrete_search(
    *,
    space: "str | Any",
    strategy: str,
    evaluator: "str | Evaluator",
    budget: int,
    seed: int,
    out_dir: Path | None = None,
    objectives: "str | list[str] | tuple[str, ...] | None" = None,
    **strategy_options: Any,
) -> dict:
    """Search ``space`` with ``strategy`` for ``budget`` evaluations and return the result dict.

    On a finite evaluator (a table) proposals are restricted to its architectures. With
    ``objectives`` (e.g. ``"error,params"``, see :mod:`dnas.strategies.objectives`) every history
    row carries the objective values and the result the non-dominated ``front`` and, for two or
    more objectives, its ``hypervolume``, whatever the strategy; a multi-objective strategy
    (NSGA-II) is given them and reports its default ones when none are named.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget: must be a positive integer number of queries, got {budget!r}")
    ev = make_evaluator(evaluator)
    space = get_space(space)  # a name or a SearchSpace object (a user's, with its options)
    bind = getattr(ev, "bind_space", None)
    if callable(bind):  # evaluators that build networks of the searched space (zc:)
        bind(space)
    ev_space = getattr(ev, "space", None)
    ev_space = getattr(ev_space, "name", ev_space)  # a name or a SearchSpace
    if ev_space is not None and ev_space != space.name:
        raise ConfigError(f"space: evaluator {evaluator!r} holds {ev_space!r} architectures, not {space.name!r}; use --space {ev_space}")
    candidates = finite_archs(ev)
    if candidates is not None and budget > len(candidates):
        raise ConfigError(f"budget: {budget} queries exceed the {len(candidates)} architectures the evaluator holds")
    objectives = parse_objectives(objectives)
    load_strategies()
    cls = STRATEGIES.get(strategy, "strategy")
    if objectives is None:
        objectives = getattr(cls, "default_objectives", None)
    if objectives is not None and "objectives" in inspect.signature(cls.__init__).parameters:
        strategy_options = {**strategy_options, "objectives": objectives}
    strat = make_strategy(strategy, space, seed=seed, candidates=candidates, **strategy_options)
    obj_values: list[tuple[float, ...]] = []
    obj_archs: list[Any] = []

    events = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        events = out_dir / "events.jsonl"
        if events.exists():
            events.unlink()  # a fresh run; strategies that resume manage their own state

    history: list[dict] = []
    best: dict[str, Any] = {"arch": None, "accuracy": float("-inf")}
    t0 = time.perf_counter()

    def report(p: Proposal, r: EvalResult) -> None:
        if r.accuracy > best["accuracy"]:
            best.update(arch=p.arch, accuracy=r.accuracy)
        row = {
            "query": len(history) + 1,
            "arch": strat.space.to_str(p.arch),
            "accuracy": r.accuracy,
            "best_so_far": best["accuracy"],
            "budget": p.budget,
            "cost": dict(r.cost),
            "cached": r.cached,
        }
        if objectives is not None:
            v = objective_vector(strat.space, p.arch, r, objectives)
            obj_values.append(v)
            obj_archs.append(p.arch)
            row["objectives"] = dict(zip(objectives, v))
        history.append(row)
        if events is not None:
            append_jsonl(events, {"event": "query", **row})

    strat.run(ev, budget, report)
    if not history:
        raise ConfigError(f"strategy {strategy}: evaluated nothing within budget {budget}")
    result = {
        "space": space.name,
        "strategy": strategy,
        "evaluator": evaluator if isinstance(evaluator, str) else type(ev).__name__,
        "seed": seed,
        "budget": budget,
        "options": strategy_options,
        "best_arch": strat.space.to_str(best["arch"]),
        "best_accuracy": best["accuracy"],
        "queries": len(history),
        "seconds": round(time.perf_counter() - t0, 3),
        "history": history,
    }
    if objectives is not None:
        result["options"] = {k: v for k, v in strategy_options.items() if k != "objectives"}
        result.update(front_summary(strat.space, ev, objectives, obj_archs, obj_values))
    if out_dir is not None:
        write_json(out_dir / "result.json", result)
    return result
