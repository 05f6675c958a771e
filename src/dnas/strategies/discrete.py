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

import yaml

from dnas.errors import ConfigError, DnasError
from dnas.evaluators.base import EvalResult, Evaluator, finite_archs, make_evaluator
from dnas.io import loads_yaml, read_json, write_json
from dnas.run import RunDir
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


class _ReplayEvaluator:
    """Answers the queries a killed run already logged from its events.jsonl (in the order they
    were asked), and forwards the rest to the real evaluator. Strategies are seeded, so replaying
    their logged answers walks them back to exactly where the run stopped: no pickled strategy
    state, and a resumed run ends with the result of an uninterrupted one."""

    def __init__(self, evaluator: Evaluator, logged: list[dict]) -> None:
        self._ev = evaluator
        self._queue: dict[tuple, list[dict]] = {}
        for row in logged:
            self._queue.setdefault((row["arch"], row.get("budget")), []).append(row)
        self._to_str = None

    def __getattr__(self, name: str) -> Any:  # archs(), space, ... of the real evaluator
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ev, name)

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        rows = self._queue.get((self._to_str(arch), budget))
        if rows:
            row = rows.pop(0)
            return EvalResult(accuracy=row["accuracy"], cost=dict(row.get("cost") or {}),
                              budget=row.get("eval_budget"), cached=bool(row.get("cached")))
        return self._ev.evaluate(arch, budget)


