"""The Python API; each function mirrors a CLI command.

>>> import dnas
>>> result = dnas.search(epochs=2, data="digits", out="runs/demo")   # dnas search --epochs 2 ...
>>> result.genotype, result.run_dir
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dnas.config import SearchConfig, load_config, make_config
from dnas.errors import ConfigError
from dnas.manifest import read_text_checked
from dnas.run import RunDir


def default_run_dir(kind: str) -> Path:
    return Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def search(
    config: SearchConfig | dict | str | os.PathLike | None = None,
    *,
    preset: str | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = False,
    **overrides: Any,
):
    """Run a cell search and return a :class:`~dnas.strategies.bilevel.SearchResult`.

    ``config`` is a :class:`SearchConfig`, a dict of fields, or a YAML file path; ``overrides``
    are config fields (``epochs=2``). ``resume`` continues the run in that directory with the
    config saved there."""
    from dnas.strategies.bilevel import run_bilevel_search

    if resume is not None:
        if config is not None or overrides or preset:
            raise ConfigError("--resume continues a run with its saved config; drop the other config options")
        with RunDir(resume).open() as run:
            cfg = load_config(run.config, read_text_checked(run.config, "config"))
            done = finished_search(run)
            if done is not None:
                return done
            return run_bilevel_search(cfg, run, resume=True, progress=progress)
    if isinstance(config, SearchConfig):
        cfg = make_config(overrides={**config.model_dump(), **overrides}) if overrides else config
    elif isinstance(config, dict):
        cfg = make_config(preset, overrides={**config, **overrides})
    else:
        cfg = make_config(preset, config, overrides)
    if cfg.strategy != "bilevel":
        raise ConfigError(f"strategy: {cfg.strategy!r} is not a cell-search strategy; use bilevel (or --space nb201 for discrete strategies)")
    with RunDir(out or default_run_dir("search")).create() as run:
        return run_bilevel_search(cfg, run, resume=False, progress=progress)


def finished_search(run: RunDir):
    """The result of a search that already ended (``--resume`` of a finished run changes nothing),
    or ``None`` when the run still has epochs to go."""
    from dnas.genotype import load_genotype
    from dnas.strategies.bilevel import SearchResult

    if not (run.result.exists() and run.genotype.exists() and run.read_events("end")):
        return None
    return SearchResult(load_genotype(run.genotype), run.path, run.read_events("epoch"), already_finished=True)


def train(genotype, *, config=None, out: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          progress: bool = False, **overrides: Any):
    """Train a genotype from scratch (mirrors ``dnas train``); returns a
    :class:`~dnas.trainer.TrainResult`. ``config`` is a TrainConfig, a dict or a YAML path;
    ``overrides`` are TrainConfig fields (``epochs=3``)."""
    from dnas.genotype import load_genotype
    from dnas.io import read_json
    from dnas.manifest import verify
    from dnas.trainer import TrainConfig, TrainResult, load_train_config, train_config, train_genotype

    if resume is not None:
        with RunDir(resume).open() as run:
            verify(run.config, "config")
            cfg = load_train_config(run.config)
            conflicts = sorted(k for k, v in overrides.items() if v is not None and k not in ("device", "threads")
                               and v != getattr(cfg, k, None))
            if genotype is not None or config is not None or conflicts:
                what = f"--{conflicts[0].replace('_', '-')}" if conflicts else ("GENOTYPE" if genotype is not None else "--config")
                raise ConfigError(f"{what}: --resume continues a run with its saved config and genotype; drop {what} "
                                  "(only --device and --threads may change), or train into a new --out")
            cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
            if run.result.exists() and any(e.get("event") == "end" for e in run.read_events()):
                return TrainResult(**{**read_json(run.result, "result"), "already_finished": True})
            return train_genotype(load_genotype(run.genotype), cfg, run.path, resume=True, progress=progress)
    g = load_genotype(genotype)
    if config is None:
        overrides = _searched_data(genotype, g, overrides)
    if isinstance(config, TrainConfig):
        cfg = train_config(**{**config.model_dump(), **overrides})
    elif isinstance(config, dict):
        cfg = train_config(**{**config, **overrides})
    elif config is not None:
        cfg = load_train_config(config, **overrides)
    else:
        cfg = train_config(**overrides)
    with RunDir(out or default_run_dir("train")).create() as run:
        return train_genotype(g, cfg, run.path, resume=False, progress=progress)


def _search_splits_path(spec, g) -> Path | None:
    """The ``splits.json`` of the search that wrote genotype ``g`` (next to the genotype file or
    in its run directory), if there is one."""
    candidates = []
    if isinstance(spec, (str, os.PathLike)) and Path(spec).exists():
        p = Path(spec)
        candidates.append((p if p.is_dir() else p.parent) / "splits.json")
    if g.meta.get("run"):
        candidates.append(Path(g.meta["run"]) / "splits.json")
    return next((c for c in candidates if c.exists()), None)


def _searched_data(spec, g, overrides: dict[str, Any]) -> dict[str, Any]:
    """Train a searched genotype on the search's data and test it on the search's held-out test
    set (unless the caller passes other data or a test split): a test image the search saw would
    flatter the searched cell."""
    out = dict(overrides)
    searched_on = g.meta.get("data")
    if searched_on and out.get("data") is None:
        out["data"] = searched_on
    if out.get("test_split_from") is None and searched_on and out["data"] == searched_on:
        path = _search_splits_path(spec, g)
        if path is not None:
            out["test_split_from"] = str(path)
    return out


def run_strategy(space, strategy: str, evaluator, *, budget: int, seed: int = 0, out: str | os.PathLike | None = None,
                 objectives: "str | list[str] | None" = None, **options: Any) -> dict:
    """Search ``space`` (a name or a :class:`~dnas.spaces.base.SearchSpace`) with a discrete
    ``strategy`` (``random``, ``evolution``, ``local-search``, ``bohb``, ``bohb-gcn``, ``nsga2``
    ...) scoring architectures with ``evaluator`` (``"tabular:nb201_cifar10"`` or any object
    with ``evaluate(arch, budget) -> EvalResult``) for ``budget`` queries; mirrors
    ``dnas search --space S --strategy X --evaluator E --budget N [--objectives error,params]``.
    Returns the result dict (``best_arch``, ``best_accuracy``, ``queries``, ``history`` and,
    with objectives, ``front`` and ``hypervolume``); with ``out`` also the run directory."""
    from dnas.strategies.discrete import run_discrete_search

    return run_discrete_search(space=space, strategy=strategy, evaluator=evaluator, budget=budget, seed=seed,
                               out_dir=Path(out) if out is not None else None, objectives=objectives, **options)


def strategy_names() -> list[str]:
    """Every registered discrete strategy (``--strategy``), built-in and the user's."""
    from dnas.strategies.discrete import load_strategies

    return sorted(load_strategies())
