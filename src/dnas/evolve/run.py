"""The network-level search: NSGA-II over assembled networks, with a resumable run directory.

Run directory::

    config.yaml       the EvolveConfig (written first; --resume reads it back)
    blocks.json       the candidate blocks (searched under blocks/ or given)
    evals.jsonl       the archive: every evaluation, appended as each batch finishes
    events.jsonl      start, one line per generation, resume, end
    checkpoint.json   after each generation: its population (x, key, F, G) and the RNG state
    pareto.json       the final front: genotype, objectives and cost of each member
    front/<key>.json  each member's network genotype, a file `dnas train` takes
    pareto.png        all evaluated networks and the front

Resume works by replay: pymoo's NSGA-II is a deterministic function of its seed and of the
objective values it is told, so ``--resume`` loads the archive into the evaluation cache,
re-runs the (cheap) selection and variation steps of the finished generations, which find
every network in the cache and train nothing, checks that the replayed population and RNG
state equal the checkpoint, and continues. The final front is therefore the front an
uninterrupted run would give (training is seeded; a measured latency is the one exception,
since it depends on the load of the machine when it was measured).
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dnas.errors import ConfigError, DnasError
from dnas.evolve.blocks import TINY_SEARCH, Block, load_blocks, resolve_blocks, save_blocks, search_blocks
from dnas.evolve.encoding import NetworkCrossover, NetworkMutation, NetworkSampling, NetworkSpace
from dnas.evolve.network import NetworkGenotype
from dnas.evolve.problem import LIMITS, OBJECTIVES, EvalCache, NetworkProblem, constraint_vector, objective_vector
from dnas.io import append_jsonl, loads_json, loads_yaml, read_jsonl, write_bytes, write_json
from dnas.manifest import read_text_checked, write_checked
from dnas.run import RunDir

CHECKPOINT_FORMAT = "dnas.evolve.checkpoint"
PARETO_FORMAT = "dnas.evolve.pareto"


class EvolveConfig(BaseModel):
    """Everything a network-level search needs (validated; unknown fields are errors).

    Defaults: a small CPU run (population 8, 5 generations, 2 training epochs per candidate on
    the built-in MNIST subset at 16x16); blocks come from tiny cell searches unless given.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # data and the short training that scores a candidate
    data: str = "mnist"
    image_size: Optional[int] = Field(16, ge=4, le=4096, description="resize images to this size (None keeps them)")
    max_samples: Optional[int] = Field(None, ge=20, le=10**9, description="use at most this many images")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the non-test data that scores candidates")
    epochs: int = Field(2, ge=1, le=100_000, description="training epochs per candidate")
    batch_size: int = Field(64, ge=1, le=1 << 20)
    lr: float = Field(0.05, gt=0, le=1e6)
    weight_decay: float = Field(3e-4, ge=0, le=1e3)
    # search
    population: int = Field(8, ge=2, le=100_000)
    generations: int = Field(5, ge=1, le=100_000, description="NSGA-II generations, the initial population included (evaluations ~ population x generations)")
    objectives: list[str] = Field(default_factory=lambda: ["error", "params"])
    max_params: Optional[float] = Field(None, gt=0)
    max_macs: Optional[float] = Field(None, gt=0)
    max_latency_ms: Optional[float] = Field(None, gt=0)
    latency_repeats: int = Field(10, ge=1, le=100_000)
    crossover_prob: float = Field(0.9, ge=0, le=1)
    mutation_gene_prob: Optional[float] = Field(None, gt=0, le=1, description="per-gene mutation probability (default 1/genes)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (pymoo seeds numpy: 0 .. 2**32-1)")
    # network space
    widths: list[int] = Field(default_factory=lambda: [8, 16, 24, 32], description="channels per node a stage may use")
    stem_widths: list[int] = Field(default_factory=lambda: [8, 16, 24])
    stages: int = Field(3, ge=1, le=64)
    max_repeats: int = Field(3, ge=1, le=1000)
    max_reductions: int = Field(2, ge=0, le=64)
    # blocks
    blocks: Optional[list[str]] = Field(None, description="given blocks (published names, genotype files, run dirs); None searches them")
    block_lambdas: list[float] = Field(default_factory=lambda: [0.0, 0.5, 2.0], description="cost weights of the block searches")
    cost_objective: str = Field("params", description="the block searches' cost term (when the search has one)")
    block_search: dict[str, Any] = Field(default_factory=dict, description="SearchConfig overrides for the block searches")
    # execution
    workers: int = Field(0, ge=0, le=4096, description="Ray workers on this machine (0: serial)")
    ray_address: Optional[str] = None
    retries: int = Field(2, ge=0, le=100, description="re-runs of a failed or killed evaluation")
    threads: int = Field(1, ge=1, le=4096, description="torch threads per evaluation")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if o not in OBJECTIVES]
        if bad:
            raise ValueError(f"unknown objective {bad[0]!r}; choose from {', '.join(OBJECTIVES)}")
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError(f"need at least two distinct objectives, got {','.join(v)}")
        return v

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(w < 2 or w % 2 for w in v):
            raise ValueError(f"need even channel counts >= 2, got {v}")
        return v

    def settings(self) -> dict[str, Any]:
        """What an evaluation needs (a plain dict, shipped to workers)."""
        keys = ("data", "image_size", "max_samples", "val_fraction", "epochs", "batch_size", "lr", "weight_decay",
                "seed", "objectives", "max_params", "max_macs", "max_latency_ms", "latency_repeats", "threads")
        return {k: getattr(self, k) for k in keys}


