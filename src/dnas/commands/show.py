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
    genotype: str = typer.Argument(..., help="published name (DARTS_V2, PC_DARTS_cifar, ...), genotype JSON of any space, run directory, or an architecture string with --space (e.g. an NB201 arch)"),
    net: str = typer.Option("cifar", help="cifar | imagenet"),
    init_channels: Optional[int] = typer.Option(None, "--init-channels", "-C", help="default 36 (cifar) / 48 (imagenet)"),
    layers: Optional[int] = typer.Option(None, help="default 20 (cifar) / 14 (imagenet)"),
    num_classes: Optional[int] = typer.Option(None, help="default 10 (cifar) / 1000 (imagenet)"),
    in_channels: int = typer.Option(3, min=1),
    image_size: Optional[int] = typer.Option(None, help="input size for multiply-adds; default 32 (cifar) / 224 (imagenet)"),
    space: Optional[str] = typer.Option(None, help="the space of an architecture string (default: read from the genotype file; darts)"),
    as_json: bool = typer.Option(False, "--json", help="print {params, aux_params, macs} as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only the one-line summary"),
) -> None:
    """Print params (auxiliary head excluded), auxiliary-head params and multiply-adds."""
    from dnas.cost import network_cost
    from dnas.errors import ConfigError
    from dnas.genotype import OWN_SPACES, load_genotype

    if space not in (None, "darts"):
        from dnas.spaces.base import get_space

        sp = get_space(space)
        _show_space(sp, sp.parse(genotype), num_classes or 10, in_channels, image_size, as_json, quiet)
        return
    g = load_genotype(genotype)
    if getattr(g, "space", "darts") not in OWN_SPACES or getattr(g, "network", None) is not None:
        from dnas.spaces.base import get_space

        _show_space(get_space(g.space), g, num_classes or 10, in_channels, image_size, as_json, quiet)
        return
    if net not in NET_DEFAULTS:
        raise ConfigError(f"--net: unknown network {net!r}; choose cifar or imagenet")
    C0, L0, K0, S0 = NET_DEFAULTS[net]
    cost = network_cost(g, net=net, C=init_channels or C0, layers=layers or L0, num_classes=num_classes or K0,
                        in_channels=in_channels, image_size=image_size or S0)
    if as_json:
        emit_json({**cost, "net": net, "genotype_hash": g.hash()})
        return
    if quiet:
        typer.echo(f"{g.hash()} params {cost['params']} macs {cost['macs']}")
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


def _show_space(sp, arch, num_classes: int, in_channels: int, image_size: Optional[int], as_json: bool,
                quiet: bool) -> None:
    """Any space's architecture: the space's own description and the cost of its evaluation
    network at the space's default size (``build`` defaults, input ``space.input_shape``)."""
    from dnas.counting import count_aux_params, count_macs, count_params

    model = sp.build(arch, num_classes=num_classes, in_channels=in_channels)
    C, H, W = sp.input_shape
    size = image_size or H
    cost = {"params": count_params(model), "aux_params": count_aux_params(model),
            "macs": count_macs(model, (in_channels, size, size))}
    if as_json:
        emit_json({**cost, "net": sp.name, "space": sp.name, "arch": sp.to_str(arch), "genotype_hash": sp.hash(arch)})
        return
    if quiet:
        typer.echo(f"{sp.hash(arch)} params {cost['params']} macs {cost['macs']}")
        return
    typer.echo(f"{sp.name} genotype {sp.hash(arch)}")
    for line in sp.describe(arch):
        typer.echo(f"  {line}")
    typer.echo(f"{sp.name} network (classes={num_classes}, input {in_channels}x{size}x{size})")
    typer.echo(f"  params:     {cost['params']:,} ({cost['params'] / 1e6:.2f} M)")
    typer.echo(f"  mult-adds:  {cost['macs']:,} ({cost['macs'] / 1e6:.1f} M)")
