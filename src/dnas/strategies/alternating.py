"""Two BOHBs taking turns: one searches the network structure, the other the operators.

GPNAS-style search over :mod:`dnas.spaces.generalized`: round 0 runs the *structure* BOHB with
the operators fixed at the incumbent's, round 1 the *operator* BOHB with the structure fixed at
the incumbent's, and so on until the total budget (summed evaluation budgets, i.e. epochs) is
spent. Each BOHB keeps its own observations across rounds. The incumbent starts at the two
spaces' default configurations and, after every round, becomes the best evaluated
(structure, operators) pair on the largest budget evaluated so far (BOHB's own incumbent
rule). A round is ``brackets_per_round`` Hyperband brackets of the active BOHB; its fixed half
is frozen for the whole round so its evaluations are comparable.

Run directory (optional, ``run_dir=``)::

    RUN/config.yaml    the settings (checked on resume)
    RUN/events.jsonl   one "eval" line per evaluation (seq, round, phase, arch, budget, accuracy)
    RUN/state.json     progress summary after every batch (round, cost, incumbent)
    RUN/genotype.json  the best (structure, operators) at the end
    RUN/result.json    the summary at the end

Resume (``resume=True``) replays the logged evaluations through the same seeded search instead of
restoring pickled optimiser state: BOHB is deterministic given its seed and its results, so the
replay reproduces exactly the proposals of the interrupted run, and only evaluations missing from
the log are paid for again. A resumed run therefore ends where an uninterrupted one would, and
``total_budget`` may be raised on resume to continue a finished run.
"""
from __future__ import annotations

import contextlib

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import yaml
from ConfigSpace import Configuration, ConfigurationSpace

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult, Evaluator
from dnas.io import write_json
from dnas.run import RunDir
from dnas.strategies.bohb import BOHB, Job, _plain
from dnas.trials import Executor, SerialExecutor

PHASES = ("structure", "operators")


@dataclass
class AlternatingResult:
    """The best (structure, operators) found, its accuracy and the whole history."""

    structure: dict
    operators: dict
    accuracy: float
    budget: float
    history: list[dict] = field(default_factory=list)
    evaluations: int = 0
    cost: float = 0.0
    rounds: int = 0
    run_dir: Path | None = None

    def to_dict(self) -> dict:
        return {
            "structure": self.structure,
            "operators": self.operators,
            "accuracy": self.accuracy,
            "budget": self.budget,
            "evaluations": self.evaluations,
            "cost": self.cost,
            "rounds": self.rounds,
            "run_dir": str(self.run_dir) if self.run_dir else None,
        }


class _Objective:
    """Scores one half of the architecture with the other half fixed (picklable for Ray)."""

    def __init__(self, evaluator: Evaluator, phase: str, fixed: dict) -> None:
        self.evaluator, self.phase, self.fixed = evaluator, phase, fixed

    def __call__(self, config: Mapping[str, Any], budget: float) -> dict:
        half = {k: _plain(v) for k, v in dict(config).items()}
        arch = (half, self.fixed) if self.phase == "structure" else (self.fixed, half)
        res: EvalResult = self.evaluator.evaluate(arch, budget)
        return {"loss": 100.0 - float(res.accuracy), "accuracy": float(res.accuracy),
                "cost": {k: float(v) for k, v in res.cost.items()}}


def _dict(cfg: Configuration | Mapping[str, Any]) -> dict:
    return {k: _plain(v) for k, v in dict(cfg).items()}


