"""``dnas export``: a trained network (or a search run's supernet) as TorchScript, ONNX or a state dict."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import QUIET_HELP, emit_json

SUFFIX = {"torchscript": ".ts", "onnx": ".onnx", "state-dict": ".pt"}


def _load_search_supernet(run_dir: Path):
    """The supernet of a search run, with its last checkpoint's weights."""
    import torch

    from dnas.config import load_config
    from dnas.data import load_dataset
    from dnas.run import RunDir
    from dnas.strategies.bilevel import build_supernet

    from dnas.manifest import read_text_checked

    run = RunDir(run_dir)
    cfg = load_config(run.config, read_text_checked(run.config, "config"))
    ckpt = run.load_checkpoint()
    if ckpt is None:
        from dnas.errors import DnasError

        raise DnasError(f"{run_dir}: search run has no checkpoint.pt yet; let it run one epoch first")
    data = load_dataset(cfg.data, image_size=cfg.image_size)
    model = build_supernet(cfg, data.num_classes, data.in_channels)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as e:
        from dnas.errors import DnasError

        raise DnasError(f"{run.checkpoint}: checkpoint does not fit the supernet of config.yaml ({type(e).__name__})") from None
    return model.eval(), torch.zeros(1, data.in_channels, data.image_size, data.image_size)


@app.command()
def export(
    source: Path = typer.Argument(..., help="training run directory, its model.pt, or a search run directory"),
    fmt: str = typer.Option(..., "--format", help="torchscript | onnx | state-dict"),
    out: Optional[Path] = typer.Option(None, help="output file (default SOURCE/export/model.<ext>)"),
    as_json: bool = typer.Option(False, "--json", help="print {format, kind, out} as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Export a model; ONNX files are checked by the tests in onnxruntime."""
    import torch

    from dnas.errors import ConfigError, DnasError
    from dnas.export import export_model
    from dnas.trainer import load_trained

    if fmt not in SUFFIX:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of: {', '.join(SUFFIX)}")
    if not source.exists():
        raise DnasError(f"{source}: no such run directory or model file")
    run_dir = source if source.is_dir() else source.parent
    if (source.is_dir() and (source / "model.pt").exists()) or source.name == "model.pt":
        model, meta = load_trained(source)
        example = torch.zeros(1, meta["in_channels"], meta["image_size"], meta["image_size"])
        kind = "trained network"
    elif source.is_dir() and (source / "checkpoint.pt").exists() and (source / "config.yaml").exists():
        if fmt != "state-dict":
            raise ConfigError(
                f"--format {fmt}: a search run exports its supernet as a state dict only; "
                f"train the genotype first (dnas train {source}/genotype.json) and export that run"
            )
        model, example = _load_search_supernet(source)
        kind = "search supernet"
    else:
        raise DnasError(f"{source}: neither a training run (model.pt) nor a search run (config.yaml + checkpoint.pt)")
    target = out or run_dir / "export" / f"model{SUFFIX[fmt]}"
    export_model(model, fmt, target, example)
    if as_json:
        emit_json({"format": fmt, "kind": kind, "out": str(target)})
    elif not quiet:
        typer.echo(f"exported {kind} as {fmt}: {target}")
