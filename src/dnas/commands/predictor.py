"""``dnas predictor evaluate``: how well a performance predictor ranks unseen architectures."""
from __future__ import annotations

from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import QUIET_HELP, emit_json

predictor_app = typer.Typer(no_args_is_help=True, help="Performance predictors (GCN, MLP) on benchmark records.")
app.add_typer(predictor_app, name="predictor")


@predictor_app.command("evaluate")
def evaluate(
    records: str = typer.Option("nb201_cifar10", help="records JSON file (NB201 'arch' records) or built-in name"),
    predictor: str = typer.Option("gcn", help="gcn | mlp | rf (random forest) | gbm (gradient boosting)"),
    features: str = typer.Option("graph", help="graph (the space's graph / one-hot) | zc (proxy scores) | graph+zc"),
    zc_proxies: Optional[str] = typer.Option(None, help="proxies to use as features (default: every known proxy the records carry)"),
    fusion: Optional[str] = typer.Option(None, help="gcn/mlp with graph+zc: concat (default) | gated (gcn: proxy path behind a gate that starts closed) | auto (chosen by cross-validation on the training archs)"),
    train_size: int = typer.Option(100, min=2, help="training archs per seed; the rest are scored"),
    seeds: int = typer.Option(3, min=1, help="number of train/test splits (seeds 0..N-1)"),
    loss: str = typer.Option("rank", help="rank (pairwise) | mse | both"),
    epochs: int = typer.Option(200, min=0),
    ensemble: int = typer.Option(3, min=1, help="models averaged per seed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Train on --train-size records per seed and report Kendall tau / Spearman on the rest."""
    from dnas.predictors.metrics import predictor_evaluate

    from dnas.predictors.zerocost import parse_proxies

    zc = parse_proxies(zc_proxies) if zc_proxies else None
    res = predictor_evaluate(records, predictor, train_size, seeds, features=features, zc_proxies=zc,
                             loss=loss, epochs=epochs, ensemble=ensemble, **({"fusion": fusion} if fusion else {}))
    if as_json:
        emit_json(res)
        return
    if quiet:
        return
    b = res["baselines"]
    typer.echo(
        f"{predictor} on {features}: kendall tau {res['kendall_tau']:.3f} (std {res['kendall_tau_std']:.3f}), "
        f"spearman {res['spearman']:.3f} on {res['test_size']} held-out archs, {len(res['seeds'])} seeds"
    )
    for k in b:
        if k.endswith("_kendall_tau"):
            typer.echo(f"  baseline {k.replace('_kendall_tau', '')}: tau {b[k]:.3f}")