def alternating_bohb_search(
    evaluator: Evaluator,
    structure_space: ConfigurationSpace,
    operator_space: ConfigurationSpace,
    *,
    total_budget: float,
    min_budget: float = 1,
    max_budget: float = 9,
    eta: float = 3,
    brackets_per_round: int = 1,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    executor: Executor | None = None,
    settings: Mapping[str, Any] | None = None,
    bohb_kwargs: Mapping[str, Any] | None = None,
    on_eval: Callable[[dict], None] | None = None,
) -> AlternatingResult:
    """Alternate a structure BOHB and an operator BOHB until ``total_budget`` is spent.

    ``evaluator.evaluate((structure, operators), budget)`` scores one pair (accuracy in %);
    ``executor`` runs each rung's batch (serial by default, :class:`dnas.trials.RayExecutor` for
    parallel trials); ``settings`` are extra JSON-ready fields recorded in ``config.yaml``
    (e.g. the dataset), which a resume must match.
    """
    if total_budget <= 0:
        raise ConfigError("budget: the total budget (epochs) must be > 0")
    if brackets_per_round < 1:
        raise ConfigError("brackets_per_round: must be >= 1")
    executor = executor or SerialExecutor()
    kw = dict(min_budget=min_budget, max_budget=max_budget, eta=eta, **(bohb_kwargs or {}))
    bohbs = {
        "structure": BOHB(structure_space, seed=seed, **kw),
        "operators": BOHB(operator_space, seed=seed + 1, **kw),
    }
    config = {
        "strategy": "bohb-alt",
        "seed": seed,
        "min_budget": min_budget,
        "max_budget": max_budget,
        "eta": eta,
        "brackets_per_round": brackets_per_round,
        "structure_space": sorted(structure_space.keys()),
        "operator_space": sorted(operator_space.keys()),
        **{k: v for k, v in (bohb_kwargs or {}).items() if isinstance(v, (int, float, str, bool))},
        **dict(settings or {}),
    }
    rd, logged, replay_budget = _open_run_dir(run_dir, resume, config, total_budget)
    with rd if rd is not None else contextlib.nullcontext():

        incumbent = {"structure": _dict(structure_space.get_default_configuration()),
                     "operators": _dict(operator_space.get_default_configuration()),
                     "accuracy": None, "budget": None}
        history: list[dict] = []
        cost, rnd, idle_rounds = 0.0, 0, 0
        eps = 1e-9
        while total_budget - cost >= min_budget - eps and idle_rounds < len(PHASES):
            phase = PHASES[rnd % 2]
            bohb = bohbs[phase]
            fixed = incumbent["operators"] if phase == "structure" else incumbent["structure"]
            objective = _Objective(evaluator, phase, fixed)
            n_round, brackets0 = 0, bohb.brackets_done
            while bohb.brackets_done - brackets0 < brackets_per_round:
                    # While replaying a resumed run's log, cut rounds where the run being replayed cut them
                # (at its own total budget), so that a larger --budget extends the run after its last
                # evaluation instead of contradicting its log.
                limit = replay_budget if len(history) < len(logged) else total_budget
                jobs, room = [], limit - cost
                for j in bohb.ask():
                    if j.budget > room + eps:
                        break
                    jobs.append(j)
                    room -= j.budget
                if not jobs:
                    break
                records = _evaluate_batch(jobs, objective, executor, logged, len(history), rnd, phase, fixed)
                for job, rec in zip(jobs, records):
                    bohb.tell(job, rec["loss"])
                    history.append(rec)
                    cost += job.budget
                    n_round += 1
                    if not rec.get("replayed") and rd is not None:
                        rd.log("eval", **{k: v for k, v in rec.items() if k != "replayed"})
                    if on_eval is not None:
                        on_eval(rec)
                incumbent = _incumbent(history, incumbent)
                if rd is not None:
                    write_json(rd.path / "state.json", {"round": rnd, "phase": phase, "evaluations": len(history),
                                                        "cost": cost, "total_budget": total_budget,
                                                        "incumbent": incumbent, "finished": False})
            idle_rounds = 0 if n_round else idle_rounds + 1
            rnd += 1
        if len(logged) > len(history):
            raise ConfigError(
                f"resume {rd.path if rd else ''}: the log holds {len(logged)} evaluations but the settings only "
                f"reach {len(history)}; resume with the same or a larger --budget"
            )
        if incumbent["accuracy"] is None:
            raise ConfigError(f"budget: {total_budget} is below the smallest evaluation budget {min_budget}; nothing was evaluated")
        result = AlternatingResult(
            structure=incumbent["structure"], operators=incumbent["operators"],
            accuracy=float(incumbent["accuracy"]), budget=float(incumbent["budget"]),
            history=history, evaluations=len(history), cost=cost, rounds=rnd - idle_rounds,
            run_dir=rd.path if rd else None,
        )
        if rd is not None:
            from dnas.spaces.generalized import arch_to_dict

            try:
                genotype = {"space": "generalized", **arch_to_dict(result.structure, result.operators)}
            except ConfigError:  # a custom space that is not the generalized one
                genotype = {"structure": result.structure, "operators": result.operators}
            write_json(rd.genotype, {**genotype, "accuracy": result.accuracy})
            write_json(rd.path / "state.json", {"round": rnd, "evaluations": len(history), "cost": cost,
                                                "total_budget": total_budget, "incumbent": incumbent, "finished": True})
            rd.write_result(result.to_dict())
            rd.log("end", evaluations=len(history), cost=cost, accuracy=result.accuracy)
        return result


