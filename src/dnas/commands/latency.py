"""``dnas latency collect | fit | evaluate``: measure sampled architectures on this device, fit
the MLP latency predictor, and score it (and the lookup-table sum) on held-out architectures."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import QUIET_HELP, emit_json

latency_app = typer.Typer(no_args_is_help=True, help="Latency on this device: measurement, lookup table, MLP predictor.")
app.add_typer(latency_app, name="latency")

_SPACE = typer.Option("darts", help="darts (NetworkCIFAR of genotypes) | fbnetv2 (mobile blocks)")


def _space(space: str, channels: int, layers: int, image_size: int, in_channels: int, num_classes: int, encoding: str):
    from dnas.spaces.base import get_space

    return get_space(space).latency_adapter(options=dict(channels=channels, layers=layers, image_size=image_size,
                                                         in_channels=in_channels, num_classes=num_classes, encoding=encoding))


def _collect(space, samples, seed, device, repeats, warmup, threads, table, cache_dir):
    from dnas.latency import LatencyTable
    from dnas.predictors.latency import collect

    tab = LatencyTable(device, cache_dir=cache_dir, threads=threads) if table else None
    return collect(space, samples, seed=seed, device=device, warmup=warmup, repeats=repeats, threads=threads, table=tab)


@latency_app.command("collect")
def collect_cmd(
    out: Path = typer.Option(..., "--out", help="dataset JSON to write"),
    space: str = _SPACE,
    samples: int = typer.Option(150, min=4, help="architectures to sample and measure"),
    channels: int = typer.Option(8, min=2, help="init channels (darts) / stem width (fbnetv2)"),
    layers: int = typer.Option(5, min=1, help="cells (darts) / blocks (fbnetv2)"),
    image_size: int = typer.Option(16, min=4),
    in_channels: int = typer.Option(3, min=1),
    num_classes: int = typer.Option(10, min=2),
    encoding: str = typer.Option("pooled", help="darts: pooled (per edge kind) | edge (per edge)"),
    repeats: int = typer.Option(11, min=1, help="timed rounds; each network's latency is its median"),
    warmup: int = typer.Option(3, min=0),
    threads: int = typer.Option(1, min=1, help="torch threads while measuring"),
    device: str = typer.Option("cpu", help="cpu | cuda[:N]"),
    seed: int = typer.Option(0),
    table: bool = typer.Option(True, "--table/--no-table", help="also record the lookup-table sum of each architecture"),
    cache_dir: Optional[Path] = typer.Option(None, help="latency table cache (default $DNAS_CACHE_DIR or ~/.cache/dnas)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON summary"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Sample architectures, measure them interleaved on this device, write a dataset."""
    from dnas.io import write_json

    sp = _space(space, channels, layers, image_size, in_channels, num_classes, encoding)
    data = _collect(sp, samples, seed, device, repeats, warmup, threads, table, cache_dir)
    write_json(out, data)
    ms = [r["latency_ms"] for r in data["records"]]
    summary = {"out": str(out), "space": space, "samples": len(ms), "device_key": data["device_key"],
               "seconds": data["seconds"], "latency_ms": {"min": round(min(ms), 3), "max": round(max(ms), 3)}}
    if as_json:
        emit_json(summary)
    elif not quiet:
        typer.echo(f"measured {len(ms)} {space} networks in {data['seconds']['measure']:.0f}s "
                   f"({min(ms):.2f}-{max(ms):.2f} ms) -> {out}")


