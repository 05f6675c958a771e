"""``dnas shrink``: shrink a space into diverse pockets of good architectures (LISSNAS) and
report size, quality, diversity and the one-shot supernet's ranking inside vs outside."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dnas.cli import app
from dnas.commands.common import emit_json, say


@app.command()
def shrink(
    space: str = typer.Option("nb201", help="any registered space with a distance: nb201, darts, ... (the space of the evaluator's archs)"),
    evaluator: str = typer.Option(..., help="tabular:FILE or tabular:nb201_cifar10 (scores the shrinkage queries)"),
    truth: Optional[str] = typer.Option(None, help="evaluator holding the true accuracies for the metrics (default: --evaluator)"),
    seed: int = typer.Option(0),
    initial: int = typer.Option(60, min=1, help="uniform samples of the full space in round 0"),
    pockets: int = typer.Option(5, min=1, help="at most this many pockets (seeds) per round"),
    radius: int = typer.Option(2, min=0, help="a pocket holds the archs within this edit distance of its seed"),
    min_distance: int = typer.Option(3, min=0, help="seeds at least this far apart (diversity)"),
    samples: int = typer.Option(30, min=1, help="uniform samples of the current pockets evaluated per round"),
    max_rounds: int = typer.Option(8, min=1),
    tol: float = typer.Option(0.0, min=0.0, help="stop when the estimated mean accuracy rises by no more than this"),
    oneshot: bool = typer.Option(True, "--oneshot/--no-oneshot", help="train one-shot supernets for tau_shrunk/tau_full (the slow part)"),
    oneshot_steps: int = typer.Option(200, min=1, help="training steps of each one-shot supernet"),
    oneshot_data: str = typer.Option("digits", help="data the supernets train on (digits, mnist or a path)"),
    oneshot_mode: str = typer.Option("members", help="members (sample only pocket members) | mask (per-edge candidates)"),
    oneshot_full_archs: int = typer.Option(200, min=0, help="full-space archs scored for tau_full (seeded subset; 0 = all)"),
    locality: bool = typer.Option(False, "--locality", help="add a locality report on the archs the evaluator holds"),
    search: Optional[str] = typer.Option(None, help="then run this discrete strategy (random | evolution | local-search | bohb ...) on the shrunk space"),
    search_budget: int = typer.Option(20, min=1, help="queries for --search"),
    out: Optional[Path] = typer.Option(None, help="write the shrunk space (pockets) to this JSON file"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Shrink --space with --evaluator into pockets and print the metrics."""
    from dnas.shrink.pockets import ShrinkConfig
    from dnas.shrink.run import run_shrink, true_accuracies

    cfg = ShrinkConfig(initial=initial, pockets=pockets, radius=radius, min_distance=min_distance, samples=samples,
                       max_rounds=max_rounds, tol=tol)
    shrunk, res = run_shrink(
        evaluator, space=space, seed=seed, config=cfg, truth=truth, oneshot=oneshot, oneshot_steps=oneshot_steps,
        oneshot_data=oneshot_data, oneshot_full_archs=oneshot_full_archs or None, oneshot_mode=oneshot_mode,
    )
    if locality:
        from dnas.evaluators.base import make_evaluator
        from dnas.shrink.locality import locality_report

        true = true_accuracies(make_evaluator(truth or evaluator))
        res["locality"] = locality_report(list(true), list(true.values()), seed=seed, space=space)
    if search:
        from dnas.shrink.space import search_shrunk

        found = search_shrunk(shrunk, evaluator, strategy=search, budget=min(search_budget, res["size"]), seed=seed)
        res["search"] = {k: found[k] for k in ("strategy", "best_arch", "best_accuracy", "queries")}
    from dnas.spaces.base import get_space

    res["pocket_centers"] = [get_space(space).to_str(p.center) for p in shrunk.pockets]
    if out is not None:
        shrunk.save(out)
        res["out"] = str(out)
    if as_json:
        emit_json(res)
        return
    say(quiet, f"shrunk space: {res['size']} of {res['full_size']} archs in {res['pockets']} pockets "
               f"({res['queries']} queries, {res['rounds']} rounds)")
    say(quiet, f"mean accuracy {res['mean_accuracy']} inside vs {res['full_mean_accuracy']} in the full space; "
               f"best {res['best_accuracy']} vs {res['full_best_accuracy']} (best kept: {res['best_kept']})")
    say(quiet, f"diversity: mean pairwise distance {res['mean_distance']} (full space {res['full_mean_distance']})")
    if res.get("tau_shrunk") is not None:
        say(quiet, f"one-shot Kendall tau: {res['tau_shrunk']} inside vs {res['tau_full']} on the full space "
                   f"(full-space supernet on the shrunk members: {res['tau_full_on_shrunk']})")
    if "search" in res:
        say(quiet, f"{search} on the shrunk space: best {res['search']['best_accuracy']} in {res['search']['queries']} queries")
    if out is not None:
        say(quiet, f"pockets written to {out}")