def _evaluate_batch(
    jobs: list[Job], objective: _Objective, executor: Executor, logged: list[dict], seq0: int, rnd: int,
    phase: str, fixed: dict,
) -> list[dict]:
    """Records for ``jobs``: taken from the log when replaying a resumed run, else evaluated."""
    records: list[dict | None] = [None] * len(jobs)
    fresh = []
    for i, job in enumerate(jobs):
        half = _dict(job.config)
        structure, operators = (half, fixed) if phase == "structure" else (fixed, half)
        base = {"seq": seq0 + i, "round": rnd, "phase": phase, "config_id": list(job.config_id),
                "s": job.s, "rung": job.rung, "budget": job.budget, "model_based": job.model_based,
                "structure": structure, "operators": operators}
        if seq0 + i < len(logged):
            old = logged[seq0 + i]
            if any(old.get(k) != base[k] for k in ("phase", "budget", "structure", "operators")):
                raise ConfigError(
                    f"resume: logged evaluation {seq0 + i} does not match the replayed search; the run directory "
                    "was made with other settings or code; start a new run directory"
                )
            records[i] = {**base, "loss": old["loss"], "accuracy": old.get("accuracy"),
                          "cost": old.get("cost", {}), "error": old.get("error"), "replayed": True}
        else:
            fresh.append(i)
    if fresh:
        results = executor.map(objective, [(jobs[i].config, jobs[i].budget) for i in fresh])
        for i, res in zip(fresh, results):
            base = records[i] = {"seq": seq0 + i, "round": rnd, "phase": phase, "config_id": list(jobs[i].config_id),
                                 "s": jobs[i].s, "rung": jobs[i].rung, "budget": jobs[i].budget,
                                 "model_based": jobs[i].model_based}
            half = _dict(jobs[i].config)
            base["structure"], base["operators"] = (half, fixed) if phase == "structure" else (fixed, half)
            if res.ok:
                base.update(loss=res.value["loss"], accuracy=res.value["accuracy"], cost=res.value["cost"],
                            error=None)
            else:  # failed after its retries: kept as a +inf loss, as HpBandSter does
                base.update(loss=math.inf, accuracy=None, cost={}, error=res.error)
            base["attempts"] = res.attempts
    return [r for r in records if r is not None]


def _incumbent(history: list[dict], current: dict) -> dict:
    done = [h for h in history if h.get("accuracy") is not None and np.isfinite(h["loss"])]
    if not done:
        return current
    top = max(h["budget"] for h in done)
    best = max((h for h in done if h["budget"] == top), key=lambda h: h["accuracy"])
    return {"structure": best["structure"], "operators": best["operators"],
            "accuracy": best["accuracy"], "budget": top}


def _resume_checks(rd: RunDir, config: dict, total_budget: float) -> tuple[RunDir, list[dict], float]:
    """The saved settings must match; returns the run, its logged evaluations and its old total budget."""
    saved = _saved_config(rd)
    diff = sorted(k for k in set(saved) | set(config) if k != "total_budget" and saved.get(k) != config.get(k))
    if diff:
        raise ConfigError(f"resume {rd.path}: settings differ from the saved run in {', '.join(diff)}; "
                          "use the saved settings or a new run directory")
    logged = sorted(rd.read_events("eval"), key=lambda e: e["seq"])
    if [e["seq"] for e in logged] != list(range(len(logged))):
        raise ConfigError(f"resume {rd.path}: events.jsonl has gaps or duplicate evaluations; start a new run")
    replay_budget = float(saved.get("total_budget", total_budget))
    if total_budget < replay_budget:
        raise ConfigError(f"--budget: {total_budget} is below the run's {replay_budget}; a resumed search can only grow")
    rd.save_config_text(yaml.safe_dump({**config, "total_budget": total_budget}, sort_keys=False))
    rd.log("resume", logged=len(logged), total_budget=total_budget)
    return rd, logged, replay_budget


