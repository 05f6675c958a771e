"""``dnas train``: train a genotype's evaluation network from scratch."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say, show_progress


@app.command()
def train(
    genotype: Optional[str] = typer.Argument(None, help="published name, genotype JSON, or a search run directory"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of TrainConfig fields"),
    data: Optional[str] = typer.Option(None, help="dataset (default: the data the genotype was searched on, tested on that search's held-out test set; else mnist)"),
    epochs: Optional[int] = typer.Option(None, min=1),
    seed: Optional[int] = typer.Option(None),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/train-<time>)"),
    resume: Optional[Path] = typer.Option(None, help="continue the training run in this directory"),
    net: Optional[str] = typer.Option(None, help="cifar | imagenet"),
    init_channels: Optional[int] = typer.Option(None, min=2),
    layers: Optional[int] = typer.Option(None, min=1),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None),
    image_size: Optional[int] = typer.Option(None, min=4),
    cutout: Optional[int] = typer.Option(None, min=0),
    drop_path_prob: Optional[float] = typer.Option(None),
    auxiliary: Optional[bool] = typer.Option(None, "--auxiliary/--no-auxiliary"),
    auxiliary_weight: Optional[float] = typer.Option(None),
    label_smoothing: Optional[float] = typer.Option(None),
    grad_clip: Optional[float] = typer.Option(None),
    device: Optional[str] = typer.Option(None),
    threads: Optional[int] = typer.Option(None, min=1, help="torch CPU threads (1 is best on a busy machine)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train from scratch (SGD + cosine, cutout, drop-path ramp, auxiliary head); checkpoints every epoch."""
    import dnas.api as api
    from dnas.errors import ConfigError

    if resume is None and genotype is None:
        raise ConfigError("GENOTYPE: give a published name, a genotype JSON or a run directory (or --resume DIR)")
    overrides = dict(
        data=data, epochs=epochs, seed=seed, net=net, init_channels=init_channels, layers=layers, batch_size=batch_size,
        lr=lr, image_size=image_size, cutout=cutout, drop_path_prob=drop_path_prob, auxiliary=auxiliary,
        auxiliary_weight=auxiliary_weight, label_smoothing=label_smoothing, grad_clip=grad_clip, device=device, threads=threads,
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # a searched genotype trains on the search's data and tests on its held-out test set (dnas.api.train)
    result = api.train(genotype, config=config, out=out, resume=resume, progress=show_progress(quiet, as_json), **overrides)
    if as_json:
        from dataclasses import asdict

        d = asdict(result)
        d.pop("history", None)
        d.pop("already_finished", None)
        emit_json(d)
        return
    if result.already_finished:
        say(quiet, f"run {result.out_dir} had already finished; nothing changed")
    say(quiet, f"test accuracy {result.test_accuracy:.4f}  (params {result.params:,}, mult-adds {result.macs:,}, {result.seconds:.0f}s)")
    say(quiet, f"run directory: {result.out_dir}")
    say(quiet, f"next: dnas export {result.out_dir} --format onnx")
