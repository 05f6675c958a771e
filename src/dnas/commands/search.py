"""``dnas search``: a cell search (bilevel gradient) or, with ``--space nb201`` and a discrete
``--strategy``, a search over a tabular benchmark."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say, show_progress


@app.command()
def search(
    preset: Optional[str] = typer.Option(None, help="darts | pc-darts | quick (the default built-in search)"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of config fields"),
    data: Optional[str] = typer.Option(None, help="built-in name (mnist, digits) or a path (image folder, .npz, CIFAR batches)"),
    epochs: Optional[int] = typer.Option(None, min=1),
    seed: Optional[int] = typer.Option(None),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/search-<time>)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this directory"),
    relaxation: Optional[str] = typer.Option(None, help="how edges mix ops: darts (softmax) | pc (partial channel) | ..."),
    unrolled: Optional[bool] = typer.Option(None, "--unrolled/--first-order", help="second- or first-order architecture gradient"),
    batch_size: Optional[int] = typer.Option(None, min=1),
    init_channels: Optional[int] = typer.Option(None, min=2),
    layers: Optional[int] = typer.Option(None, min=1),
    image_size: Optional[int] = typer.Option(None, min=4),
    max_samples: Optional[int] = typer.Option(None, min=10),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N]"),
    space: str = typer.Option("darts", help="darts (cell search) | nb201 (tabular benchmark)"),
    strategy: Optional[str] = typer.Option(None, help="bilevel for darts; random | evolution | bohb ... for nb201"),
    evaluator: Optional[str] = typer.Option(None, help="for discrete strategies: tabular:FILE (or tabular:nb201_cifar10)"),
    budget: Optional[int] = typer.Option(None, min=1, help="for discrete strategies: number of queries"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Search an architecture and write a run directory with genotype.json."""
    if space != "darts":
        _discrete(space, strategy, evaluator, budget, seed, out, as_json, quiet)
        return
    import dnas.api as api

    overrides = dict(
        data=data, epochs=epochs, seed=seed, relaxation=relaxation, unrolled=unrolled, batch_size=batch_size,
        init_channels=init_channels, layers=layers, image_size=image_size, max_samples=max_samples, device=device,
        strategy=strategy,
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    result = api.search(config, preset=preset, out=out, resume=resume, progress=show_progress(quiet, as_json), **overrides)
    if as_json:
        emit_json({"genotype": result.genotype.to_dict(), "run_dir": str(result.run_dir),
                   "val_acc": result.history[-1]["val_acc"] if result.history else None})
        return
    say(quiet, f"genotype: {result.genotype}")
    say(quiet, f"run directory: {result.run_dir}  (genotype.json, events.jsonl, checkpoint.pt, result.json)")
    say(quiet, f"next: dnas train {result.run_dir}/genotype.json --data {result.genotype.meta.get('data', 'mnist')}")
    if quiet:
        typer.echo(result.genotype.to_json(indent=None))


def _discrete(space, strategy, evaluator, budget, seed, out, as_json, quiet) -> None:
    from dnas.errors import ConfigError
    from dnas.strategies.discrete import run_discrete_search

    if evaluator is None:
        raise ConfigError(f"--evaluator: required with --space {space} (e.g. tabular:nb201_cifar10 or tabular:FILE)")
    result = run_discrete_search(
        space=space, strategy=strategy or "random", evaluator=evaluator, budget=budget or 100,
        seed=seed or 0, out_dir=out,
    )
    if as_json:
        emit_json({k: result[k] for k in ("best_arch", "best_accuracy", "queries")})
        return
    say(quiet, f"best architecture: {result['best_arch']}")
    say(quiet, f"best accuracy: {result['best_accuracy']:.2f}  after {result['queries']} queries")
    if out:
        say(quiet, f"run directory: {out}")