def _open_run_dir(
    run_dir: str | Path | None, resume: bool, config: dict, total_budget: float
) -> tuple[RunDir | None, list[dict], float]:
    if run_dir is None:
        if resume:
            raise ConfigError("resume: needs the run directory to continue")
        return None, [], total_budget
    rd = RunDir(run_dir)
    if resume:
        rd.open()
        try:
            return _resume_checks(rd, config, total_budget)
        except BaseException:
            rd.release()
            raise
    rd.create()
    rd.save_config_text(yaml.safe_dump({**config, "total_budget": total_budget}, sort_keys=False))
    rd.log("start", **{k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))})
    return rd, [], total_budget


def _saved_config(rd: RunDir) -> dict:
    """The verified, non-empty config mapping of a bohb-alt run."""
    from dnas.io import loads_yaml
    from dnas.manifest import read_text_checked

    saved = loads_yaml(read_text_checked(rd.config, "config"), str(rd.config))
    if not isinstance(saved, dict) or not saved:
        raise ConfigError(f"{rd.config}: empty or not a mapping; a run's saved config lists every field — start a new run")
    return saved


# ---------------------------------------------------------------------------- entry point
def search_generalized(
    data: str = "digits",
    *,
    budget: float = 60,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    min_budget: float = 1,
    max_budget: float = 9,
    eta: float = 3,
    max_stages: int = 3,
    max_depth: int = 3,
    widths: tuple[int, ...] | None = None,
    max_train_samples: int | None = None,
    batch_size: int = 32,
    ray_address: str | None = None,
    workers: int = 0,
    max_retries: int = 2,
    on_eval: Callable[[dict], None] | None = None,
) -> AlternatingResult:
    """``dnas search --space generalized --strategy bohb-alt``: build the two spaces and the
    short-training evaluator on ``data`` and run :func:`alternating_bohb_search`.

    ``budget`` is the total number of training epochs; ``workers > 0`` or ``ray_address`` runs
    trials through Ray (``workers`` local CPUs, or the cluster at ``ray_address``).
    """
    from dnas.spaces.generalized import DEFAULT_WIDTHS, GeneralizedEvaluator, operator_space, structure_space
    from dnas.trials import RayExecutor

    widths = tuple(widths or DEFAULT_WIDTHS)
    evaluator = GeneralizedEvaluator(data, seed=seed, batch_size=batch_size, max_train_samples=max_train_samples)
    if ray_address is not None or workers > 0:
        executor: Executor = RayExecutor(address=ray_address, num_cpus=workers or None, max_retries=max_retries)
    else:
        executor = SerialExecutor(max_retries=max_retries)
    settings = {"space": "generalized", "data": data, "max_stages": max_stages, "max_depth": max_depth,
                "widths": list(widths), "max_train_samples": max_train_samples, "batch_size": batch_size}
    try:
        return alternating_bohb_search(
            evaluator,
            structure_space(max_stages, max_depth=max_depth, widths=widths),
            operator_space(max_stages),
            total_budget=budget, min_budget=min_budget, max_budget=max_budget, eta=eta, seed=seed,
            run_dir=out, resume=resume, executor=executor, settings=settings, on_eval=on_eval,
        )
    finally:
        executor.close()


def resume_generalized(
    run_dir: str | Path,
    *,
    budget: float | None = None,
    ray_address: str | None = None,
    workers: int = 0,
    max_retries: int = 2,
    on_eval: Callable[[dict], None] | None = None,
) -> AlternatingResult:
    """``dnas search --resume RUN``: continue a :func:`search_generalized` run with its saved
    settings (``budget`` may raise the total to extend a finished run)."""
    rd = RunDir(run_dir).require_existing()
    saved = _saved_config(rd)
    if saved.get("strategy") != "bohb-alt" or saved.get("space") != "generalized":
        raise ConfigError(f"--resume {rd.path}: not a generalized-space bohb-alt run (config.yaml says "
                          f"space={saved.get('space')!r}, strategy={saved.get('strategy')!r})")
    keys = ("seed", "min_budget", "max_budget", "eta", "max_stages", "max_depth", "max_train_samples", "batch_size")
    return search_generalized(
        saved["data"], budget=budget if budget is not None else saved["total_budget"], out=rd.path, resume=True,
        widths=tuple(saved["widths"]), ray_address=ray_address, workers=workers, max_retries=max_retries,
        on_eval=on_eval, **{k: saved[k] for k in keys},
    )


__all__ = ["AlternatingResult", "alternating_bohb_search", "resume_generalized", "search_generalized"]