#: Fields that may change when a run is resumed (they do not change its results).
RESUMABLE = {"generations", "workers", "ray_address", "retries"}


def evolve_config(**fields: Any) -> EvolveConfig:
    """An :class:`EvolveConfig` from keyword fields (None dropped), errors as one-line ConfigError."""
    try:
        return EvolveConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown field; allowed: {', '.join(EvolveConfig.model_fields)}"
        raise ConfigError(f"evolve config: {loc}: {msg}") from None


@dataclass
class EvolveResult:
    """The front (one dict per member, as in pareto.json) and where everything was written."""

    front: list[dict[str, Any]]
    run_dir: Path
    evaluations: int
    generations: int
    trained: int = 0  # evaluations run by this call (0 for a fully replayed resume)
    history: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
def _space(cfg: EvolveConfig, blocks: list[Block]) -> NetworkSpace:
    return NetworkSpace(tuple(b.genotype for b in blocks), tuple(cfg.widths), tuple(cfg.stem_widths), cfg.stages,
                        cfg.max_repeats, cfg.max_reductions, tuple(b.name for b in blocks))


def _make_executor(cfg: EvolveConfig):
    from dnas.trials import make_executor

    kind = "ray" if (cfg.workers or cfg.ray_address) else "serial"
    return make_executor(kind, address=cfg.ray_address, num_cpus=cfg.workers or None, max_retries=cfg.retries)


def _algorithm(cfg: EvolveConfig, space: NetworkSpace):
    from pymoo.algorithms.moo.nsga2 import NSGA2

    return NSGA2(pop_size=cfg.population, n_offsprings=cfg.population, sampling=NetworkSampling(space),
                 crossover=NetworkCrossover(space, cfg.crossover_prob), mutation=NetworkMutation(space, cfg.mutation_gene_prob),
                 eliminate_duplicates=True)


def _jsonable_rng(state: dict) -> dict:
    return json.loads(json.dumps(state))


def _snapshot(algorithm, problem: NetworkProblem, generation: int) -> dict[str, Any]:
    pop = algorithm.pop
    X, F, G = pop.get("X"), pop.get("F"), pop.get("G")
    members = [{"x": [int(v) for v in x], "key": problem.space.decode(x).hash(), "F": [float(v) for v in f],
                "G": [float(v) for v in g]} for x, f, g in zip(X, F, G)]
    return {"format": CHECKPOINT_FORMAT, "version": 1, "generation": generation, "population": members,
            "rng": _jsonable_rng(algorithm.random_state.bit_generator.state), "archive_size": len(problem.cache)}