@latency_app.command("fit")
def fit_cmd(
    data: Path = typer.Argument(..., help="dataset from 'dnas latency collect'"),
    out: Path = typer.Option(..., "--out", help="predictor file to write (.pt)"),
    train_fraction: float = typer.Option(0.7, help="share of the dataset used for training; the rest is scored"),
    seed: int = typer.Option(0),
    epochs: int = typer.Option(600, min=0),
    hidden: int = typer.Option(32, min=1),
    ensemble: int = typer.Option(3, min=1),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Fit the MLP latency predictor; report held-out error; save it for --cost latency_predictor."""
    from dnas.predictors.latency import fit_and_score

    pred, res = fit_and_score(str(data), train_fraction=train_fraction, seed=seed, epochs=epochs, hidden=hidden, ensemble=ensemble)
    pred.save(out)
    res["predictor"] = str(out)
    _report(res, as_json, quiet)


@latency_app.command("evaluate")
def evaluate_cmd(
    space: str = _SPACE,
    samples: int = typer.Option(150, min=4, help="architectures to sample and measure (ignored with --data)"),
    data: Optional[Path] = typer.Option(None, help="score on an existing dataset instead of collecting"),
    channels: int = typer.Option(8, min=2),
    layers: int = typer.Option(5, min=1),
    image_size: int = typer.Option(16, min=4),
    in_channels: int = typer.Option(3, min=1),
    num_classes: int = typer.Option(10, min=2),
    encoding: str = typer.Option("pooled", help="darts: pooled | edge"),
    repeats: int = typer.Option(11, min=1),
    warmup: int = typer.Option(3, min=0),
    threads: int = typer.Option(1, min=1),
    device: str = typer.Option("cpu"),
    train_fraction: float = typer.Option(0.7),
    seed: int = typer.Option(0),
    save_data: Optional[Path] = typer.Option(None, help="also write the collected dataset here"),
    cache_dir: Optional[Path] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Collect, fit and score in one go: mean relative error and Kendall tau on held-out
    architectures, next to the lookup-table sum (raw and calibrated by a line)."""
    from dnas.io import write_json
    from dnas.predictors.latency import fit_and_score

    if data is None:
        sp = _space(space, channels, layers, image_size, in_channels, num_classes, encoding)
        dataset = _collect(sp, samples, seed, device, repeats, warmup, threads, True, cache_dir)
        if save_data:
            write_json(save_data, dataset)
    else:
        dataset = str(data)
    _, res = fit_and_score(dataset, train_fraction=train_fraction, seed=seed)
    if isinstance(dataset, dict):
        res["collect_seconds"] = dataset["seconds"]
        res["protocol"] = dataset["protocol"]
    _report(res, as_json, quiet)


@latency_app.command("measure")
def measure_cmd(
    genotype: str = typer.Argument(..., help="genotype JSON file or published name (DARTS_V2); fbnetv2 genotype files too"),
    channels: int = typer.Option(8, min=2, help="darts: init channels of the evaluation network"),
    layers: int = typer.Option(5, min=1, help="darts: cells"),
    image_size: int = typer.Option(16, min=4, help="darts: input size (fbnetv2 genotypes carry their own)"),
    in_channels: int = typer.Option(3, min=1),
    num_classes: int = typer.Option(10, min=2),
    repeats: int = typer.Option(21, min=1),
    warmup: int = typer.Option(5, min=0),
    threads: int = typer.Option(1, min=1),
    device: str = typer.Option("cpu"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Measure one architecture's evaluation network: median latency, params, MACs (and the
    lookup-table estimate for DARTS genotypes)."""
    from pathlib import Path as _Path

    from dnas.cost import count_macs, count_params
    from dnas.latency import LatencyTable, device_key, measure_module

    spec = _Path(genotype)
    from dnas.io import read_json

    d = read_json(spec, "genotype") if spec.is_file() else None
    d = d if isinstance(d, dict) else None
    res: dict = {}
    if d is not None and d.get("space") == "fbnetv2":
        from dnas.spaces.mobile import build_mobile_network, load_mobile_genotype

        g = load_mobile_genotype(d)
        model = build_mobile_network(g, num_classes, in_channels)
        shape = (in_channels, g.input_size, g.input_size)
    else:
        from dnas.genotype import load_genotype
        from dnas.opcost import NetShape, build_net, cost_matrices, genotype_cost

        g = load_genotype(genotype)
        net = NetShape(channels, layers, image_size, in_channels, num_classes, g.steps)
        model = build_net(g, net)
        shape = net.input_shape
        prims = sorted({op for op, _ in g.normal + g.reduce} | {"none"})
        tab = LatencyTable(device, threads=threads)
        res["table_ms"] = round(genotype_cost(g, prims, cost_matrices(prims, net, "latency", tab), g.steps), 4)
    res.update(latency_ms=round(measure_module(model, shape, device=device, warmup=warmup, repeats=repeats, threads=threads), 4),
               params=count_params(model), macs=count_macs(model, shape), input_shape=list(shape),
               device_key=device_key(device, threads))
    if as_json:
        emit_json(res)
    elif not quiet:
        typer.echo("  ".join(f"{k}: {v}" for k, v in res.items()))


def _report(res: dict, as_json: bool, quiet: bool = False) -> None:
    if as_json:
        emit_json(res)
        return
    if quiet:
        return
    typer.echo(f"{res['space']} on {res['device_key']}: MLP predictor mean relative error "
               f"{100 * res['mean_rel_error']:.2f}%, kendall tau {res['kendall_tau']:.3f} on {res['test_size']} held-out archs "
               f"({res['train_size']} for training)")
    for k, label in (("table_sum", "lookup-table sum"), ("table_sum_calibrated", "lookup-table sum, calibrated")):
        if k in res:
            typer.echo(f"  {label}: mean relative error {100 * res[k]['mean_rel_error']:.2f}%, kendall tau {res[k]['kendall_tau']:.3f}")
