"""``dnas show``: a genotype's cells and the cost of its evaluation network."""
from __future__ import annotations

from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json

#: Reference evaluation settings per network: (init channels, layers, classes, image size).
NET_DEFAULTS = {"cifar": (36, 20, 10, 32), "imagenet": (48, 14, 1000, 224)}


@app.command()
def show(
    genotype: str = typer.Argument(..., help="published name (DARTS_V2, PC_DARTS_cifar, ...), genotype JSON, run directory, or an NB201 arch string with --space nb201"),
    net: str = typer.Option("cifar", help="cifar | imagenet"),
    init_channels: Optional[int] = typer.Option(None, "--init-channels", "-C", help="default 36 (cifar) / 48 (imagenet)"),
    layers: Optional[int] = typer.Option(None, help="default 20 (cifar) / 14 (imagenet)"),
    num_classes: Optional[int] = typer.Option(None, help="default 10 (cifar) / 1000 (imagenet)"),
    in_channels: int = typer.Option(3, min=1),
    image_size: Optional[int] = typer.Option(None, help="input size for multiply-adds; default 32 (cifar) / 224 (imagenet)"),
    space: str = typer.Option("darts", help="darts | nb201"),
    as_json: bool = typer.Option(False, "--json", help="print {params, aux_params, macs} as JSON"),
) -> None:
    """Print params (auxiliary head excluded), auxiliary-head params and multiply-adds."""
    if space == "nb201":
        _show_nb201(genotype, num_classes or 10, in_channels, image_size or 32, as_json)
        return
    from dnas.cost import network_cost
    from dnas.errors import ConfigError
    from dnas.genotype import load_genotype

    if net not in NET_DEFAULTS:
        raise ConfigError(f"--net: unknown network {net!r}; choose cifar or imagenet")
    C0, L0, K0, S0 = NET_DEFAULTS[net]
    g = load_genotype(genotype)
    cost = network_cost(g, net=net, C=init_channels or C0, layers=layers or L0, num_classes=num_classes or K0,
                        in_channels=in_channels, image_size=image_size or S0)
    if as_json:
        emit_json({**cost, "net": net, "genotype_hash": g.hash()})
        return
    typer.echo(f"genotype {g.hash()}")
    typer.echo(f"  normal: {', '.join(f'{o}<-{i}' for o, i in g.normal)}  concat {list(g.normal_concat)}")
    typer.echo(f"  reduce: {', '.join(f'{o}<-{i}' for o, i in g.reduce)}  concat {list(g.reduce_concat)}")
    if g.is_hierarchical:
        _show_hierarchy(g)
    typer.echo(f"{net} network (C={init_channels or C0}, layers={layers or L0}, classes={num_classes or K0}, input {image_size or S0}px)")
    typer.echo(f"  params:     {cost['params']:,} ({cost['params'] / 1e6:.2f} M, auxiliary head excluded)")
    typer.echo(f"  aux params: {cost['aux_params']:,}")
    typer.echo(f"  mult-adds:  {cost['macs']:,} ({cost['macs'] / 1e6:.1f} M)")


def _show_hierarchy(g) -> None:
    """Per-stage cells and stage layouts of a hierarchical (H-DAS) genotype."""
    if g.stage_normal is not None:
        for k, c in enumerate(g.stage_normal):
            typer.echo(f"  stage {k + 1} normal: {', '.join(f'{o}<-{i}' for o, i in c.edges)}  concat {list(c.concat)}")
        for k, c in enumerate(g.stage_reduce):
            typer.echo(f"  reduction {k + 1}: {', '.join(f'{o}<-{i}' for o, i in c.edges)}  concat {list(c.concat)}")
    if g.stages is not None:
        for k, st in enumerate(g.stages):
            links = "; ".join(f"cell {j}<-" + "+".join(f"{o}({i})" for o, i in cell) for j, cell in enumerate(st.links))
            typer.echo(f"  stage {k + 1} layout ({st.num_cells} cells; states 0,1 = inputs): {links}  concat {list(st.concat)}")
        total = sum(st.num_cells for st in g.stages) + 2
        typer.echo(f"  the stage layouts fix the depth: {total} cells (--layers is ignored)")


def _show_nb201(arch: str, num_classes: int, in_channels: int, image_size: int, as_json: bool) -> None:
    from dnas.cost import count_macs, count_params
    from dnas.spaces.nb201 import build_nb201_network, parse_arch

    a = parse_arch(arch)
    model = build_nb201_network(a, num_classes=num_classes, in_channels=in_channels)
    cost = {"params": count_params(model), "aux_params": 0, "macs": count_macs(model, (in_channels, image_size, image_size))}
    if as_json:
        emit_json({**cost, "net": "nb201", "arch": str(a)})
        return
    typer.echo(f"NB201 {a}\n  params: {cost['params']:,}\n  mult-adds: {cost['macs']:,}")