def feasible(rec: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Evaluated, not failed, trained (error known) and within every hard limit."""
    return (not rec.get("failed")) and rec.get("error") is not None and max(constraint_vector(rec, settings)) <= 0


def pareto_front(records: list[dict[str, Any]], objectives: list[str]) -> list[dict[str, Any]]:
    """The non-dominated records (minimising ``objectives``), sorted by the second objective."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    if not records:
        return []
    F = np.array([objective_vector(r, objectives) for r in records], dtype=float)
    idx = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return sorted((records[i] for i in idx), key=lambda r: (objective_vector(r, objectives)[1:], r["key"]))


def _member(rec: dict[str, Any], space: NetworkSpace, objectives: list[str]) -> dict[str, Any]:
    g = space.decode(rec["x"])
    cost = {k: rec[k] for k in ("params", "macs", "latency") if rec.get(k) is not None}
    return {"key": rec["key"], "x": rec["x"], "summary": str(g), "objectives": dict(zip(objectives, objective_vector(rec, objectives))),
            "error": rec["error"], "cost": cost, "file": f"front/{rec['key']}.json", "genotype": g.to_dict()}


def _plot(path: Path, records: list[dict[str, Any]], front: list[dict[str, Any]], objectives: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ox, oy = objectives[1], objectives[0]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if records:
        pts = np.array([objective_vector(r, objectives) for r in records])
        ax.scatter(pts[:, 1], pts[:, 0], s=14, c="0.65", label="evaluated")
    if front:
        pts = np.array(sorted(objective_vector(r, objectives) for r in front))
        pts = pts[np.argsort(pts[:, 1])]
        ax.step(pts[:, 1], pts[:, 0], where="post", c="tab:red", lw=1)
        ax.scatter(pts[:, 1], pts[:, 0], s=28, c="tab:red", label="Pareto front", zorder=3)
    if ox in ("params", "macs"):
        ax.set_xscale("log")
    ax.set_xlabel(ox + (" (ms)" if ox == "latency" else ""))
    ax.set_ylabel(oy + (" (validation)" if oy == "error" else ""))
    ax.set_title(f"dnas evolve: {len(front)} on the front of {len(records)} feasible")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def _write_outputs(run: RunDir, cfg: EvolveConfig, space: NetworkSpace, cache: EvalCache, generations: int) -> list[dict]:
    settings = cfg.settings()
    ok = [r for r in cache.records.values() if feasible(r, settings)]
    front = pareto_front(ok, cfg.objectives)
    members = [_member(r, space, cfg.objectives) for r in front]
    for m in members:
        g = NetworkGenotype.from_dict(m["genotype"]).with_meta(
            source="dnas evolve", run=str(run.path), objectives=m["objectives"], cost=m["cost"])
        g.save(run.path / m["file"])
    write_json(run.path / "pareto.json", {
        "format": PARETO_FORMAT, "version": 1, "objectives": cfg.objectives, "generations": generations,
        "evaluations": len(cache), "feasible": len(ok), "blocks": list(space.block_names),
        "constraints": {k: getattr(cfg, k) for k in LIMITS if getattr(cfg, k) is not None}, "members": members,
    })
    _plot(run.path / "pareto.png", ok, front, cfg.objectives)
    return members


# --------------------------------------------------------------------------- the run
def _prepare_blocks(cfg: EvolveConfig, run: RunDir) -> list[Block]:
    path = run.path / "blocks.json"
    if path.exists():
        return load_blocks(path)
    if cfg.blocks:
        blocks = resolve_blocks(cfg.blocks)
    else:
        overrides = {**TINY_SEARCH, "image_size": cfg.image_size or TINY_SEARCH["image_size"], **cfg.block_search}
        blocks = search_blocks(run.path, data=cfg.data, lambdas=cfg.block_lambdas, seed=cfg.seed,
                               cost_objective=cfg.cost_objective, overrides=overrides)
    save_blocks(path, blocks)
    return blocks


def run_evolution(
    cfg: EvolveConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    on_generation: Callable[[dict], None] | None = None,
) -> EvolveResult:
    """Run (or, with ``resume=True``, continue) the network search in ``out``.

    ``on_generation(record)`` is called after each generation's checkpoint is written (for
    progress output, or a test that stops the run by raising).
    """
    run = RunDir(out)
    run.open() if resume else run.create()
    with run:
        return _evolve_in(run, cfg, resume, on_generation)


def _evolve_in(run: RunDir, cfg: EvolveConfig, resume: bool, on_generation: Callable[[dict], None] | None) -> EvolveResult:
    from dnas.evolve.problem import _prepared_data

    ckpt: dict | None = None
    if resume:
        saved = _saved_config(run)
        current = cfg.model_dump(mode="json")
        diff = sorted(k for k in set(saved) | set(current) if k not in RESUMABLE and saved.get(k) != current.get(k))
        if diff:
            raise ConfigError(f"{run.config}: cannot resume with a different {diff[0]} (was {saved.get(diff[0])!r}, now "
                              f"{current.get(diff[0])!r}); only {', '.join(sorted(RESUMABLE))} may change")
        cp = run.path / "checkpoint.json"
        if cp.exists():
            ckpt = loads_json(read_text_checked(cp, "checkpoint"), str(cp))
            if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                raise DnasError(f"{cp}: not a dnas evolve checkpoint; pass the directory of a dnas evolve run")
        elif run.read_events("generation"):
            raise DnasError(f"{cp}: missing, but the run logged finished generations; restore it or start a new run")
        run.save_config_text(yaml.safe_dump(current, sort_keys=False))
    else:
        _prepared_data(cfg.settings())  # bad data is one line now, not 3 failed attempts per candidate
        run.save_config_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        run.log("start", population=cfg.population, generations=cfg.generations, objectives=cfg.objectives)

    blocks = _prepare_blocks(cfg, run)
    space = _space(cfg, blocks)
    archive_path = run.path / "evals.jsonl"
    cache = EvalCache()
    for rec in read_jsonl(archive_path):
        cache.put(rec["key"], rec)
    if resume:
        run.log("resume", generation=ckpt["generation"] if ckpt else 0, archive=len(cache))

    def archive(records: list[dict]) -> None:
        for rec in records:
            append_jsonl(archive_path, rec)

    settings = cfg.settings()
    executor = _make_executor(cfg)
    history: list[dict] = []
    try:
        problem = NetworkProblem(space, settings, executor, cache, on_results=archive)
        algorithm = _algorithm(cfg, space)
        algorithm.setup(problem, termination=("n_gen", cfg.generations), seed=cfg.seed, verbose=False)
        generation = 0
        replay_until = ckpt["generation"] if ckpt else 0
        while algorithm.has_next():
            t0 = time.perf_counter()
            before = problem.evaluated
            algorithm.next()
            generation += 1
            snap = _snapshot(algorithm, problem, generation)
            if generation < replay_until:
                continue
            if generation == replay_until:
                if [m["key"] for m in snap["population"]] != [m["key"] for m in ckpt["population"]] or snap["rng"] != ckpt["rng"]:
                    raise DnasError(f"{run.path}: replaying the finished generations did not reproduce the checkpoint of "
                                    f"generation {replay_until} (changed code or archive?); start a new run")
                continue
            write_checked(run.path / "checkpoint.json", (json.dumps(snap, indent=2) + "\n").encode())
            ok = [r for r in cache.records.values() if feasible(r, settings)]
            record = {"generation": generation, "evaluated": problem.evaluated - before, "archive": len(cache),
                      "feasible": len(ok), "front": len(pareto_front(ok, cfg.objectives)),
                      "best": {o: min((objective_vector(r, cfg.objectives)[i] for r in ok), default=None)
                               for i, o in enumerate(cfg.objectives)},
                      "seconds": round(time.perf_counter() - t0, 3)}
            run.log("generation", **record)
            history.append(record)
            if on_generation is not None:
                on_generation(dict(record))
    finally:
        executor.close()
    members = _write_outputs(run, cfg, space, cache, generation)
    run.log("end", generations=generation, evaluations=len(cache), front=len(members))
    return EvolveResult(members, run.path, len(cache), generation, problem.evaluated, history)


def _saved_config(run: RunDir) -> dict:
    """The verified, non-empty config mapping of an evolve run."""
    saved = loads_yaml(read_text_checked(run.config, "config"), str(run.config))
    if not isinstance(saved, dict) or not saved:
        raise ConfigError(f"{run.config}: empty or not a mapping; a run's saved config lists every field — start a new run")
    return saved


def evolve(out: str | os.PathLike, *, resume: bool = False, on_generation=None, **fields: Any) -> EvolveResult:
    """Start a run in ``out`` from config fields, or (``resume=True``) continue the run there;
    on resume only ``generations``, ``workers``, ``ray_address`` and ``retries`` may be given."""
    if resume:
        saved = _saved_config(RunDir(out).require_existing())
        extra = sorted(k for k, v in fields.items() if v is not None and k not in RESUMABLE)
        if extra:
            raise ConfigError(f"--resume continues a run with its saved config; drop --{extra[0].replace('_', '-')} "
                              f"(only {', '.join(sorted(RESUMABLE))} may change)")
        cfg = evolve_config(**{**saved, **{k: v for k, v in fields.items() if v is not None}})
        return run_evolution(cfg, out, resume=True, on_generation=on_generation)
    return run_evolution(evolve_config(**fields), out, on_generation=on_generation)


__all__ = ["EvolveConfig", "EvolveResult", "evolve_config", "run_evolution", "evolve", "pareto_front", "feasible"]