def _discrete_config(space: str, strategy: str, evaluator: Any, budget: int, seed: int, options: dict,
                     objectives=None) -> dict:
    cfg = {"kind": "discrete", "space": space, "strategy": strategy,
           "evaluator": evaluator if isinstance(evaluator, str) else None,
           "budget": budget, "seed": seed, "options": {k: v for k, v in options.items() if k != "objectives"}}
    if objectives is not None:
        cfg["objectives"] = list(objectives)
    return cfg


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed: must be an integer in 0 .. 2**63-1, got {seed!r}")


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
    ``out_dir`` the run owns that directory (it must be new or empty; see :class:`RunDir`) and
    can be continued with :func:`resume_discrete_search`.
    """
    _check_budget(budget)
    _check_seed(seed)
    objectives = parse_objectives(objectives)
    ev, strat, objectives = _prepare(space, strategy, evaluator, budget, seed, strategy_options, objectives)
    if out_dir is None:
        return _search(space, strategy, evaluator, ev, strat, budget, seed, strategy_options, None, [], objectives)
    name = getattr(space, "name", space)
    with RunDir(out_dir).create() as run:
        run.save_config_text(yaml.safe_dump(_discrete_config(name, strategy, evaluator, budget, seed, strategy_options,
                                                             objectives), sort_keys=False))
        run.log("start", kind="discrete", space=name, strategy=strategy, budget=budget, seed=seed)
        return _search(space, strategy, evaluator, ev, strat, budget, seed, strategy_options, run, [], objectives)


def resume_discrete_search(out_dir: str | Path, *, budget: int | None = None) -> dict:
    """Continue the discrete search in ``out_dir`` (killed at any point, or finished and given a
    larger ``budget``) and return its result; a finished run with no larger budget is returned as
    it is (``already_finished``), nothing rewritten."""
    from dnas.manifest import read_text_checked

    with RunDir(out_dir).open() as run:
        cfg = loads_yaml(read_text_checked(run.config, "config"), str(run.config))
        if not isinstance(cfg, dict) or cfg.get("kind") != "discrete":
            raise ConfigError(f"{run.config}: not the config of a discrete search; resume it with the command that made it")
        if cfg.get("evaluator") is None:
            raise ConfigError(f"{run.config}: this search used an evaluator object, not 'kind:arg'; resume it from Python")
        saved_budget = int(cfg["budget"])
        if budget is not None:
            _check_budget(budget)
            if budget < saved_budget:
                raise ConfigError(f"--budget: {budget} is smaller than the run's {saved_budget}; a resumed search can only grow")
        budget = max(budget or saved_budget, saved_budget)
        logged = run.read_events("query")  # also: a damaged log is refused before anything is done
        if run.result.exists() and budget == saved_budget:
            return {**read_json(run.result, "result"), "already_finished": True}
        space, strategy, seed, options = cfg["space"], cfg["strategy"], int(cfg["seed"]), dict(cfg.get("options") or {})
        objectives = parse_objectives(cfg.get("objectives"))
        ev, strat, objectives = _prepare(space, strategy, cfg["evaluator"], budget, seed, options, objectives)
        if budget != saved_budget:
            run.save_config_text(yaml.safe_dump(_discrete_config(space, strategy, cfg["evaluator"], budget, seed, options,
                                                                 objectives), sort_keys=False))
        run.log("resume", queries=len(logged), budget=budget)
        return _search(space, strategy, cfg["evaluator"], ev, strat, budget, seed, options, run, logged, objectives)


def _check_budget(budget: Any) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= 10**7:
        raise ConfigError(f"budget: must be a positive integer number of queries (at most 10**7), got {budget!r}")


def _prepare(space: str, strategy: str, evaluator: Any, budget: int, seed: int, options: dict, objectives=None):
    space = get_space(space)  # a name or a SearchSpace object (a user's, with its options)
    ev = make_evaluator(evaluator, space=space)
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
    load_strategies()
    cls = STRATEGIES.get(strategy, "strategy")
    if objectives is None:
        objectives = getattr(cls, "default_objectives", None)
    if objectives is not None and "objectives" in inspect.signature(cls.__init__).parameters:
        options = {**options, "objectives": objectives}
    return ev, make_strategy(strategy, space, seed=seed, candidates=candidates, **options), objectives


def _search(space: str, strategy: str, evaluator: Any, ev: Evaluator, strat: DiscreteStrategy, budget: int, seed: int,
            strategy_options: dict, run: RunDir | None, logged: list[dict], objectives=None) -> dict:
    history: list[dict] = []
    obj_values: list[tuple[float, ...]] = []
    obj_archs: list[Any] = []
    best: dict[str, Any] = {"arch": None, "accuracy": float("-inf")}
    t0 = time.perf_counter()
    if logged:
        replay = _ReplayEvaluator(ev, logged)
        replay._to_str = strat.space.to_str
        ev = replay  # type: ignore[assignment]

    def report(p: Proposal, r: EvalResult) -> None:
        if r.accuracy > best["accuracy"]:
            best.update(arch=p.arch, accuracy=r.accuracy)
        row = {
            "query": len(history) + 1,
            "arch": strat.space.to_str(p.arch),
            "accuracy": r.accuracy,
            "best_so_far": best["accuracy"],
            "budget": p.budget,
            "eval_budget": r.budget,
            "cost": dict(r.cost),
            "cached": r.cached,
        }
        if objectives is not None:
            v = objective_vector(strat.space, p.arch, r, objectives)
            obj_values.append(v)
            obj_archs.append(p.arch)
            row["objectives"] = dict(zip(objectives, v))
        history.append(row)
        if len(history) <= len(logged):
            if logged[len(history) - 1]["arch"] != row["arch"]:
                raise DnasError(f"{run.events if run else 'events'}: replaying query {len(history)} proposed "
                                f"{row['arch']}, the log has {logged[len(history) - 1]['arch']} (changed code or "
                                "evaluator?); start a new run")
            return
        if run is not None:
            run.log("query", **row)

    strat.run(ev, budget, report)
    if not history:
        raise ConfigError(f"strategy {strategy}: evaluated nothing within budget {budget}")
    result = {
        "space": strat.space.name,
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
        result["objectives"] = list(objectives)
        result.update(front_summary(strat.space, ev, objectives, obj_archs, obj_values))
    if run is not None:
        write_json(run.genotype, best_genotype(strat.space, best["arch"], result))
        run.write_result(result)
        run.log("end", queries=len(history), best_arch=result["best_arch"])
    return result


def best_genotype(space: Any, arch: Any, result: dict) -> dict:
    """The genotype JSON of the best architecture (``dnas show`` / ``dnas train`` read it), with
    the search's provenance in ``meta``."""
    meta = {"method": f"discrete/{result['strategy']}", "evaluator": result["evaluator"], "seed": result["seed"],
            "accuracy": result["best_accuracy"], "queries": result["queries"]}
    return {**space.to_dict(arch), "meta": meta}
