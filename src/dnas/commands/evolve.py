"""``dnas evolve``: network-level NSGA-II over networks assembled from searched or given blocks."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say


def _split(text: Optional[str], kind=str) -> Optional[list]:
    if text is None:
        return None
    from dnas.errors import ConfigError

    try:
        return [kind(float(t)) if kind is int else kind(t) for t in (p.strip() for p in text.split(",")) if t]
    except ValueError:
        raise ConfigError(f"expected a comma-separated list of {kind.__name__} values, got {text!r}") from None


@app.command()
def evolve(
    data: Optional[str] = typer.Option(None, help="built-in name (mnist, digits) or a dataset path"),
    population: Optional[int] = typer.Option(None, min=2, help="NSGA-II population size (default 8)"),
    generations: Optional[int] = typer.Option(None, min=1, help="generations, the initial one included (default 5)"),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/evolve-<time>)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this directory (--generations may grow it)"),
    objectives: Optional[str] = typer.Option(None, help="comma list of >= 2 of error, params, macs, latency (default error,params)"),
    max_params: Optional[float] = typer.Option(None, help="hard limit on parameters, e.g. 1e6"),
    max_macs: Optional[float] = typer.Option(None, help="hard limit on multiply-adds"),
    max_latency_ms: Optional[float] = typer.Option(None, help="hard limit on measured latency (ms, batch 1)"),
    blocks: Optional[str] = typer.Option(None, help="given blocks: comma list of published names, genotype files or run dirs "
                                                     "(default: search blocks with the cost term at --block-lambdas)"),
    block_lambdas: Optional[str] = typer.Option(None, help="cost weights of the block searches (default 0,0.5,2)"),
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs per candidate (default 2)"),
    batch_size: Optional[int] = typer.Option(None, min=1),
    image_size: Optional[int] = typer.Option(None, min=4, help="resize images (default 16)"),
    max_samples: Optional[int] = typer.Option(None, min=20, help="use at most this many images"),
    widths: Optional[str] = typer.Option(None, help="channel counts a stage may use (default 8,16,24,32)"),
    stem_widths: Optional[str] = typer.Option(None, help="stem channel counts (default 8,16,24)"),
    stages: Optional[int] = typer.Option(None, min=1, help="stages per network (default 3)"),
    max_repeats: Optional[int] = typer.Option(None, min=1, help="most cells per stage (default 3)"),
    max_reductions: Optional[int] = typer.Option(None, min=0, help="most reducing stages (default 2)"),
    seed: Optional[int] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, min=0, help="evaluate on this many local Ray workers (default 0: serial)"),
    ray_address: Optional[str] = typer.Option(None, help="evaluate on an existing Ray cluster (auto or ray://host:port)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Search networks of searched blocks with NSGA-II; write DIR/pareto.json, front/*.json and pareto.png."""
    from dnas.api import default_run_dir
    from dnas.errors import ConfigError
    from dnas.evolve.run import evolve as run_evolve

    def progress(rec: dict) -> None:
        best = ", ".join(f"{k} {v:.4g}" for k, v in rec["best"].items() if v is not None)
        say(quiet or as_json, f"generation {rec['generation']}: {rec['evaluated']} trained, front {rec['front']} "
                              f"of {rec['feasible']} feasible; best {best} ({rec['seconds']:.1f} s)")

    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise ConfigError("--resume DIR continues the run in DIR; drop --out")
        given = dict(data=data, population=population, objectives=objectives, max_params=max_params, max_macs=max_macs,
                     max_latency_ms=max_latency_ms, blocks=blocks, block_lambdas=block_lambdas, epochs=epochs,
                     batch_size=batch_size, image_size=image_size, max_samples=max_samples, widths=widths,
                     stem_widths=stem_widths, stages=stages, max_repeats=max_repeats, max_reductions=max_reductions, seed=seed)
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ConfigError(f"--resume continues a run with its saved config; drop --{extra[0].replace('_', '-')} "
                              "(only --generations, --workers and --ray-address may change)")
        result = run_evolve(resume, resume=True, on_generation=progress, generations=generations, workers=workers,
                            ray_address=ray_address)
    else:
        fields = dict(
            data=data, population=population, generations=generations, objectives=_split(objectives),
            max_params=max_params, max_macs=max_macs, max_latency_ms=max_latency_ms, blocks=_split(blocks),
            block_lambdas=_split(block_lambdas, float), epochs=epochs, batch_size=batch_size, image_size=image_size,
            max_samples=max_samples, widths=_split(widths, int), stem_widths=_split(stem_widths, int), stages=stages,
            max_repeats=max_repeats, max_reductions=max_reductions, seed=seed, workers=workers, ray_address=ray_address,
        )
        result = run_evolve(out or default_run_dir("evolve"), on_generation=progress, **fields)
    if as_json:
        emit_json({"run_dir": str(result.run_dir), "pareto": str(result.run_dir / "pareto.json"),
                   "generations": result.generations, "evaluations": result.evaluations, "trained": result.trained,
                   "front": [{k: m[k] for k in ("key", "summary", "objectives", "cost", "file")} for m in result.front]})
        return
    say(quiet, f"front of {len(result.front)} networks ({result.evaluations} evaluated) in {result.run_dir}:")
    for m in result.front:
        objs = ", ".join(f"{k} {v:.4g}" for k, v in m["objectives"].items())
        say(quiet, f"  {m['summary']}: {objs} -> {result.run_dir / m['file']}")
